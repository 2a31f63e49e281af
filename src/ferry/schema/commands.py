"""One public function per CLI verb. The CLI and the service only translate these."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ferry.config.project import Project, Strategy
from ferry.db.lock import migration_lock
from ferry.db.target import Target, open_target
from ferry.errors import StrategyError
from ferry.runs import SchemaRunLog
from ferry.schema.dag import link, topological_order
from ferry.schema.execute import Executor, StepResult
from ferry.schema.history import AppliedState, History, HistoryRow, RowType
from ferry.schema.lint import LintReport, lint_migrations, table_sizes
from ferry.schema.plan import Action, Problem, Step, find_problems, plan_apply, plan_undo
from ferry.schema.preconditions import BackupNeed, Preconditions, check_preconditions
from ferry.schema.scripts import MigrationSet, Script, discover
from ferry.schema.snapshot import SchemaWatch, conclude, watch
from ferry.schema.splitter import Statement
from ferry.schema.version import Version
from ferry.validate.report import Category, ValidationReport


def load_migrations(project: Project) -> MigrationSet:
    """Discover the project's migrations and link them into the version graph."""
    migrations = discover(project.migration_folders)
    link(migrations, branching=project.strategy is Strategy.BRANCHING)
    return migrations


@dataclass
class Session:
    """A target opened with the project's migrations loaded."""

    project: Project
    target: Target
    migrations: MigrationSet
    history: History

    def placeholders(self) -> dict[str, str] | None:
        if not self.project.config.migrations.placeholder_replacement:
            return None
        values = {
            "ferry:target": self.target.name,
            "ferry:table": self.history.table.name,
            "ferry:dialect": self.target.adapter.name,
            "ferry:user": self.target.url.username or "",
            "ferry:database": self.target.url.database or "",
        }
        values.update(self.project.placeholders_for(self.target.name))
        return values

    def read_state(self) -> AppliedState:
        with self.target.connect() as conn:
            return self.history.read(conn)

    def branch_of(self) -> dict[str, str]:
        return {str(m.version): m.branch for m in self.migrations.versioned}


@contextmanager
def open_session(project: Project, target: str | None = None) -> Iterator[Session]:
    migrations = load_migrations(project)
    opened = open_target(project, target)
    try:
        yield Session(project, opened, migrations, History(project.config.migrations.history_table))
    finally:
        opened.dispose()


@contextmanager
def locked(session: Session) -> Iterator[None]:
    """Hold the target's migration lock and make sure the history tables exist."""
    with migration_lock(
        session.target.adapter,
        session.target.engine,
        f"migrate:{session.history.table.name}",
        timeout=session.project.lock_timeout_for(session.target.name),
        target=session.target.name,
    ):
        with session.target.connect() as conn, conn.begin():
            session.history.ensure(conn)
        yield


# --- plan / apply / undo ---


class RunGuard:
    """Hooks around a run, inside its lock (safe mode: back up before, restore on failure)."""

    #: precondition warnings found before the run (long transactions in the way)
    warnings: list[str] = []  # noqa: RUF012 - replaced per run, never mutated
    #: the backup the guard will make, for the free-space precondition (None: no backup)
    backup_need: BackupNeed | None = None
    #: the tables the plan touches (set before `before`); None when that is not known
    #: (a Python migration, SQL that could not be read): then everything counts as touched
    touched: list[str] | None = None
    #: the schema check after the run (set before `after`)
    schema: Category | None = None
    #: every check after the run, once `after` has made it
    report: ValidationReport | None = None
    #: `on_failure` undid the run (the database is as it was before it)
    rolled_back: bool = False

    def before(self, target: Target, run_id: str) -> None:
        """Called once the lock is held and there is something to apply."""

    def after(self, target: Target) -> None:
        """Called after a successful run, still in the lock; raising fails the run."""

    def on_failure(self, target: Target, error: BaseException) -> None:
        """Called when the run failed, before the error propagates."""


@dataclass
class PlannedScript:
    step: Step
    statements: list[Statement]


