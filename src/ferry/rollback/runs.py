"""`ferry rollback RUN_ID`: undo one run by the safest strategy available, and say which.

Schema runs: the undo scripts of the migrations that run applied, newest first; when one is
missing, the backup safe mode made before that run (its manifest names the run), restored
exactly. Data runs: the tables the run's job created are dropped; rows a copy loaded into
tables that existed before can only come back from a backup. Every rollback is recorded in
`ferry_runs` with its strategy, reason and timing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import inspect

from ferry.config.project import Project
from ferry.data import state as data_state
from ferry.db.target import open_target
from ferry.errors import FerryError
from ferry.rollback.backup import list_backups, restore_backup
from ferry.runs import finish_run, read_runs, start_run
from ferry.schema import commands
from ferry.schema.history import RowType
from ferry.schema.version import Version


class RollbackError(FerryError):
    """No strategy can undo the run."""

    exit_code = 10


@dataclass
class RollbackReport:
    run_id: str
    strategy: str  # undo scripts | restore backup | drop created tables
    detail: list[str] = field(default_factory=list)
    seconds: float = 0.0


def rollback_run(
    project: Project,
    run_id: str,
    target: str | None = None,
    *,
    backup_root: Path,
    reason: str = "requested",
) -> RollbackReport:
    """Undo run `run_id` on a target.

    Raises:
        RollbackError: the run is unknown, or neither undo scripts nor a backup can undo it.
    """
    started = time.perf_counter()
    record = str(uuid.uuid4())
    with commands.open_session(project, target) as session:
        state = session.read_state()
        versions = {
            row.version
            for row in state.rows
            if row.run_id == run_id
            and row.version is not None
            and row.success
            and row.type in (RowType.SQL, RowType.PYTHON)
            and state.applied.get(row.version) is row
        }
        with session.target.connect() as conn:
            data_runs = [
                r for r in read_runs(conn, limit=10_000) if r.run_id == run_id and r.type == "data"
            ]
            start_run(conn, record, "rollback", f"rollback of {run_id}")
        try:
            if versions:
                report = _schema(project, session.target.name, run_id, versions, backup_root)
            elif data_runs:
                report = _data(session, run_id, data_runs[0].name, data_runs[0].summary)
            else:
                raise RollbackError(
                    f"run {run_id} applied nothing that is still in place on target "
                    f"`{session.target.name}`",
                    hint="`ferry history` and `ferry runs` show the runs of a target",
                )
        except FerryError as error:
            with session.target.connect() as conn:
                finish_run(
                    conn,
                    record,
                    "failed",
                    {"of": run_id, "reason": reason},
                    str(error),
                    kind="rollback",
                    name=f"rollback of {run_id}",
                )
            raise
        report.seconds = time.perf_counter() - started
        with session.target.connect() as conn:
            finish_run(
                conn,
                record,
                "completed",
                {
                    "of": run_id,
                    "reason": reason,
                    "strategy": report.strategy,
                    "detail": report.detail,
                    "seconds": round(report.seconds, 3),
                },
                # a restore may have replaced ferry_runs itself
                kind="rollback",
                name=f"rollback of {run_id}",
            )
        return report


def _schema(
    project: Project, target: str, run_id: str, versions: set[Version], backup_root: Path
) -> RollbackReport:
    migrations = commands.load_migrations(project)
    missing = [str(v) for v in versions if (m := migrations.get(v)) is None or m.undo is None]
    if not missing:
        undone = commands.undo(project, target, only=versions)
        return RollbackReport(
            run_id, "undo scripts", [f"undid {r.step.label}" for r in undone.results]
        )
    made = [b for b in list_backups(backup_root) if b.run_id == run_id]
    if not made:
        raise RollbackError(
            f"run {run_id} applied {', '.join(sorted(missing))} without undo scripts, and no "
            "backup was made before it",
            hint="write the undo scripts, or restore an older backup with `ferry restore`",
        )
    opened = open_target(project, target)
    try:
        restore_backup(opened, backup_root, made[0].id, exact=True)
    finally:
        opened.dispose()
    return RollbackReport(
        run_id,
        "restore backup",
        [f"restored backup {made[0].id} (no undo script for {', '.join(sorted(missing))})"],
    )


def _data(
    session: commands.Session, run_id: str, job: str, summary: dict[str, Any]
) -> RollbackReport:
    targets: dict[str, dict[str, Any]] = summary.get("targets", {})
    created = [name for name, facts in targets.items() if facts.get("created")]
    loaded = [
        name for name, facts in targets.items() if not facts.get("created") and facts.get("written")
    ]
    if loaded:
        raise RollbackError(
            f"run {run_id} loaded rows into tables that existed before "
            f"({', '.join(sorted(loaded))}); only a backup can take them out",
            hint="restore the backup made before the copy with `ferry restore`",
        )
    names = set(inspect(session.target.engine).get_table_names())
    dropped = []
    table = data_state.checkpoints
    with session.target.connect() as conn:
        unchecked = session.target.adapter.unchecked_drops
        if unchecked:
            conn.exec_driver_sql(unchecked[0])
        for name in created:
            if name in names:
                conn.exec_driver_sql(session.target.adapter.drop_sql("TABLE", name))
                dropped.append(name)
        if inspect(conn).has_table(table.name):
            conn.execute(table.delete().where(table.c.job == job))
        conn.commit()
        if unchecked:
            conn.exec_driver_sql(unchecked[1])
            conn.commit()
    return RollbackReport(run_id, "drop created tables", [f"dropped {name}" for name in dropped])
