"""`ferry rollback RUN_ID`: undo one run by the safest strategy available, and say which.

Schema runs: the undo scripts of the migrations that run applied, newest first; when one is
missing, the backup safe mode made before that run (its manifest names the run), restored
exactly. Data runs: see `data_runs` (drop what the run created, empty what was empty before
it, else restore its backup). Every rollback is recorded in `ferry_runs` with its strategy,
reason and timing, and the undone run is marked `rolled_back`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ferry.config.project import Project
from ferry.db.target import Target, open_target
from ferry.errors import FerryError
from ferry.rollback.backup import list_backups, restore_backup
from ferry.rollback.data_runs import RollbackError, RollbackReport, undo_data_run
from ferry.runs import finish_run, mark_run, read_runs, start_run
from ferry.schema import commands
from ferry.schema.history import RowType
from ferry.schema.version import Version


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
        RollbackError: the run is unknown, or no strategy can undo it safely.
    """
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

        def undo() -> RollbackReport:
            if versions:
                return _schema(project, session.target.name, run_id, versions, backup_root)
            if data_runs:
                return undo_data_run(
                    session.target,
                    run_id,
                    data_runs[0].name,
                    data_runs[0].summary,
                    backup_root=backup_root,
                )
            raise RollbackError(
                f"run {run_id} applied nothing that is still in place on target "
                f"`{session.target.name}`",
                hint="`ferry history` and `ferry runs` show the runs of a target",
            )

        return record_rollback(session.target, run_id, reason, undo)


def record_rollback(
    target: Target, run_id: str, reason: str, undo: Callable[[], RollbackReport]
) -> RollbackReport:
    """Run `undo` as a rollback of `run_id`, recorded in `ferry_runs` with its reason,
    strategy and timing (failed, with the error, when it raises); the undone run is marked
    `rolled_back`."""
    started = time.perf_counter()
    record = str(uuid.uuid4())
    name = f"rollback of {run_id}"
    with target.connect() as conn:
        start_run(conn, record, "rollback", name)
    try:
        report = undo()
    except FerryError as error:
        with target.connect() as conn:
            finish_run(
                conn,
                record,
                "failed",
                {"of": run_id, "reason": reason},
                str(error),
                kind="rollback",
                name=name,
            )
        raise
    report.seconds = time.perf_counter() - started
    with target.connect() as conn:
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
            name=name,
        )
        mark_run(conn, run_id, "rolled_back")
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


__all__ = ["RollbackError", "RollbackReport", "record_rollback", "rollback_run"]
