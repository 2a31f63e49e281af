"""Safe mode for `ferry apply`: back up, apply, and on any failure restore the backup and
prove the database is as it was (checksums of every table against the manifest, tables and
views the run made dropped) — all inside the run's migration lock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ferry.config.project import BackupScope, ChecksSettings, Project
from ferry.db.target import Target
from ferry.errors import FerryError
from ferry.rollback.backup import Backup, create_backup, restore_backup, touched_scope
from ferry.rollback.data_runs import RollbackReport
from ferry.rollback.runs import record_rollback
from ferry.schema import commands
from ferry.schema.commands import RunGuard, RunReport
from ferry.schema.execute import StepResult
from ferry.schema.preconditions import BackupNeed
from ferry.validate.queries import Timing, compare_timings, run_smoke, time_queries
from ferry.validate.report import ValidationReport


class RolledBack(FerryError):
    """A safe-mode run failed and the database was restored to its state before the run."""

    exit_code = 11


class RunTimeout(FerryError):
    """A safe run took longer than its time limit."""

    exit_code = 11


class ChecksFailed(FerryError):
    """The run went through, but the application or performance checks failed after it."""

    exit_code = 11


@dataclass
class _BackupGuard(RunGuard):
    root: Path
    checks: ChecksSettings
    history_tables: tuple[str, ...] = ()
    scope: BackupScope = BackupScope.TOUCHED
    backup: Backup | None = None
    restore_error: str | None = None
    run_id: str = ""
    timings: dict[str, Timing] | None = None
    report: ValidationReport | None = None

    def __post_init__(self) -> None:
        self.backup_need = BackupNeed(self.root, self.scope is BackupScope.TOUCHED)

    def before(self, target: Target, run_id: str) -> None:
        self.run_id = run_id
        # Ferry's own tables too: the history must go back with the schema. Only the tables
        # the plan names when it can be read in full (new tables need no backup: an exact
        # restore drops what came after it).
        tables = None
        if self.scope is BackupScope.TOUCHED and self.touched is not None:
            tables = touched_scope(target, self.touched, also=self.history_tables)
        self.backup = create_backup(
            target, self.root, tables=tables, run_id=run_id, include_ferry=True
        )
        self.timings = time_queries(target, self.checks)

    def after(self, target: Target) -> None:
        report = ValidationReport()
        if self.schema is not None:
            report.categories["schema"] = self.schema
        run_smoke(target, self.checks.application, report.category("application"))
        compare_timings(
            self.timings or {},
            time_queries(target, self.checks),
            self.checks.slowdown,
            report.category("performance"),
        )
        self.report = report
        if report.status != "passed":
            errors = [e for c in report.categories.values() for e in c.errors]
            raise ChecksFailed(
                "checks failed after the run: " + "; ".join(errors),
                hint="make the migration keep these queries working and fast; a change "
                'outside Ferry during the run fails it while `checks.schema_drift = "fail"`',
            )

    def on_failure(self, target: Target, error: BaseException) -> None:
        backup = self.backup
        if backup is None:
            return

        def restore() -> RollbackReport:
            restore_backup(target, self.root, backup.id, exact=True)
            return RollbackReport(
                self.run_id,
                "restore backup",
                [f"restored backup {backup.id}: {len(backup.tables)} tables match their checksums"],
            )

        # Recorded as a rollback of the run, with the trigger (the error) and its timing.
        reason = error.message if isinstance(error, FerryError) else f"{type(error).__name__}"
        try:
            record_rollback(target, self.run_id, f"automatic (safe mode): {reason}", restore)
            self.rolled_back = True
        except FerryError as failure:
            self.restore_error = str(failure)


def safe_apply(
    project: Project,
    target: str | None,
    *,
    backup_root: Path,
    to: str | None = None,
    out_of_order: bool | None = None,
    on_result: Callable[[StepResult], None] | None = None,
    production: bool = False,
    timeout: float | None = None,
) -> RunReport:
    """Apply in safe mode (with `production`, also lock timeouts with retry).

    Raises:
        RolledBack: the run failed; the database was restored and proven equal to before.
        FerryError: the run failed and the restore did too (both reasons in the message),
            or the backup could not be made (nothing was applied).
    """
    history = project.config.migrations.history_table
    guard = _BackupGuard(
        backup_root,
        project.config.checks,
        (history, "migration_branches"),
        project.config.backups.scope,
    )
    started = time.monotonic()

    def watch(result: StepResult) -> None:
        if on_result is not None:
            on_result(result)
        # Checked between migrations: a statement is never cut off halfway.
        if timeout is not None and time.monotonic() - started > timeout:
            raise RunTimeout(
                f"the run took longer than its {timeout:g} s limit (stopped after "
                f"{result.step.label})",
                hint="raise --timeout, or split the run with --to",
            )

    try:
        return commands.apply(
            project,
            target,
            to=to,
            out_of_order=out_of_order,
            on_result=watch,
            guard=guard,
            production=production,
        )
    except FerryError as error:
        if guard.rolled_back and guard.backup is not None:
            raise RolledBack(
                f"{error.message}\n  safe mode: the database was restored from backup "
                f"{guard.backup.id}; its {len(guard.backup.tables)} tables match their "
                "checksums and what the run created is gone",
                hint="the whole run was undone: fix the file and run "
                "`ferry apply --mode safe` again",
            ) from error
        if guard.restore_error is not None and guard.backup is not None:
            raise FerryError(
                f"{error.message}\n  safe mode could not restore backup {guard.backup.id}: "
                f"{guard.restore_error}",
                hint=f"restore it by hand with `ferry restore {guard.backup.id}`",
            ) from error
        raise