@dataclass
class RunReport:
    """What `plan`, `apply` or `undo` did (or, for a plan or dry run, would do)."""

    target: str
    url: str
    run_id: str
    dry_run: bool
    planned: list[PlannedScript] = field(default_factory=list)
    results: list[StepResult] = field(default_factory=list)
    #: lint findings of the planned scripts (plan only)
    risk: LintReport | None = None
    #: missing objects (errors) and long transactions in the way (warnings)
    preconditions: Preconditions | None = None
    #: after a run: `schema` (drift against what the migrations produce) and, in safe
    #: mode, the application and performance checks
    validation: ValidationReport | None = None

    def sql_text(self) -> str:
        """The full SQL the run would execute, file by file."""
        parts = [f"-- Ferry plan for target {self.target} ({self.url}), run {self.run_id}"]
        for item in self.planned:
            step = item.step
            parts.append(f"\n-- {step.action} {step.label} ({step.script.name}): {step.reason}")
            for index, statement in enumerate(item.statements):
                if index < step.resume_from:
                    continue
                parts.append(f"-- {step.script.name}:{statement.line}\n{statement.sql};")
        return "\n".join(parts) + "\n"


def _planned(session: Session, steps: list[Step]) -> list[PlannedScript]:
    executor = Executor(
        session.target,
        session.history,
        next_rank=0,
        placeholders=session.placeholders(),
        run_id="",
        branch_of={},
    )
    planned = []
    for step in steps:
        statements = (
            executor.statements(step.script)
            if step.script.language.value == "sql"
            else [
                Statement(
                    f"-- Python: {'downgrade' if step.action is Action.UNDO else 'upgrade'}"
                    f"(ctx) in {step.script.name}",
                    1,
                )
            ]
        )
        planned.append(PlannedScript(step, statements))
    return planned


def plan(
    project: Project,
    target: str | None = None,
    *,
    to: str | None = None,
    out_of_order: bool | None = None,
) -> RunReport:
    """Pending migrations of a target with the SQL that would run and its risk. Changes
    nothing."""
    with open_session(project, target) as session:
        steps = _apply_steps(session, session.read_state(), to, out_of_order)
        report = RunReport(
            session.target.name, session.target.safe_url, "", True, _planned(session, steps)
        )
        report.risk = _lint(session, [s.script for s in steps])
        report.preconditions = _preconditions(session, report.planned)
        return report


def _preconditions(
    session: Session, planned: list[PlannedScript], backup: BackupNeed | None = None
) -> Preconditions:
    return check_preconditions(
        session.target,
        [p.step for p in planned],
        {p.step.script.name: [s.sql for s in p.statements] for p in planned},
        backup=backup,
    )


def _lint(session: Session, scripts: list[Script] | None) -> LintReport:
    with session.target.connect() as conn:
        sizes = table_sizes(conn, session.target.adapter.name)
    return lint_migrations(
        session.migrations,
        dialect=session.target.adapter.name,
        split_dialect=session.target.adapter.split_dialect,
        table_rows=sizes,
        transactional_ddl=session.target.adapter.transactional_ddl,
        only=scripts,
        require_undo=session.project.strategy is not Strategy.FORWARD_ONLY,
    )


def lint(project: Project, target: str | None = None, *, everything: bool = False) -> LintReport:
    """Lint and risk of the target's pending migrations (or of every migration), rated by
    the target's table sizes."""
    with open_session(project, target) as session:
        if everything:
            return _lint(session, None)
        steps = _apply_steps(session, session.read_state(), None, True)
        return _lint(session, [s.script for s in steps])


def _apply_steps(
    session: Session, state: AppliedState, to: str | None, out_of_order: bool | None
) -> list[Step]:
    allow = session.project.config.migrations.out_of_order if out_of_order is None else out_of_order
    return plan_apply(
        session.migrations,
        state,
        session.project.strategy,
        to=Version(to) if to else None,
        allow_out_of_order=allow,
    )


