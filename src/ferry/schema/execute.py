"""Running planned steps against a target and recording each in the history.

Two modes. Where the database has transactional DDL, a migration's statements and its history
row commit together, so a failure leaves nothing behind. Elsewhere (MySQL, MariaDB, or a
script marked `-- ferry:no-transaction`) each statement commits on its own and the history row
records how many ran, so a fixed file resumes at the failed statement.
"""

from __future__ import annotations

import getpass
import hashlib
import importlib.util
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from sqlalchemy import Connection

from ferry.db.target import Target
from ferry.errors import MigrationFailed, MigrationFileError
from ferry.schema.checksum import CURRENT_ALGORITHM
from ferry.schema.context import MigrationContext
from ferry.schema.history import History, RowType
from ferry.schema.placeholders import replace_placeholders
from ferry.schema.plan import Action, Step
from ferry.schema.scripts import Language, Script
from ferry.schema.splitter import SplitError, Statement, split_sql

log = logging.getLogger("ferry.schema")


@dataclass
class StepResult:
    step: Step
    status: str  # applied | undone | failed
    execution_ms: int
    statements_run: int
    statements_total: int
    #: Lines of undo statements skipped because their object never existed (partial undo).
    skipped_lines: list[int] = field(default_factory=list)


def prefix_checksum(statements: list[Statement], count: int) -> str:
    """Fingerprint of the first `count` statements, to check a resumed file did not change them."""
    digest = hashlib.sha256()
    for statement in statements[:count]:
        digest.update(" ".join(statement.sql.split()).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def load_python(script: Script) -> ModuleType:
    """Import a Python migration from its file under a private module name."""
    name = "ferry_migration_" + hashlib.sha1(str(script.path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, script.path)
    if spec is None or spec.loader is None:
        raise MigrationFileError("cannot load this Python file", file=script.path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise MigrationFileError(
            f"importing it failed: {exc}", file=script.path, line=_python_line(exc, script)
        ) from exc
    return module


def _python_line(exc: BaseException, script: Script) -> int | None:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(script.path)]
    return frames[-1].lineno if frames else None


class Executor:
    """Runs steps in order against one target, recording each in the history table.

    Args:
        target: the opened target (the caller holds its migration lock).
        history: the history table accessor; the tables must exist.
        next_rank: the installed_rank the next new row gets.
        placeholders: values for `${name}` (None disables replacement).
        run_id: names this run in every row it writes.
        on_result: called after each step, for progress output.
    """

    def __init__(
        self,
        target: Target,
        history: History,
        *,
        next_rank: int,
        placeholders: dict[str, str] | None,
        run_id: str,
        branch_of: dict[str, str],
        on_result: Callable[[StepResult], None] | None = None,
        lock_timeout: float | None = None,
        retries: int = 0,
    ) -> None:
        self.target = target
        self.adapter = target.adapter
        self.history = history
        self.rank = next_rank
        self.placeholders = placeholders
        self.run_id = run_id
        self.branch_of = branch_of
        self.on_result = on_result
        self.installed_by = getpass.getuser()[:100]
        self.driver_error: type[BaseException] = target.engine.dialect.loaded_dbapi.Error
        self._tx: Connection | None = None
        self._relaxed = False
        #: production mode: statements give up waiting for a lock after this many seconds,
        #: and the migration (or statement) is retried `retries` times with backoff
        self.lock_timeout = lock_timeout
        self.retries = retries
        self._auto: Connection | None = None

    # --- connections, opened once per run ---

    def _transactional(self) -> Connection:
        if self._tx is None:
            self._tx = self.target.connect()
            self._limit_lock_waits(self._tx)
        return self._tx

    def _limit_lock_waits(self, conn: Connection) -> None:
        if self.lock_timeout is not None:
            for sql in self.adapter.lock_timeout_sql(self.lock_timeout):
                conn.exec_driver_sql(sql)
            if conn.in_transaction():
                conn.commit()

    def _execute_retrying(self, conn: Connection, sql: str) -> None:
        attempt = 0
        while True:
            try:
                self.adapter.execute_script(conn, sql)
                return
            except self.driver_error as exc:
                if not self._retry(exc, attempt):
                    raise
                attempt += 1

    def _retry(self, exc: BaseException, attempt: int) -> bool:
        """Wait and say yes when a lock wait timed out and attempts remain."""
        if attempt >= self.retries or not self.adapter.is_lock_timeout(exc):
            return False
        log.warning("lock wait timed out; retrying in %s s", 2**attempt)
        time.sleep(2**attempt)
        return True

    def _autocommit(self) -> Connection:
        if self._auto is None:
            self._auto = self.target.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._limit_lock_waits(self._auto)
        return self._auto

    def _set_relaxed_flush(self, relaxed: bool) -> None:
        settings = self.adapter.relaxed_flush_sql
        if settings is None or relaxed == self._relaxed:
            return
        conn = self._transactional()
        with conn.begin():
            conn.exec_driver_sql(settings[0] if relaxed else settings[1])
        self._relaxed = relaxed

    def close(self) -> None:
        if self._relaxed and self._tx is not None:
            self._set_relaxed_flush(False)  # the pool must not hand out a relaxed session
        for conn in (self._tx, self._auto):
            if conn is not None:
                conn.close()
        self._tx = self._auto = None

    # --- public ---

    def run(self, steps: list[Step]) -> list[StepResult]:
        """Run every step; stop at the first failure.

        Raises:
            MigrationFailed: a statement failed; earlier steps stay applied.
            MigrationFileError: a script cannot be read or split.
        """
        results = []
        try:
            for index, step in enumerate(steps):
                self._set_relaxed_flush(index < len(steps) - 1)
                result = self._run_step(step)
                results.append(result)
                if self.on_result is not None:
                    self.on_result(result)
        finally:
            self.close()
        return results

    def statements(self, script: Script) -> list[Statement]:
        """The statements of a SQL script, placeholders replaced."""
        text = script.read_text()
        if self.placeholders is not None:
            values = dict(self.placeholders)
            values["ferry:filename"] = script.name
            text = replace_placeholders(text, values, path=script.path)
        try:
            return split_sql(text, self.adapter.split_dialect)
        except SplitError as exc:
            raise MigrationFileError(str(exc), file=script.path, line=exc.line) from exc

    # --- one step ---

    def _row_type(self, step: Step) -> RowType:
        python = step.script.language is Language.PYTHON
        if step.action is Action.UNDO:
            return RowType.UNDO_PYTHON if python else RowType.UNDO_SQL
        return RowType.PYTHON if python else RowType.SQL

    def _row(
        self,
        step: Step,
        *,
        success: bool,
        done: int,
        total: int,
        ms: int,
        done_checksum: str | None,
        error: str | None,
    ) -> dict[str, Any]:
        target_script = step.migration.script if step.migration is not None else step.script
        version = target_script.version
        return {
            "version": str(version) if version is not None else None,
            "description": target_script.description[:200],
            "type": str(self._row_type(step)),
            "script": step.script.name[:1000],
            "checksum": target_script.checksum,
            "checksum_algorithm": CURRENT_ALGORITHM,
            "installed_by": self.installed_by,
            "applied_at": datetime.now(UTC).replace(tzinfo=None),
            "execution_ms": ms,
            "success": success,
            "branch": self.branch_of.get(str(version)) if version is not None else None,
            "run_id": self.run_id,
            "statements_done": done,
            "statements_total": total,
            "done_checksum": done_checksum,
            "error": error,
        }

    def _write(self, conn: Connection, step: Step, rank: int | None, values: dict[str, Any]) -> int:
        """Insert a new row, or update the row `rank`; returns the row's rank."""
        if rank is None:
            rank = self.rank
            self.rank += 1
            self.history.insert(conn, {"installed_rank": rank, **values})
        else:
            self.history.update(conn, rank, values)
        return rank

    def _run_step(self, step: Step) -> StepResult:
        transactional = self.adapter.transactional_ddl and not step.script.directives.no_transaction
        if step.script.language is Language.PYTHON:
            return self._run_python(step, transactional)
        statements = self.statements(step.script)
        if transactional:
            return self._run_transactional(step, statements)
        return self._run_per_statement(step, statements)

    def _failure(
        self,
        step: Step,
        statement: Statement,
        exc: BaseException,
        *,
        done: int,
        total: int,
        committed: bool,
    ) -> MigrationFailed:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        line = statement.line + self.adapter.error_line_offset(exc, statement.sql)
        version = str(step.script.version or step.script.description)
        if committed and done:
            hint = (
                f"{done} of {total} statements ran and stay applied (this database commits "
                f"DDL at once). Fix the statement at line {line}, then `ferry apply` resumes "
                "there; or `ferry undo` reverts the statements that ran."
            )
        else:
            hint = "nothing of this migration was applied. Fix the file and run `ferry apply`."
        if step.action is Action.UNDO:
            hint = (
                f"the undo stopped at statement {done + 1} of {total}; fix it and run "
                "`ferry undo` again."
            )
        return MigrationFailed(
            version=version,
            file=step.script.path,
            line=line,
            statement=statement.sql,
            reason=reason,
            hint=hint,
        )

    def _run_transactional(self, step: Step, statements: list[Statement]) -> StepResult:
        conn = self._transactional()
        total = len(statements)
        rank = step.resumes.installed_rank if step.resumes else None
        attempt = 0
        while True:
            started = time.perf_counter()
            current = statements[0] if statements else Statement("", 1)
            try:
                with conn.begin():
                    for current in statements:
                        self.adapter.execute_script(conn, current.sql)
                    ms = int((time.perf_counter() - started) * 1000)
                    self._write(
                        conn,
                        step,
                        rank,
                        self._row(
                            step,
                            success=True,
                            done=total,
                            total=total,
                            ms=ms,
                            done_checksum=None,
                            error=None,
                        ),
                    )
                return StepResult(step, _done_status(step), ms, total, total)
            except self.driver_error as exc:
                if self._retry(exc, attempt):  # rolled back: run it again from the top
                    attempt += 1
                    continue
                failure = self._failure(step, current, exc, done=0, total=total, committed=False)
                ms = int((time.perf_counter() - started) * 1000)
                with conn.begin():
                    self._write(
                        conn,
                        step,
                        rank,
                        self._row(
                            step,
                            success=False,
                            done=0,
                            total=total,
                            ms=ms,
                            done_checksum=None,
                            error=failure.message[:4000],
                        ),
                    )
                raise failure from exc

    def _run_per_statement(self, step: Step, statements: list[Statement]) -> StepResult:
        conn = self._autocommit()
        total = len(statements)
        start_at = step.resume_from
        if start_at:
            assert step.resumes is not None
            if (
                start_at > total
                or prefix_checksum(statements, start_at) != step.resumes.done_checksum
            ):
                raise MigrationFileError(
                    f"the {start_at} statements that already ran were changed since the failure",
                    file=step.script.path,
                    hint="only edit the failed statement and those after it; or `ferry undo` "
                    "the part that ran, or `ferry repair` to forget the failure",
                )
        started = time.perf_counter()
        rank = self._write(
            conn,
            step,
            step.resumes.installed_rank if step.resumes else None,
            self._row(
                step,
                success=False,
                done=start_at,
                total=total,
                ms=0,
                done_checksum=prefix_checksum(statements, start_at),
                error="running",
            ),
        )
        skipped: list[int] = []
        for index in range(start_at, total):
            statement = statements[index]
            try:
                self._execute_retrying(conn, statement.sql)
            except self.driver_error as exc:
                if step.partial_undo and self.adapter.is_missing_object_error(exc):
                    # That part of the migration never ran; nothing to revert.
                    skipped.append(statement.line)
                else:
                    failure = self._failure(
                        step, statement, exc, done=index, total=total, committed=True
                    )
                    ms = int((time.perf_counter() - started) * 1000)
                    self.history.update(
                        conn,
                        rank,
                        {
                            "error": failure.message[:4000],
                            "execution_ms": ms,
                            "statements_done": index,
                            "done_checksum": prefix_checksum(statements, index),
                        },
                    )
                    raise failure from exc
            self.history.update(
                conn,
                rank,
                {
                    "statements_done": index + 1,
                    "done_checksum": prefix_checksum(statements, index + 1),
                },
            )
        ms = int((time.perf_counter() - started) * 1000)
        self.history.update(
            conn,
            rank,
            {
                "success": True,
                "error": None,
                "execution_ms": ms,
                "statements_done": total,
            },
        )
        return StepResult(step, _done_status(step), ms, total - start_at, total, skipped)

    def _run_python(self, step: Step, transactional: bool) -> StepResult:
        module = load_python(step.script)
        name = "downgrade" if step.action is Action.UNDO else "upgrade"
        function = getattr(module, name, None)
        if not callable(function):
            raise MigrationFileError(f"defines no `{name}(ctx)` function", file=step.script.path)
        conn = self._transactional() if transactional else self._autocommit()
        context = MigrationContext(
            connection=conn,
            dialect=self.adapter.name,
            placeholders=dict(self.placeholders or {}),
            log=logging.getLogger(f"ferry.migration.{step.script.path.stem}"),
        )
        started = time.perf_counter()
        rank = step.resumes.installed_rank if step.resumes else None

        def record(success: bool, error: str | None) -> int:
            ms = int((time.perf_counter() - started) * 1000)
            row = self._row(
                step,
                success=success,
                done=int(success),
                total=1,
                ms=ms,
                done_checksum=None,
                error=error,
            )
            if transactional and not conn.in_transaction():
                with conn.begin():
                    self._write(conn, step, rank, row)
            else:
                self._write(conn, step, rank, row)
            return ms

        try:
            if transactional:
                # The function's work and its history row commit together.
                with conn.begin():
                    function(context)
                    ms = record(True, None)
            else:
                function(context)
                ms = record(True, None)
        except Exception as exc:
            line = _python_line(exc, step.script) or 1
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            failure = MigrationFailed(
                version=str(step.script.version or step.script.description),
                file=step.script.path,
                line=line,
                statement=f"{name}(ctx)",
                reason=reason,
                hint="fix the function and run the command again"
                + ("" if transactional else "; what it did before failing stays applied"),
            )
            record(False, failure.message[:4000])
            raise failure from exc
        return StepResult(step, _done_status(step), ms, 1, 1)


def _done_status(step: Step) -> str:
    return "undone" if step.action is Action.UNDO else "applied"
