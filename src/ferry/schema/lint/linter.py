"""The linter: rules applied statement by statement, and the public entry points."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from sqlglot import exp

from ferry.errors import MigrationFileError
from ferry.schema.lint.model import (
    _RANK,
    INDEX_RATE,
    LARGE_TABLE_ROWS,
    LOW_ROWS,
    REWRITE_RATE,
    RULES,
    Finding,
    LintReport,
)
from ferry.schema.lint.sql import (
    _DDL_WORDS,
    _DROP_TABLE,
    _GENERIC,
    _LOCK_TIMEOUT,
    _MYSQL_ONLINE,
    _NO_TIMEOUT,
    _PARSED_WORDS,
    _PROFILES,
    _TRUNCATE,
    ColumnTypes,
    _default,
    _estimate,
    _first_word,
    _has,
    _header_allows,
    _loss_severity,
    _narrows,
    _parse,
    _Profile,
    _shape,
    _size_severity,
    _snippet,
    _star_columns,
    _statement_allows,
    _Table,
    _table,
    _unquote,
    _volatile,
    _widens,
    log,
)
from ferry.schema.scripts import Language, MigrationSet, Script
from ferry.schema.splitter import Dialect, SplitError, Statement, split_sql

# --- the linter ---

_Rate = Callable[[int | None], str]


class _Linter:
    """Walks one file's statements in order, keeping what earlier statements did."""

    def __init__(
        self,
        *,
        file: Path,
        profile: _Profile,
        allowed: Iterable[str],
        table_rows: Mapping[str, int] | None,
        columns: ColumnTypes,
        lines: list[str] | None,
    ) -> None:
        self.file = file
        self.profile = profile
        self.allowed = frozenset(allowed)
        self.sizes = {name.lower(): rows for name, rows in (table_rows or {}).items()}
        self.columns = columns
        self.lines = lines
        self.findings: list[Finding] = []
        self.created: set[str] = set()  # tables created earlier in this file: new and empty
        self.added: dict[str, set[str]] = {}  # columns added earlier in this file
        self.lock_timeout = False
        self.unprotected: list[tuple[Statement, _Table, frozenset[str]]] = []
        self.ddl: list[Statement] = []
        self.allow_here = self.allowed
        self.current = Statement("", 1)

    def rows(self, table: _Table) -> int | None:
        return self.sizes.get(table.shown.lower(), self.sizes.get(table.key))

    def existing(self, table: _Table) -> bool:
        return table.key not in self.created

    def emit(
        self,
        rule: str,
        rate: _Rate | str,
        message: str,
        suggestion: str,
        table: _Table | None = None,
        estimate: tuple[str, int | None] | None = None,
    ) -> None:
        """Record a finding on the current statement, rated by the table's size."""
        if rule in self.allow_here:
            return
        rows = self.rows(table) if table is not None else None
        self.findings.append(
            Finding(
                rule=rule,
                category=RULES[rule].category,
                severity=rate if isinstance(rate, str) else rate(rows),
                file=self.file,
                line=self.current.line,
                statement=_snippet(self.current.sql),
                message=message,
                suggestion=suggestion,
                table=table.shown if table is not None else None,
                rows=rows,
                estimate=_estimate(estimate[0], rows, estimate[1]) if estimate else None,
            )
        )

    # --- per statement ---

    def statement(self, statement: Statement) -> None:
        self.current = statement
        self.allow_here = self.allowed | _statement_allows(statement, self.lines)
        word = _first_word(statement.sql)
        if word in _DDL_WORDS:
            self.ddl.append(statement)
        timeout = _LOCK_TIMEOUT.search(statement.sql) if word in ("SET", "SELECT") else None
        if timeout:
            value = (timeout["value"] or timeout["config"] or "").strip().lower()
            self.lock_timeout = not _NO_TIMEOUT.fullmatch(value)
            return
        if word not in _PARSED_WORDS:
            return
        tree = _parse(statement.sql, self.profile.sqlglot)
        if tree is None:
            self.regex_rules(statement.sql)
            return
        before = len(self.findings)
        try:
            self.tree_rules(tree)
        except Exception:  # a rule tripping over an odd tree must not stop the lint
            log.debug("lint rule failed on %s:%s", self.file, statement.line, exc_info=True)
            del self.findings[before:]
            self.regex_rules(statement.sql)

    def regex_rules(self, sql: str) -> None:
        """What is safe to say about a statement sqlglot could not parse."""
        for pattern, rule in ((_DROP_TABLE, self.drop_table), (_TRUNCATE, self.truncate)):
            match = pattern.match(sql)
            for name in re.split(r"\s*,\s*", match["names"]) if match else []:
                shown = _unquote(name)
                rule(_Table(shown, shown.rsplit(".", 1)[-1].lower()))

    def tree_rules(self, tree: exp.Expression) -> None:
        if isinstance(tree, exp.Drop):
            kind = str(tree.args.get("kind") or "").upper()
            if kind == "TABLE" and not tree.args.get("temporary"):
                for node in tree.expressions or tree.args.get("tables") or []:
                    if (table := _table(node)) is not None:
                        self.drop_table(table)
        elif isinstance(tree, exp.TruncateTable):
            for node in tree.expressions:
                if (table := _table(node)) is not None:
                    self.truncate(table)
        elif isinstance(tree, exp.Delete | exp.Update):
            self.dml(tree)
        elif isinstance(tree, exp.Alter):
            self.alter(tree)
        elif isinstance(tree, exp.Create):
            self.create(tree)

    # --- data loss ---

    def drop_table(self, table: _Table) -> None:
        if self.existing(table):
            self.emit(
                "drop-table",
                _loss_severity,
                f"DROP TABLE `{table.shown}` deletes the table and all its rows",
                "stop using the table first (expand/contract): rename it, drop it in a later "
                "migration, and keep a backup",
                table,
                ("deletes", None),
            )
        self.created.discard(table.key)
        self.columns.tables.pop(table.key, None)

    def truncate(self, table: _Table) -> None:
        if self.existing(table):
            self.emit(
                "truncate",
                _loss_severity,
                f"TRUNCATE `{table.shown}` deletes all its rows",
                "copy the rows elsewhere first, or DELETE with a WHERE that names what goes",
                table,
                ("deletes", None),
            )

    def dml(self, tree: exp.Delete | exp.Update) -> None:
        target = tree.this
        if isinstance(tree, exp.Delete) and tree.args.get("tables"):
            target = tree.args["tables"][0]  # MySQL: DELETE t1 FROM t1 JOIN t2 ON ...
        table = _table(target)
        if table is None:
            return
        joins = tree.this.args.get("joins") or [] if isinstance(tree.this, exp.Table) else []
        bounded = tree.args.get("where") or any(
            j.args.get("on") or j.args.get("using") for j in joins
        )
        if not bounded and self.existing(table) and not self.backfill(tree, table):
            if isinstance(tree, exp.Delete):
                self.emit(
                    "delete-without-where",
                    _loss_severity,
                    f"DELETE on `{table.shown}` has no WHERE: it deletes every row",
                    "add a WHERE that names the rows to delete (or TRUNCATE on purpose and "
                    "allow the rule)",
                    table,
                    ("deletes", None),
                )
            else:
                self.emit(
                    "update-without-where",
                    _loss_severity,
                    f"UPDATE of `{table.shown}` has no WHERE: it overwrites every row",
                    "add a WHERE that names the rows to change; for a backfill, update in "
                    "batches by key range",
                    table,
                    ("overwrites", None),
                )
            return
        rows = self.rows(table)
        if rows is not None and rows > LARGE_TABLE_ROWS:
            verb = "DELETE" if isinstance(tree, exp.Delete) else "UPDATE"
            self.emit(
                "large-update",
                "medium",
                f"{verb} on `{table.shown}` (~{rows:,} rows) runs as one transaction, holding "
                "row locks and growing the undo log or dead rows until it commits",
                "run it in batches (a few thousand rows per transaction, by key range), "
                "outside the schema migration if possible",
                table,
                ("touches up to", None),
            )

    def backfill(self, tree: exp.Delete | exp.Update, table: _Table) -> bool:
        """An UPDATE that only sets columns this file added loses nothing."""
        added = self.added.get(table.key, set())
        targets = [e.this for e in tree.expressions if isinstance(e, exp.EQ)]
        return (
            isinstance(tree, exp.Update)
            and bool(targets)
            and all(isinstance(t, exp.Column) and t.name.lower() in added for t in targets)
        )

    # --- ALTER TABLE ---

    def alter(self, tree: exp.Alter) -> None:
        table = _table(tree.this)
        if table is None or str(tree.args.get("kind") or "TABLE").upper() != "TABLE":
            return
        existing = self.existing(table)
        if existing and self.profile.lock_timeout and not self.lock_timeout:
            self.unprotected.append((self.current, table, self.allow_here))
        for action in tree.args.get("actions") or []:
            if isinstance(action, exp.Drop) and str(action.args.get("kind")).upper() == "COLUMN":
                for column in action.expressions or action.args.get("tables") or []:
                    self.drop_column(table, column.name)
            elif isinstance(action, exp.ColumnDef):
                self.add_column(table, action, existing)
            elif isinstance(action, exp.AlterColumn):
                self.alter_column(table, action, existing)
            elif isinstance(action, exp.ModifyColumn) and isinstance(action.this, exp.ColumnDef):
                old = action.args.get("rename_from")
                old_name = old.name if isinstance(old, exp.Expression) else action.this.name
                dtype = action.this.args.get("kind")
                if isinstance(dtype, exp.DataType):
                    self.change_type(table, old_name, action.this.name, dtype, existing)
            elif isinstance(action, exp.AddConstraint) and existing:
                self.add_constraint(table, action, bool(tree.args.get("not_valid")))
            elif isinstance(action, exp.RenameColumn):
                self.columns.rename(table.key, action.this.name, action.args["to"].name)
            elif isinstance(action, exp.AlterRename) and (new := _table(action.this)):
                self.columns.tables[new.key] = self.columns.tables.pop(table.key, {})
                if not existing:
                    self.created.discard(table.key)
                    self.created.add(new.key)

    def drop_column(self, table: _Table, column: str) -> None:
        if self.existing(table):
            self.emit(
                "drop-column",
                _loss_severity,
                f"dropping column `{table.shown}.{column}` discards its data",
                "stop using the column first (expand/contract), keep a backup, and drop it in "
                "a later migration",
                table,
                ("discards a value in each of", None),
            )
        self.columns.set(table.key, column, None)

    def add_column(self, table: _Table, column: exp.ColumnDef, existing: bool) -> None:
        name, dtype = column.name, column.args.get("kind")
        self.columns.set(table.key, name, dtype if isinstance(dtype, exp.DataType) else None)
        self.added.setdefault(table.key, set()).add(name.lower())
        if not existing:
            return
        default = _default(column)
        generated = _has(
            column,
            exp.GeneratedAsIdentityColumnConstraint,
            exp.AutoIncrementColumnConstraint,
            exp.ComputedColumnConstraint,
        ) or (isinstance(dtype, exp.DataType) and dtype.this.name.endswith("SERIAL"))
        not_null = _has(column, exp.NotNullColumnConstraint, exp.PrimaryKeyColumnConstraint)
        if not_null and default is None and not generated:
            self.emit(
                "not-null-without-default",
                _size_severity,
                f"adding NOT NULL column `{table.shown}.{name}` without a DEFAULT "
                f"{self.profile.not_null_add}",
                "add the column nullable, backfill in batches, then SET NOT NULL "
                "(or give it a constant DEFAULT)",
                table,
            )
        if not self.profile.volatile_default_rewrites:
            return
        if default is not None and _volatile(default):
            why = f"the volatile default {default.sql(dialect=self.profile.sqlglot)}"
        elif generated:
            why = "a sequence or generated value"
        else:
            return
        self.emit(
            "table-rewrite",
            _size_severity,
            f"adding `{table.shown}.{name}` with {why} computes it for every row, rewriting "
            f"`{table.shown}` under an ACCESS EXCLUSIVE lock",
            "add the column without a default (or with a constant one), backfill it in "
            "batches, then SET DEFAULT for new rows",
            table,
            ("rewrites", REWRITE_RATE),
        )

    def alter_column(self, table: _Table, action: exp.AlterColumn, existing: bool) -> None:
        name, dtype = action.this.name, action.args.get("dtype")
        if isinstance(dtype, exp.DataType):
            self.change_type(table, name, name, dtype, existing)
            return
        if action.args.get("allow_null") is not False or not existing:
            return
        rows = self.rows(table)
        if self.profile.set_not_null_scans and (rows is None or rows >= LOW_ROWS):
            self.emit(
                "table-rewrite",
                _size_severity,
                f"SET NOT NULL on `{table.shown}.{name}` scans every row under an ACCESS "
                "EXCLUSIVE lock",
                f"add CHECK ({name} IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in a later "
                "migration, then SET NOT NULL (PostgreSQL 12+ skips the scan) and drop the check",
                table,
                ("scans", REWRITE_RATE),
            )

    def change_type(
        self, table: _Table, old_name: str, new_name: str, dtype: exp.DataType, existing: bool
    ) -> None:
        """ALTER COLUMN ... TYPE (PostgreSQL) or MODIFY/CHANGE (MySQL)."""
        old_type = self.columns.get(table.key, old_name)
        self.columns.set(table.key, old_name, None)
        self.columns.set(table.key, new_name, dtype)
        if not existing:
            return
        dialect, profile = self.profile.sqlglot, self.profile
        old = _shape(old_type, profile) if old_type is not None else None
        new = _shape(dtype, profile)
        column = f"`{table.shown}.{old_name}`"
        if old_type is not None and old and new and _narrows(old, new):
            self.emit(
                "narrowing-type",
                _loss_severity,
                f"changing {column} from {old_type.sql(dialect=dialect)} to "
                f"{dtype.sql(dialect=dialect)} can truncate or reject existing values",
                "check the existing values first (the longest, the largest), or add a new "
                "column, copy with an explicit conversion, then switch over",
                table,
                ("converts", None),
            )
        if (
            not profile.type_change_rewrites
            or (old_type is not None and old_type == dtype)  # a rename or a no-op
            or (profile.cheap_widening and old_type is not None and _widens(old, new, old_type))
            or _MYSQL_ONLINE.search(self.current.sql)  # the server refuses rather than blocks
        ):
            return
        lock, alternative = (
            ("an ACCESS EXCLUSIVE lock (reads and writes wait)", "")
            if profile.cheap_widening
            else (
                "a lock that blocks writes (ALGORITHM=COPY)",
                "; or use ALGORITHM=INPLACE, LOCK=NONE or an online schema change tool "
                "(gh-ost, pt-online-schema-change)",
            )
        )
        self.emit(
            "table-rewrite",
            _size_severity,
            f"changing the type of {column} to {dtype.sql(dialect=dialect)} rewrites "
            f"`{table.shown}` and its indexes under {lock}",
            "add a new column of the new type, backfill it in batches, then switch over and "
            "drop the old one (expand/contract)" + alternative,
            table,
            ("rewrites", REWRITE_RATE),
        )

    def add_constraint(self, table: _Table, action: exp.AddConstraint, not_valid: bool) -> None:
        for constraint in action.expressions:
            named = isinstance(constraint, exp.Constraint)
            label = f" {constraint.name}" if named and constraint.name else ""
            for part in constraint.expressions if named else [constraint]:
                if isinstance(part, exp.ForeignKey | exp.CheckColumnConstraint):
                    if not self.profile.not_valid or not_valid:
                        continue
                    fk = isinstance(part, exp.ForeignKey)
                    self.emit(
                        "constraint-without-not-valid",
                        _size_severity,
                        f"ADD CONSTRAINT{label} ({'FOREIGN KEY' if fk else 'CHECK'}) on "
                        f"`{table.shown}` checks every row while blocking writes"
                        + (" to both tables" if fk else ""),
                        "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a later "
                        "migration",
                        table,
                        ("validates", REWRITE_RATE),
                    )
                elif self.profile.concurrent_index and isinstance(
                    part, exp.PrimaryKey | exp.UniqueColumnConstraint
                ):
                    kind = "PRIMARY KEY" if isinstance(part, exp.PrimaryKey) else "UNIQUE"
                    self.emit(
                        "index-without-concurrently",
                        _size_severity,
                        f"ADD {kind}{label} on `{table.shown}` builds its index under an "
                        "ACCESS EXCLUSIVE lock",
                        "CREATE UNIQUE INDEX CONCURRENTLY ... in a file marked "
                        "`-- ferry:no-transaction`, then ADD CONSTRAINT ... USING INDEX",
                        table,
                        ("indexes", INDEX_RATE),
                    )

    # --- CREATE ---

    def create(self, tree: exp.Create) -> None:
        kind, target = str(tree.args.get("kind") or "").upper(), tree.this
        if kind == "TABLE":
            schema = target if isinstance(target, exp.Schema) else None
            table = _table(schema.this if schema else target)
            if table is None:
                return
            if table.key not in self.sizes:  # IF NOT EXISTS on a live table creates nothing
                self.created.add(table.key)
                self.columns.tables[table.key] = {}
            for column in schema.expressions if schema else []:
                if isinstance(column, exp.ColumnDef):
                    dtype = column.args.get("kind")
                    if isinstance(dtype, exp.DataType):
                        self.columns.set(table.key, column.name, dtype)
        elif kind == "INDEX" and isinstance(target, exp.Index):
            table = _table(target.args.get("table"))
            if (
                table is not None
                and self.profile.concurrent_index
                and not tree.args.get("concurrently")
                and self.existing(table)
            ):
                self.emit(
                    "index-without-concurrently",
                    _size_severity,
                    f"CREATE INDEX on `{table.shown}` without CONCURRENTLY blocks writes to it "
                    "while the index builds",
                    "CREATE INDEX CONCURRENTLY ... in a file marked `-- ferry:no-transaction`",
                    table,
                    ("indexes", INDEX_RATE),
                )
        elif kind == "VIEW" and _star_columns(tree.expression):
            view = _table(target)
            self.emit(
                "select-star-in-view",
                "low",
                f"view `{view.shown if view else '?'}` selects *: its columns are fixed when it "
                "is created, so later changes to the base table do not show (or break it)",
                "list the view's columns explicitly",
                view,
            )

    # --- file level ---

    def finish(self, statements: list[Statement], *, has_undo: bool, transactional: bool) -> None:
        unprotected = [
            (s, t) for s, t, allow in self.unprotected if "missing-lock-timeout" not in allow
        ]
        self.allow_here = self.allowed
        if unprotected:
            # One finding per file, at the first ALTER, rated by the largest table.
            table = max(
                (t for _, t in unprotected), key=lambda t: _RANK[_size_severity(self.rows(t))]
            )
            names = ", ".join(dict.fromkeys(f"`{t.shown}`" for _, t in unprotected))
            self.current = unprotected[0][0]
            self.emit(
                "missing-lock-timeout",
                _size_severity,
                f"ALTER TABLE on {names} runs without `SET lock_timeout`: while it waits for "
                "its ACCESS EXCLUSIVE lock behind a long query, every query on the table queues "
                "behind it",
                "start the file with `SET lock_timeout = '5s';` and retry the migration if it "
                "times out",
                table,
            )
        if not transactional and self.ddl and len(statements) > 1:
            self.current = self.ddl[0]
            self.emit(
                "non-transactional-ddl",
                "low",
                f"`{self.file.name}` runs its DDL outside a transaction (the database commits "
                "each DDL statement, or the file is marked `-- ferry:no-transaction`): a "
                "failure leaves the statements before it applied, and Ferry records progress "
                "per statement so `ferry apply` resumes after the last one that ran",
                "keep one DDL statement per migration, or make each statement idempotent "
                "(IF NOT EXISTS / IF EXISTS) so a retry is safe",
            )
        if not has_undo and statements:
            self.current = statements[0]
            name = self.file.name
            undo = (
                "add a `downgrade(ctx)` function that reverses it"
                if self.file.suffix == ".py"
                else f"write `U{name[1:]}` that reverses it"
            )
            self.emit(
                "no-undo",
                "medium",
                f"`{name}` has no undo script, so `ferry undo` cannot reverse it",
                f"{undo}, or allow `no-undo` for a deliberate forward-only change",
            )
        self.findings.sort(key=lambda f: f.line)