def apply(
    project: Project,
    target: str | None = None,
    *,
    to: str | None = None,
    dry_run: bool = False,
    out_of_order: bool | None = None,
    on_result: Callable[[StepResult], None] | None = None,
    guard: RunGuard | None = None,
    production: bool = False,
) -> RunReport:
    """Apply pending migrations (then changed repeatables) under the migration lock.

    `guard` (safe mode) runs inside the lock: `before` when there is something to apply,
    `on_failure` when the run fails, before the error propagates. `production` makes each
    statement give up waiting for a lock after `migrations.statement_lock_timeout` seconds
    and retries `migrations.lock_retries` times with backoff.

    Raises:
        MigrationFailed: a statement failed; the report of earlier steps is on the history.
        ValidationFailed, StrategyError, LockTimeout, ConnectionFailed, MigrationFileError.
    """
    with open_session(project, target) as session:
        if dry_run:
            steps = _apply_steps(session, session.read_state(), to, out_of_order)
            return RunReport(
                session.target.name, session.target.safe_url, "", True, _planned(session, steps)
            )
        run_id = str(uuid.uuid4())
        with locked(session):
            state = session.read_state()
            steps = _apply_steps(session, state, to, out_of_order)
            report = RunReport(session.target.name, session.target.safe_url, run_id, False)
            attributable: set[str] | None = None
            if guard is not None and steps:
                found = _preconditions(session, _planned(session, steps), guard.backup_need)
                if found.space is not None and not found.space.enough:
                    raise found.space.error()
                if found.errors:
                    raise StrategyError(
                        "preconditions fail: " + "; ".join(found.errors),
                        hint="fix the plan or the target first; nothing was changed",
                    )
                report.preconditions = found
                guard.touched = sorted(found.tables) if found.complete else None
                if found.complete:
                    attributable = found.tables | found.created
            seen = watch(session.target, session.history.table.name, has_history=bool(state.rows))
            if guard is not None and steps:
                assert report.preconditions is not None
                report.preconditions.warnings += [
                    f"drift before the run: {line}" for line in seen.drift_before
                ]
                guard.warnings = report.preconditions.warnings
                guard.before(session.target, run_id)
            log = _run_log(session, run_id, "apply", steps)
            try:
                _execute(session, state, steps, run_id, report, on_result, production)
                report.validation = ValidationReport()
                schema = report.validation.category("schema")
                _check_schema(session, seen, run_id, bool(steps), attributable, schema)
                if guard is not None and steps:
                    guard.schema = schema
                    guard.after(session.target)
                    if guard.report is not None:
                        report.validation = guard.report
            except BaseException as error:
                undone = False
                if guard is not None and steps:
                    guard.on_failure(session.target, error)
                    undone = guard.rolled_back
                if log is not None:
                    checked = guard.report if guard is not None else None
                    log.fail(
                        _done(report),
                        error,
                        rolled_back=undone,
                        validation=(checked or report.validation or ValidationReport()).as_dict(),
                    )
                raise
            if log is not None:
                log.finish(_done(report), report.validation.as_dict())
            return report


def _run_log(session: Session, run_id: str, action: str, steps: list[Step]) -> SchemaRunLog | None:
    """The run's record in ferry_runs, started; None when there is nothing to run."""
    if not steps:
        return None
    log = SchemaRunLog(session.target, run_id, action, [step.label for step in steps])
    log.start()
    return log


def _done(report: RunReport) -> list[str]:
    return [result.step.label for result in report.results if result.status != "failed"]


def _check_schema(
    session: Session,
    seen: SchemaWatch,
    run_id: str,
    changed: bool,
    attributable: set[str] | None,
    category: Category,
) -> None:
    """Drift after a run, into the report's `schema` category. Drift that was there before
    the run is a warning. A table that changed during the run although no migration of it
    names the table is drift introduced outside Ferry: it can only be told apart when every
    statement of the plan was read (`attributable`; not with Python migrations, and tables
    linked by foreign keys count as named), so only then, and only when the project sets
    `checks.schema_drift = "fail"`, does it fail the run. Everything else the run changed is
    taken as the migrations' doing, which is what they produced."""
    if not changed and seen.recorded:  # nothing applied: compare only, the snapshot stays
        drifted, introduced = seen.drift_before, list[str]()
    else:
        drifted, introduced = conclude(session.target, seen, run_id, attributable)
    if seen.note:
        category.warnings.append(seen.note)
    category.warnings += [f"drift: {line}" for line in drifted if line not in introduced]
    category.details["drift"] = drifted
    for line in introduced:
        message = f"changed outside Ferry during the run: {line}"
        if session.project.config.checks.schema_drift == "fail":
            category.fail(message)
        else:
            category.warnings.append(message)


def _execute(
    session: Session,
    state: AppliedState,
    steps: list[Step],
    run_id: str,
    report: RunReport,
    on_result: Callable[[StepResult], None] | None,
    production: bool = False,
) -> None:
    def record(result: StepResult) -> None:
        report.results.append(result)
        if on_result is not None:
            on_result(result)

    settings = session.project.config.migrations
    executor = Executor(
        session.target,
        session.history,
        next_rank=state.next_rank,
        placeholders=session.placeholders(),
        run_id=run_id,
        branch_of=session.branch_of(),
        on_result=record,
        lock_timeout=settings.statement_lock_timeout if production else None,
        retries=settings.lock_retries if production else 0,
    )
    try:
        executor.run(steps)
    finally:
        if steps:
            _record_branch_heads(session, run_id)


