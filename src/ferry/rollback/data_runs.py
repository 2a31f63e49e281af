"""Undo a data run by the safest strategy that applies, and prove it.

In order: tables the run created are dropped; tables that were empty before it are emptied
again (children before parents, so foreign keys never see an orphan) and the job's
checkpoints forgotten, so a rerun starts over; when the run wrote into a table that already
held rows, only the backup made before it (safe mode names it after the run) can undo it,
restored exactly and checked against its manifest. Without one, no strategy is safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, inspect, select, table

from ferry.data import state as data_state
from ferry.db.target import Target
from ferry.errors import FerryError
from ferry.rollback.backup import list_backups, restore_backup


class RollbackError(FerryError):
    """No strategy can undo the run."""

    exit_code = 10


@dataclass
class RollbackReport:
    run_id: str
    strategy: str  # undo scripts | restore backup | drop created tables | empty loaded tables
    detail: list[str] = field(default_factory=list)
    seconds: float = 0.0


def undo_data_run(
    target: Target, run_id: str, job: str, summary: dict[str, Any], *, backup_root: Path
) -> RollbackReport:
    """Undo data run `run_id` of `job` on `target` from its run record's `summary`.

    Raises:
        RollbackError: the run wrote into tables that held rows and has no backup, or the
            result does not prove right (a table still there, or not empty).
    """
    drop, empty, restore = _classify(summary)
    if restore:
        made = [b for b in list_backups(backup_root) if b.run_id == run_id]
        if not made:
            raise RollbackError(
                f"run {run_id} loaded rows into tables that held rows before "
                f"({', '.join(sorted(restore))}), and no backup was made before it: no safe "
                "strategy can take out only its rows",
                hint="restore an older backup with `ferry restore`, or run copies with "
                "`--mode safe` so that each has a backup",
            )
        restore_backup(target, backup_root, made[0].id, exact=True)
        return RollbackReport(
            run_id,
            "restore backup",
            [
                f"restored backup {made[0].id}: {len(made[0].tables)} tables match their "
                f"checksums (rows were loaded into {', '.join(sorted(restore))}, which held "
                "rows before)"
            ],
        )
    existing = set(inspect(target.engine).get_table_names())
    dropped = [name for name in drop if name in existing]
    emptied = _children_first(target, [name for name in empty if name in existing])
    unchecked = target.adapter.unchecked_drops
    with target.connect() as conn:
        if unchecked and dropped:
            conn.exec_driver_sql(unchecked[0])
        for name in dropped:
            conn.exec_driver_sql(target.adapter.drop_sql("TABLE", name))
        for name in emptied:
            conn.execute(delete(table(name)))
        if inspect(conn).has_table(data_state.checkpoints.name):
            conn.execute(delete(data_state.checkpoints).where(data_state.checkpoints.c.job == job))
        if inspect(conn).has_table(data_state.rejects.name):
            conn.execute(delete(data_state.rejects).where(data_state.rejects.c.run_id == run_id))
        conn.commit()
        if unchecked and dropped:
            conn.exec_driver_sql(unchecked[1])
            conn.commit()
    _prove(target, run_id, dropped, emptied)
    strategy = " and ".join(
        part
        for part, done in (("drop created tables", dropped), ("empty loaded tables", emptied))
        if done
    )
    return RollbackReport(
        run_id,
        strategy or "nothing to undo",  # the run created and wrote nothing
        [f"dropped {name}" for name in dropped]
        + [f"emptied {name} (empty before the run)" for name in emptied],
    )


def _classify(summary: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Target tables to drop, to empty, and those only a backup can put back."""
    targets: dict[str, dict[str, Any]] = summary.get("targets", {})
    before: dict[str, str] | None = summary.get("before")
    if before is None:  # recorded before Ferry kept the state of each table
        before = {
            name: "absent" if facts.get("created") else "rows" for name, facts in targets.items()
        }
    drop = sorted(name for name, was in before.items() if was == "absent")
    empty = sorted(name for name, was in before.items() if was == "empty")
    restore = sorted(
        name
        for name, was in before.items()
        # a table that held rows is untouched only if the run says it wrote none into it
        # and did not empty it first (`--restart`)
        if was == "rows"
        and (summary.get("restart") or targets.get(name, {}).get("written", 1) != 0)
    )
    return drop, empty, restore


def _children_first(target: Target, names: list[str]) -> list[str]:
    if len(names) < 2:
        return names
    parents: dict[str, set[str]] = {name: set() for name in names}
    for (_, name), keys in inspect(target.engine).get_multi_foreign_keys().items():
        if name in parents:
            parents[name] |= {k["referred_table"] for k in keys if k["referred_table"] in parents}
            parents[name].discard(name)
    ordered: list[str] = []
    remaining = set(names)
    while remaining:
        # a table no remaining table refers to can go (a cycle: the rest in name order)
        free = sorted(
            n for n in remaining if not any(n in parents[o] for o in remaining if o != n)
        ) or sorted(remaining)
        ordered.extend(free)
        remaining -= set(free)
    return ordered


def _prove(target: Target, run_id: str, dropped: list[str], emptied: list[str]) -> None:
    existing = set(inspect(target.engine).get_table_names())
    wrong = [f"`{name}` still exists" for name in dropped if name in existing]
    with target.connect() as conn:
        for name in emptied:
            rows = conn.execute(select(func.count()).select_from(table(name))).scalar_one()
            if rows:
                wrong.append(f"`{name}` still holds {rows} rows")
    if wrong:
        raise RollbackError(
            f"the rollback of run {run_id} does not prove right: {'; '.join(wrong)}",
            hint="another session may be writing to these tables; check them by hand",
        )