def lint_statements(
    statements: list[Statement],
    *,
    file: Path,
    dialect: str,
    allowed: Iterable[str] = frozenset(),
    table_rows: Mapping[str, int] | None = None,
    has_undo: bool = True,
    transactional_ddl: bool = True,
    source: str | None = None,
    columns: ColumnTypes | None = None,
) -> list[Finding]:
    """Lint one file's statements, in order. Never raises on SQL it cannot parse.

    Args:
        statements: the file's statements, as `split_sql` returns them.
        file: the file, named in each finding.
        dialect: Ferry's dialect name (postgresql, mysql, sqlite); others get generic rules.
        allowed: rule names silenced for the whole file.
        table_rows: row counts by lower-case table name (see `table_sizes`); a missing table
            is rated as of unknown size.
        has_undo: False for a versioned migration without an undo script.
        transactional_ddl: False on databases that commit each DDL statement (MySQL).
        source: the file's text, to find `-- ferry:allow` comments just above or after a
            statement; without it only comments inside a statement count.
        columns: column types from earlier migrations (updated in place), to recognise a
            narrowing type change; a fresh model when None.

    Returns:
        The findings, ordered by line.
    """
    linter = _Linter(
        file=file,
        profile=_PROFILES.get(dialect, _GENERIC),
        allowed=allowed,
        table_rows=table_rows,
        columns=columns if columns is not None else ColumnTypes(),
        lines=source.splitlines() if source is not None else None,
    )
    for statement in statements:
        linter.statement(statement)
    linter.finish(statements, has_undo=has_undo, transactional=transactional_ddl)
    return linter.findings