def _record_branch_heads(session: Session, run_id: str) -> None:
    state = session.read_state()
    heads: dict[str, str] = {}
    for migration in topological_order(session.migrations.versioned):
        if migration.version in state.applied:
            heads[migration.branch] = str(migration.version)
    with session.target.connect() as conn, conn.begin():
        session.history.write_branches(conn, heads, datetime.now(UTC).replace(tzinfo=None), run_id)


def undo(
    project: Project,
    target: str | None = None,
    *,
    to: str | None = None,
    steps: int | None = None,
    dry_run: bool = False,
    on_result: Callable[[StepResult], None] | None = None,
    only: set[Version] | None = None,
) -> RunReport:
    """Undo the newest applied migrations, one (default), `steps`, down to version `to`, or
    exactly the versions in `only`."""
    with open_session(project, target) as session:
        target_version = Version(to) if to is not None else None
        if dry_run:
            planned = plan_undo(
                session.migrations,
                session.read_state(),
                project.strategy,
                to=target_version,
                steps=steps,
                only=only,
            )
            return RunReport(
                session.target.name, session.target.safe_url, "", True, _planned(session, planned)
            )
        run_id = str(uuid.uuid4())
        with locked(session):
            state = session.read_state()
            planned = plan_undo(
                session.migrations,
                state,
                project.strategy,
                to=target_version,
                steps=steps,
                only=only,
            )
            report = RunReport(session.target.name, session.target.safe_url, run_id, False)
            seen = watch(session.target, session.history.table.name, has_history=bool(state.rows))
            log = _run_log(session, run_id, "undo", planned)
            try:
                _execute(session, state, planned, run_id, report, on_result)
                report.validation = ValidationReport()
                _check_schema(
                    session, seen, run_id, bool(planned), None, report.validation.category("schema")
                )
            except BaseException as error:
                if log is not None:
                    log.fail(_done(report), error, rolled_back=False)
                raise
            if log is not None:
                log.finish(_done(report), report.validation.as_dict())
            return report


# --- status, history, validate, repair, baseline ---


@dataclass
class StatusLine:
    version: str
    description: str
    type: str
    state: str
    applied_at: str
    branch: str
    script: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class StatusReport:
    target: str
    url: str
    lines: list[StatusLine]
    problems: list[Problem]

    @property
    def current(self) -> str | None:
        applied = [line.version for line in self.lines if line.state == "applied" and line.version]
        return applied[-1] if applied else None


def status(project: Project, target: str | None = None) -> StatusReport:
    """Every migration with its state on a target: applied, pending, failed, ..."""
    with open_session(project, target) as session:
        state = session.read_state()
        migrations = session.migrations
        problems = find_problems(migrations, state, project.strategy)
        late = {p.version for p in problems if p.kind == "out_of_order"}
        changed = {p.version for p in problems if p.kind == "checksum_mismatch"}
        lines: list[StatusLine] = []
        order = (
            topological_order(migrations.versioned)
            if project.strategy is Strategy.BRANCHING
            else migrations.versioned
        )
        for migration in order:
            v = migration.version
            row = state.failed.get(v) or state.applied.get(v)
            if v in state.failed:
                failed = state.failed[v]
                what = "undo" if failed.type.is_undo else "apply"
                text = "failed" if failed.statements_done == 0 else "partial"
                detail = (
                    f"{what} failed: {failed.statements_done} of "
                    f"{failed.statements_total} statements ran; {failed.error or ''}"
                )
            elif v in state.applied:
                text, detail = "applied", ""
                if str(v) in changed:
                    text, detail = "changed", "file changed after it was applied"
            elif state.baseline is not None and v <= state.baseline:
                text, detail = "below baseline", ""
            elif str(v) in late:
                text, detail = "pending", "out of order"
            else:
                text, detail = "pending", ""
            lines.append(
                StatusLine(
                    str(v),
                    migration.description,
                    migration.script.language.value.upper(),
                    text,
                    _when(row),
                    migration.branch,
                    migration.script.name,
                    detail,
                )
            )
        for v, row in state.applied.items():
            if migrations.get(v) is None:
                lines.append(
                    StatusLine(
                        str(v),
                        row.description,
                        str(row.type),
                        "missing",
                        _when(row),
                        row.branch or "",
                        row.script,
                        "applied, but the file is gone",
                    )
                )
        if state.baseline is not None:
            base = next(r for r in state.rows if r.type is RowType.BASELINE)
            lines.insert(
                0,
                StatusLine(
                    str(state.baseline),
                    base.description,
                    "BASELINE",
                    "baseline",
                    _when(base),
                    "",
                    base.script,
                ),
            )
        for script in migrations.repeatable:
            row = state.repeatable.get(script.description)
            if row is None:
                text = "pending"
            elif row.checksum == script.checksum_with(row.checksum_algorithm or "sha256-norm1"):
                text = "applied"
            else:
                text = "outdated"
            lines.append(
                StatusLine("", script.description, "REPEATABLE", text, _when(row), "", script.name)
            )
        return StatusReport(session.target.name, session.target.safe_url, lines, problems)


def _when(row: HistoryRow | None) -> str:
    return row.applied_at.strftime("%Y-%m-%d %H:%M:%S") if row is not None else ""


def history(project: Project, target: str | None = None) -> list[HistoryRow]:
    """Every history row of a target, oldest first."""
    with open_session(project, target) as session:
        return session.read_state().rows


def validate(project: Project, target: str | None = None) -> list[Problem]:
    """Changed checksums, applied migrations whose files are gone, out-of-order pending ones,
    failed migrations. An empty list means files and history agree."""
    with open_session(project, target) as session:
        return find_problems(session.migrations, session.read_state(), project.strategy)


@dataclass
class RepairReport:
    checksums_realigned: list[str]
    failed_rows_removed: int
    missing_marked_deleted: list[str]


def repair(project: Project, target: str | None = None) -> RepairReport:
    """Realign checksums after deliberate edits, remove failed rows, and mark applied
    migrations whose files are gone as deleted."""
    with open_session(project, target) as session, locked(session):
        state = session.read_state()
        realigned: list[str] = []
        deleted: list[str] = []
        now = datetime.now(UTC).replace(tzinfo=None)
        rank = state.next_rank
        with session.target.connect() as conn, conn.begin():
            for version, row in state.applied.items():
                migration = session.migrations.get(version)
                if migration is None:
                    session.history.insert(
                        conn,
                        {
                            "installed_rank": rank,
                            "version": str(version),
                            "description": row.description,
                            "type": str(RowType.DELETE),
                            "script": row.script,
                            "checksum": None,
                            "checksum_algorithm": None,
                            "installed_by": "ferry repair",
                            "applied_at": now,
                            "execution_ms": 0,
                            "success": True,
                            "branch": row.branch,
                            "run_id": None,
                            "statements_done": 0,
                            "statements_total": 0,
                        },
                    )
                    rank += 1
                    deleted.append(str(version))
                elif (row.checksum, row.checksum_algorithm) != (
                    migration.script.checksum,
                    migration.script.algorithm,
                ):
                    session.history.update(
                        conn,
                        row.installed_rank,
                        {
                            "checksum": migration.script.checksum,
                            "checksum_algorithm": migration.script.algorithm,
                        },
                    )
                    if row.checksum_algorithm == migration.script.algorithm:
                        realigned.append(str(version))
            removed = session.history.delete_failed(conn)
        return RepairReport(realigned, removed, deleted)


def baseline(
    project: Project, target: str | None = None, *, version: str, description: str = "baseline"
) -> HistoryRow:
    """Adopt an existing database: versions up to `version` count as applied.

    Raises:
        StrategyError: the target already has history.
    """
    with open_session(project, target) as session, locked(session):
        state = session.read_state()
        if state.rows:
            raise StrategyError(
                f"target `{session.target.name}` already has migration history "
                f"({len(state.rows)} rows); baseline is for databases Ferry has not migrated",
                hint="`ferry history` shows what is recorded",
            )
        values = {
            "installed_rank": 1,
            "version": str(Version(version)),
            "description": description,
            "type": str(RowType.BASELINE),
            "script": f"<< baseline {version} >>",
            "checksum": None,
            "checksum_algorithm": None,
            "installed_by": "ferry baseline",
            "applied_at": datetime.now(UTC).replace(tzinfo=None),
            "execution_ms": 0,
            "success": True,
            "branch": None,
            "run_id": str(uuid.uuid4()),
            "statements_done": 0,
            "statements_total": 0,
        }
        with session.target.connect() as conn, conn.begin():
            session.history.insert(conn, values)
        return session.read_state().rows[0]