def lint_migrations(
    migrations: MigrationSet,
    *,
    dialect: str,
    split_dialect: Dialect,
    table_rows: Mapping[str, int] | None = None,
    transactional_ddl: bool,
    only: list[Script] | None = None,
    require_undo: bool = True,
) -> LintReport:
    """Lint the project's migrations (or `only` some of them, e.g. the pending ones).

    Every versioned migration is read in order, so column types declared by earlier (even
    applied) migrations are known; findings are reported for `only` when it is given, else
    for every versioned and repeatable script. Undo scripts are linted only when listed in
    `only`.

    Args:
        dialect: the target adapter's name, e.g. `postgresql`.
        split_dialect: the adapter's statement splitter dialect.
        table_rows: row counts by lower-case table name (see `table_sizes`).
        transactional_ddl: whether the target runs DDL inside transactions (a file marked
            `-- ferry:no-transaction` never does).
        only: the scripts to report on.
        require_undo: False under the forward_only strategy, where undo scripts are never used.

    Raises:
        MigrationFileError: a script is not UTF-8 or cannot be split into statements.
    """
    wanted = None if only is None else {script.path for script in only}
    columns = ColumnTypes()
    queue: list[tuple[Script, bool]] = [
        (m.script, m.undo is not None or not require_undo) for m in migrations.versioned
    ]
    queue += [(script, True) for script in migrations.repeatable]
    seen = {script.path for script, _ in queue}
    queue += [(script, True) for script in only or [] if script.path not in seen]
    report = LintReport()
    for script, has_undo in queue:
        if wanted is not None and not wanted:
            break  # later scripts cannot change what was reported
        reported = wanted is None or script.path in wanted
        if wanted is not None:
            wanted.discard(script.path)
        if script.language is Language.PYTHON:
            if reported:
                report.findings += lint_statements(
                    [Statement("-- Python migration", 1)] if not has_undo else [],
                    file=script.path,
                    dialect=dialect,
                    allowed=script.directives.allow,
                    has_undo=has_undo,
                )
            continue
        source = script.read_text()
        try:
            statements = split_sql(source, split_dialect)
        except SplitError as exc:
            raise MigrationFileError(str(exc), file=script.path, line=exc.line) from exc
        found = lint_statements(
            statements,
            file=script.path,
            dialect=dialect,
            allowed=_header_allows(source, statements),
            table_rows=table_rows,
            has_undo=has_undo,
            transactional_ddl=transactional_ddl and not script.directives.no_transaction,
            source=source,
            columns=columns,
        )
        if reported:
            report.findings += found
    return report
