"""Tests for the migration lint: each rule fires and stays quiet, severities follow table
sizes, allow comments, unparsable SQL, and the report over a migration folder."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pytest

from ferry.errors import MigrationFileError
from ferry.schema.lint import (
    RULES,
    ColumnTypes,
    Finding,
    LintReport,
    lint_migrations,
    lint_statements,
    table_sizes,
)
from ferry.schema.scripts import discover
from ferry.schema.splitter import Dialect, Statement, split_sql

FILE = Path("V1__change.sql")
SPLIT: dict[str, Dialect] = {"postgresql": "postgresql", "mysql": "mysql", "sqlite": "sqlite"}


def lint(
    sql: str,
    dialect: str = "postgresql",
    *,
    rows: Mapping[str, int] | None = None,
    allowed: frozenset[str] = frozenset(),
    has_undo: bool = True,
    transactional_ddl: bool = True,
    columns: ColumnTypes | None = None,
) -> list[Finding]:
    """Lint a file's text; PostgreSQL files get a lock_timeout so that rule stays quiet."""
    if dialect == "postgresql" and "lock_timeout" not in sql:
        sql = "SET lock_timeout = '5s';\n" + sql
    return lint_statements(
        split_sql(sql, SPLIT[dialect]),
        file=FILE,
        dialect=dialect,
        allowed=allowed,
        table_rows=rows,
        has_undo=has_undo,
        transactional_ddl=transactional_ddl,
        source=sql,
        columns=columns,
    )


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


def only(findings: list[Finding], rule: str) -> Finding:
    matching = [f for f in findings if f.rule == rule]
    assert len(matching) == 1, findings
    return matching[0]


# --- data loss ---


@pytest.mark.parametrize(
    ("sql", "dialect", "rule", "table"),
    [
        ("DROP TABLE users", "postgresql", "drop-table", "users"),
        ("DROP TABLE IF EXISTS app.users CASCADE", "postgresql", "drop-table", "app.users"),
        ("ALTER TABLE users DROP COLUMN email", "postgresql", "drop-column", "users"),
        ("ALTER TABLE users DROP email", "mysql", "drop-column", "users"),
        ("ALTER TABLE users DROP COLUMN email", "sqlite", "drop-column", "users"),
        ("TRUNCATE users", "postgresql", "truncate", "users"),
        ("TRUNCATE TABLE users", "mysql", "truncate", "users"),
        ("DELETE FROM users", "sqlite", "delete-without-where", "users"),
        ("DELETE FROM users USING orders", "postgresql", "delete-without-where", "users"),
        ("UPDATE users SET active = false", "postgresql", "update-without-where", "users"),
        ("UPDATE users SET a = o.a FROM orders o", "postgresql", "update-without-where", "users"),
    ],
)
def test_data_loss_rules_fire(sql: str, dialect: str, rule: str, table: str) -> None:
    finding = only(lint(sql, dialect), rule)
    assert finding.category == "data_loss"
    assert finding.severity == "high"  # size unknown
    assert finding.table == table
    assert f"`{table}" in finding.message
    assert finding.suggestion


@pytest.mark.parametrize(
    "sql",
    [
        "DROP VIEW users_v",
        "DROP INDEX users_email",
        "DROP TEMPORARY TABLE scratch",
        "ALTER TABLE users DROP CONSTRAINT users_fk",
        "ALTER TABLE users RENAME COLUMN a TO b",
        "DELETE FROM users WHERE id = 1",
        "UPDATE users SET active = false WHERE last_login < '2020-01-01'",
        "SELECT * FROM users",
        "INSERT INTO users (id) VALUES (1)",
        # a table created in the same file holds no data yet
        "CREATE TABLE tmp (id int); DELETE FROM tmp; TRUNCATE tmp; DROP TABLE tmp",
        # a backfill of a column this file added
        "ALTER TABLE users ADD COLUMN score int; UPDATE users SET score = 0",
    ],
)
def test_data_loss_rules_stay_quiet(sql: str) -> None:
    findings = lint(sql, "mysql" if "TEMPORARY" in sql else "postgresql")
    assert not [f for f in findings if f.category == "data_loss"], findings


def test_mysql_multi_table_delete_with_join_is_bounded() -> None:
    assert lint("DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id", "mysql") == []
    assert lint("UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.a = t2.a", "mysql") == []


def test_drop_table_names_each_table() -> None:
    findings = lint("DROP TABLE a, b", rows={"a": 0, "b": 7})
    assert [(f.table, f.severity, f.rows) for f in findings] == [
        ("a", "low", 0),
        ("b", "high", 7),
    ]
    assert findings[1].estimate == "deletes ~7 rows"


@pytest.mark.parametrize(
    ("rows", "severity"), [(None, "high"), (0, "low"), (1, "high"), (50_000_000, "high")]
)
def test_data_loss_severity_is_high_unless_the_table_is_known_empty(
    rows: int | None, severity: str
) -> None:
    sizes = {} if rows is None else {"users": rows}
    assert only(lint("DROP TABLE users", rows=sizes), "drop-table").severity == severity


# --- narrowing types (needs the old type, from an earlier migration) ---


def columns_from(sql: str, dialect: str = "postgresql") -> ColumnTypes:
    columns = ColumnTypes()
    lint(sql, dialect, columns=columns)
    return columns


@pytest.mark.parametrize(
    ("create", "change", "dialect"),
    [
        ("name text", "ALTER TABLE t ALTER COLUMN name TYPE varchar(50)", "postgresql"),
        ("name varchar(100)", "ALTER TABLE t ALTER COLUMN name TYPE varchar(20)", "postgresql"),
        ("n bigint", "ALTER TABLE t ALTER COLUMN n TYPE int", "postgresql"),
        ("n numeric(12,4)", "ALTER TABLE t ALTER COLUMN n TYPE numeric(12,2)", "postgresql"),
        ("n numeric(12,2)", "ALTER TABLE t ALTER COLUMN n TYPE numeric(8,2)", "postgresql"),
        ("n numeric", "ALTER TABLE t ALTER COLUMN n TYPE numeric(10,2)", "postgresql"),
        ("n double precision", "ALTER TABLE t ALTER COLUMN n TYPE int", "postgresql"),
        ("d timestamp", "ALTER TABLE t ALTER COLUMN d TYPE date", "postgresql"),
        ("name VARCHAR(255)", "ALTER TABLE t MODIFY name VARCHAR(20)", "mysql"),
        ("name TEXT", "ALTER TABLE t MODIFY COLUMN name VARCHAR(100)", "mysql"),
        ("n INT UNSIGNED", "ALTER TABLE t MODIFY n INT", "mysql"),
        ("n INT", "ALTER TABLE t CHANGE n m SMALLINT", "mysql"),
    ],
)
def test_narrowing_type_fires(create: str, change: str, dialect: str) -> None:
    columns = columns_from(f"CREATE TABLE t ({create})", dialect)
    finding = only(lint(change, dialect, columns=columns, rows={"t": 10}), "narrowing-type")
    assert finding.category == "data_loss"
    assert finding.severity == "high"
    assert "truncate or reject" in finding.message


@pytest.mark.parametrize(
    ("create", "change", "dialect"),
    [
        ("name varchar(20)", "ALTER TABLE t ALTER COLUMN name TYPE varchar(50)", "postgresql"),
        ("name varchar(20)", "ALTER TABLE t ALTER COLUMN name TYPE text", "postgresql"),
        ("n int", "ALTER TABLE t ALTER COLUMN n TYPE bigint", "postgresql"),
        ("n numeric(8,2)", "ALTER TABLE t ALTER COLUMN n TYPE numeric(12,2)", "postgresql"),
        ("name VARCHAR(20)", "ALTER TABLE t MODIFY name TEXT", "mysql"),
        ("n INT", "ALTER TABLE t MODIFY n INT UNSIGNED", "mysql"),  # loses negatives
        ("other text", "ALTER TABLE t ALTER COLUMN name TYPE varchar(5)", "postgresql"),
    ],
)
def test_narrowing_type_stays_quiet(create: str, change: str, dialect: str) -> None:
    columns = columns_from(f"CREATE TABLE t ({create})", dialect)
    found = rules(lint(change, dialect, columns=columns))
    if "UNSIGNED" in change:
        assert "narrowing-type" in found  # a signed range is not inside an unsigned one
    else:
        assert "narrowing-type" not in found


def test_narrowing_type_on_a_known_empty_table_is_low() -> None:
    columns = columns_from("CREATE TABLE t (name text)")
    change = "ALTER TABLE t ALTER COLUMN name TYPE varchar(5)"
    assert only(lint(change, columns=columns, rows={"t": 0}), "narrowing-type").severity == "low"


# --- downtime ---


@pytest.mark.parametrize(
    ("sql", "dialect", "word"),
    [
        ("ALTER TABLE users ALTER COLUMN name TYPE varchar(50)", "postgresql", "rewrites"),
        ("ALTER TABLE users ALTER name SET DATA TYPE bigint USING name::bigint", "postgresql", ""),
        ("ALTER TABLE users ADD COLUMN r float DEFAULT random()", "postgresql", "volatile"),
        ("ALTER TABLE users ADD COLUMN at timestamptz DEFAULT clock_timestamp()", "postgresql", ""),
        ("ALTER TABLE users ADD COLUMN u uuid DEFAULT gen_random_uuid()", "postgresql", ""),
        ("ALTER TABLE users ADD COLUMN id bigserial", "postgresql", "sequence"),
        ("ALTER TABLE users ALTER COLUMN email SET NOT NULL", "postgresql", "scans"),
        ("ALTER TABLE users MODIFY name VARCHAR(50) NOT NULL", "mysql", "ALGORITHM=COPY"),
        ("ALTER TABLE users CHANGE name full_name VARCHAR(200)", "mysql", ""),
    ],
)
def test_table_rewrite_fires(sql: str, dialect: str, word: str) -> None:
    finding = only(lint(sql, dialect), "table-rewrite")
    assert finding.category == "downtime"
    assert finding.severity == "medium"  # size unknown
    assert word in finding.message
    assert "`users" in finding.message


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        # a constant or stable default is stored once (PostgreSQL 11+)
        ("ALTER TABLE users ADD COLUMN at timestamptz DEFAULT now()", "postgresql"),
        ("ALTER TABLE users ADD COLUMN at timestamptz DEFAULT CURRENT_TIMESTAMP", "postgresql"),
        ("ALTER TABLE users ADD COLUMN n int DEFAULT 0", "postgresql"),
        ("ALTER TABLE users ALTER COLUMN n SET DEFAULT 0", "postgresql"),
        ("ALTER TABLE users ALTER COLUMN n DROP NOT NULL", "postgresql"),
        ("ALTER TABLE users MODIFY name VARCHAR(50), ALGORITHM=INSTANT", "mysql"),
        ("ALTER TABLE users ADD COLUMN n INT", "mysql"),
        ("CREATE TABLE users (n int); ALTER TABLE users ALTER COLUMN n TYPE bigint", "postgresql"),
    ],
)
def test_table_rewrite_stays_quiet(sql: str, dialect: str) -> None:
    assert "table-rewrite" not in rules(lint(sql, dialect))


def test_set_not_null_on_a_small_table_is_not_a_rewrite() -> None:
    sql = "ALTER TABLE users ALTER COLUMN email SET NOT NULL"
    assert rules(lint(sql, rows={"users": 5_000})) == []
    assert only(lint(sql, rows={"users": 500_000}), "table-rewrite").severity == "medium"


def test_widening_a_varchar_is_no_rewrite_on_postgresql_but_is_on_mysql() -> None:
    pg = columns_from("CREATE TABLE t (name varchar(20))")
    assert lint("ALTER TABLE t ALTER COLUMN name TYPE varchar(80)", columns=pg) == []
    my = columns_from("CREATE TABLE t (name VARCHAR(20))", "mysql")
    found = lint("ALTER TABLE t MODIFY name VARCHAR(80)", "mysql", columns=my)
    assert rules(found) == ["table-rewrite"]


def test_mysql_change_that_only_renames_is_in_place() -> None:
    columns = columns_from("CREATE TABLE t (name VARCHAR(20))", "mysql")
    assert lint("ALTER TABLE t CHANGE name title VARCHAR(20)", "mysql", columns=columns) == []
    assert columns.get("t", "title") is not None
    assert columns.get("t", "name") is None


@pytest.mark.parametrize(
    ("rows", "severity", "estimate"),
    [
        (None, "medium", None),
        (0, "low", "rewrites ~0 rows (<1 s)"),
        (99_999, "low", "rewrites ~99,999 rows (<1 s)"),
        (100_000, "medium", "rewrites ~100,000 rows (<1 s)"),
        (5_000_000, "medium", "rewrites ~5,000,000 rows (~5 s)"),
        (9_999_999, "medium", "rewrites ~9,999,999 rows (~10 s)"),
        (10_000_000, "high", "rewrites ~10,000,000 rows (~10 s)"),
        (600_000_000, "high", "rewrites ~600,000,000 rows (~10 min)"),
        (20_000_000_000, "high", "rewrites ~20,000,000,000 rows (~5.6 h)"),
    ],
)
def test_downtime_severity_and_estimate_follow_table_size(
    rows: int | None, severity: str, estimate: str | None
) -> None:
    sizes = {} if rows is None else {"users": rows}
    sql = "ALTER TABLE users ALTER COLUMN name TYPE varchar(50)"
    finding = only(lint(sql, rows=sizes), "table-rewrite")
    assert (finding.severity, finding.rows, finding.estimate) == (severity, rows, estimate)


def test_table_rows_keys_are_matched_case_insensitively_and_by_schema() -> None:
    sql = "ALTER TABLE App.Users ALTER COLUMN name TYPE varchar(50)"
    assert only(lint(sql, rows={"USERS": 20_000_000}), "table-rewrite").rows == 20_000_000
    assert only(lint(sql, rows={"app.users": 5, "users": 9}), "table-rewrite").rows == 5


def test_index_without_concurrently() -> None:
    finding = only(
        lint("CREATE INDEX users_email ON users (email)", rows={"users": 1_000_000}),
        "index-without-concurrently",
    )
    assert finding.severity == "medium"
    assert finding.estimate == "indexes ~1,000,000 rows (~2 s)"
    assert "CONCURRENTLY" in finding.suggestion
    assert "`-- ferry:no-transaction`" in finding.suggestion
    unique = lint("CREATE UNIQUE INDEX IF NOT EXISTS u ON public.users USING btree (email)")
    assert rules(unique) == ["index-without-concurrently"]


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("CREATE INDEX CONCURRENTLY users_email ON users (email)", "postgresql"),
        (
            "CREATE TABLE users (email text); CREATE INDEX users_email ON users (email)",
            "postgresql",
        ),
        ("CREATE INDEX users_email ON users (email)", "mysql"),  # InnoDB builds online
        ("CREATE INDEX users_email ON users (email)", "sqlite"),
    ],
)
def test_index_without_concurrently_stays_quiet(sql: str, dialect: str) -> None:
    assert "index-without-concurrently" not in rules(lint(sql, dialect))


def test_adding_a_primary_key_or_unique_constraint_builds_an_index() -> None:
    finding = only(
        lint("ALTER TABLE users ADD CONSTRAINT users_u UNIQUE (email)"),
        "index-without-concurrently",
    )
    assert "USING INDEX" in finding.suggestion


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_not_null_without_default(dialect: str) -> None:
    finding = only(
        lint("ALTER TABLE users ADD COLUMN tier int NOT NULL", dialect, rows={"users": 2_000}),
        "not-null-without-default",
    )
    assert finding.category == "downtime"
    assert finding.severity == "low"
    assert "nullable, backfill in batches, then SET NOT NULL" in finding.suggestion


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE users ADD COLUMN tier int NOT NULL DEFAULT 0",
        "ALTER TABLE users ADD COLUMN tier int",
        "ALTER TABLE users ADD COLUMN id int GENERATED ALWAYS AS IDENTITY",
        "CREATE TABLE users (id int); ALTER TABLE users ADD COLUMN tier int NOT NULL",
    ],
)
def test_not_null_without_default_stays_quiet(sql: str) -> None:
    assert "not-null-without-default" not in rules(lint(sql))


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) "
        "REFERENCES users (id)",
        "ALTER TABLE orders ADD CONSTRAINT orders_total_ck CHECK (total >= 0)",
    ],
)
def test_constraint_without_not_valid(sql: str) -> None:
    finding = only(lint(sql, rows={"orders": 30_000_000}), "constraint-without-not-valid")
    assert finding.severity == "high"
    assert finding.table == "orders"
    assert "NOT VALID, then VALIDATE CONSTRAINT" in finding.suggestion
    assert rules(lint(sql + " NOT VALID")) == []
    assert "constraint-without-not-valid" not in rules(lint(sql, "mysql"))


def test_constraint_on_a_table_created_in_the_same_file_is_fine() -> None:
    sql = (
        "CREATE TABLE orders (id int, user_id int);\n"
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);"
    )
    assert lint(sql) == []


def test_missing_lock_timeout() -> None:
    sql = (
        "ALTER TABLE small ADD COLUMN a int;\n"
        "ALTER TABLE huge ADD COLUMN b int;\n"
        "SET lock_timeout = '2s';\n"
        "ALTER TABLE later ADD COLUMN c int;\n"
    )
    findings = lint(sql, rows={"small": 10, "huge": 50_000_000})
    finding = only(findings, "missing-lock-timeout")
    assert finding.line == 1  # at the first unprotected ALTER
    assert finding.severity == "high"  # rated by the largest table it covers
    assert finding.table == "huge"
    assert "`small`, `huge`" in finding.message
    assert "`later`" not in finding.message


@pytest.mark.parametrize(
    "sql",
    [
        "SET lock_timeout = '5s'; ALTER TABLE t ADD COLUMN a int",
        "SET LOCAL lock_timeout TO 5000; ALTER TABLE t ADD COLUMN a int",
        "SELECT set_config('lock_timeout', '3s', false); ALTER TABLE t ADD COLUMN a int",
        "CREATE TABLE t (id int); ALTER TABLE t ADD COLUMN a int",
        "CREATE INDEX CONCURRENTLY i ON t (a)",
    ],
)
def test_missing_lock_timeout_stays_quiet(sql: str) -> None:
    assert rules(lint(sql)) == []


def test_lock_timeout_zero_does_not_count() -> None:
    assert rules(lint("SET lock_timeout = 0; ALTER TABLE t ADD COLUMN a int")) == [
        "missing-lock-timeout"
    ]


def test_missing_lock_timeout_is_postgresql_only() -> None:
    for dialect in ("mysql", "sqlite"):
        assert lint("ALTER TABLE t ADD COLUMN a int", dialect) == []


# --- rollback ---


def test_no_undo() -> None:
    finding = only(lint("CREATE TABLE t (id int)", has_undo=False), "no-undo")
    assert (finding.category, finding.severity) == ("rollback", "medium")
    assert "`U1__change.sql`" in finding.suggestion
    assert lint("CREATE TABLE t (id int)", has_undo=True) == []
    assert lint_statements([], file=FILE, dialect="postgresql", has_undo=False) == []


def test_non_transactional_ddl_once_per_file() -> None:
    sql = "INSERT INTO log VALUES (1);\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\n"
    findings = lint(sql, "mysql", transactional_ddl=False)
    finding = only(findings, "non-transactional-ddl")
    assert (finding.category, finding.severity, finding.line) == ("rollback", "low", 2)
    assert "leaves the statements before it applied" in finding.message
    assert "progress per statement" in finding.message


@pytest.mark.parametrize(
    ("sql", "transactional"),
    [
        ("CREATE TABLE a (id int); CREATE TABLE b (id int)", True),
        ("CREATE TABLE a (id int)", False),  # one statement: nothing half-applied
        ("INSERT INTO a VALUES (1); INSERT INTO a VALUES (2)", False),
    ],
)
def test_non_transactional_ddl_stays_quiet(sql: str, transactional: bool) -> None:
    assert lint(sql, "mysql", transactional_ddl=transactional) == []


# --- performance ---


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE VIEW v AS SELECT * FROM users",
        "CREATE OR REPLACE VIEW v AS SELECT u.* FROM users u",
        "CREATE VIEW v AS SELECT id FROM a UNION SELECT * FROM b",
        "CREATE MATERIALIZED VIEW v AS SELECT * FROM users",
    ],
)
def test_select_star_in_view(sql: str) -> None:
    finding = only(lint(sql), "select-star-in-view")
    assert (finding.category, finding.severity) == ("performance", "low")
    assert "`v`" in finding.message


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE VIEW v AS SELECT id, name FROM users",
        "CREATE VIEW v AS SELECT count(*) AS n FROM users",
        "CREATE VIEW v AS SELECT id FROM users WHERE EXISTS (SELECT * FROM orders)",
        "CREATE TABLE t AS SELECT * FROM users",
    ],
)
def test_select_star_in_view_stays_quiet(sql: str) -> None:
    assert "select-star-in-view" not in rules(lint(sql))


def test_large_update() -> None:
    sql = "UPDATE events SET kind = 'x' WHERE kind IS NULL"
    finding = only(lint(sql, rows={"events": 3_000_000}), "large-update")
    assert (finding.category, finding.severity) == ("performance", "medium")
    assert "batches" in finding.suggestion
    assert finding.estimate == "touches up to ~3,000,000 rows"
    delete = "DELETE FROM events WHERE at < '2020-01-01'"
    assert rules(lint(delete, rows={"events": 3_000_000})) == ["large-update"]


@pytest.mark.parametrize("rows", [None, 1_000_000, 10])
def test_large_update_stays_quiet(rows: int | None) -> None:
    sizes = {} if rows is None else {"events": rows}
    assert lint("UPDATE events SET kind = 'x' WHERE id = 1", rows=sizes) == []


def test_backfill_of_a_large_table_is_a_large_update_not_data_loss() -> None:
    sql = "ALTER TABLE events ADD COLUMN score int;\nUPDATE events SET score = 0;"
    assert rules(lint(sql, rows={"events": 5_000_000})) == ["large-update"]


# --- allow comments ---


def test_file_level_allow() -> None:
    sql = "DROP TABLE a; TRUNCATE b"
    assert rules(lint(sql, allowed=frozenset({"drop-table"}))) == ["truncate"]


@pytest.mark.parametrize(
    "sql",
    [
        "-- ferry:allow drop-table\nDROP TABLE a;\nDROP TABLE b;\n",
        "-- retire the old table\n-- ferry:allow truncate, drop-table\nDROP TABLE a;\n"
        "DROP TABLE b;\n",
        "DROP TABLE a -- ferry:allow drop-table\n;\nDROP TABLE b;\n",
        "DROP TABLE a; -- ferry:allow drop-table\nDROP TABLE b;\n",
    ],
)
def test_per_statement_allow_silences_that_statement_only(sql: str) -> None:
    findings = lint(sql)
    assert [(f.rule, f.table) for f in findings] == [("drop-table", "b")]


def test_allow_above_a_statement_must_be_directly_above() -> None:
    sql = "-- ferry:allow drop-table\n\nDROP TABLE a;\n"
    assert rules(lint(sql)) == ["drop-table"]


def test_allow_names_only_the_rules_it_lists() -> None:
    sql = "-- ferry:allow truncate\nDROP TABLE a;\n"
    assert rules(lint(sql)) == ["drop-table"]


def test_allow_silences_missing_lock_timeout_on_its_statement() -> None:
    sql = "-- ferry:allow missing-lock-timeout\nALTER TABLE t ADD COLUMN a int;\n"
    assert (
        lint_statements(split_sql(sql, "postgresql"), file=FILE, dialect="postgresql", source=sql)
        == []
    )


# --- report, lines, unparsable SQL ---


def test_overall_is_the_highest_severity() -> None:
    assert LintReport([]).overall == "none"
    low = lint("CREATE VIEW v AS SELECT * FROM t")
    assert LintReport(low).overall == "low"
    mixed = lint("CREATE VIEW v AS SELECT * FROM t; CREATE INDEX i ON t (a); DROP TABLE t")
    report = LintReport(mixed)
    assert report.overall == "high"
    assert [f.rule for f in report.at_least("medium")] == [
        "index-without-concurrently",
        "drop-table",
    ]


def test_lines_in_a_multi_statement_file() -> None:
    sql = (
        "-- header comment\n"  # 1
        "SET lock_timeout = '5s';\n"  # 2
        "\n"  # 3
        "CREATE VIEW v AS\n"  # 4
        "  SELECT *\n"  # 5
        "  FROM t;\n"  # 6
        "/* a block\n"  # 7
        "   comment */\n"  # 8
        "UPDATE t SET a = 1;\n"  # 9
        "INSERT INTO t VALUES ('x;y');\n"  # 10
        "ALTER TABLE t\n"  # 11
        "  DROP COLUMN a,\n"  # 12
        "  DROP COLUMN b; DROP TABLE u;\n"  # 13
    )
    findings = lint(sql)
    assert [(f.line, f.rule) for f in findings] == [
        (4, "select-star-in-view"),
        (9, "update-without-where"),
        (11, "drop-column"),
        (11, "drop-column"),
        (13, "drop-table"),
    ]
    assert findings[0].statement == "CREATE VIEW v AS SELECT * FROM t"
    assert all(f.file == FILE for f in findings)


def test_statement_is_collapsed_and_cut_to_160_characters() -> None:
    columns = ", ".join(f"c{i}" for i in range(100))
    finding = only(lint(f"UPDATE   t\n SET {columns} = 1"), "update-without-where")
    assert finding.statement.startswith("UPDATE t SET c0, c1")
    assert len(finding.statement) == 160
    assert finding.statement.endswith("...")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("DROP TABLE old_stuff CASCADE PURGE NONSENSE ((", [("drop-table", "old_stuff")]),
        (
            'DROP TABLE IF EXISTS "Odd", app.`x` ))) !!',
            [("drop-table", "Odd"), ("drop-table", "app.x")],
        ),
        ("TRUNCATE ONLY logs RESTART IDENTITY garbage ))", [("truncate", "logs")]),
        ("ALTER TABLE t ))) DROP COLUMN ((", []),
        (
            "CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN DELETE FROM t; END $$ LANGUAGE sql",
            [],
        ),
        ("DO $$ BEGIN TRUNCATE t; END $$", []),
        ("VACUUM ANALYZE t", []),
        ("!!! not sql at all ???", []),
        ("", []),
    ],
)
def test_unparsable_sql_never_raises(sql: str, expected: list[tuple[str, str]]) -> None:
    findings = lint_statements([Statement(sql, 3)], file=FILE, dialect="postgresql", source=None)
    assert [(f.rule, f.table) for f in findings] == expected
    assert all(f.line == 3 for f in findings)


def test_sqlglot_fallback_warnings_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        lint("ALTER TABLE t ALTER COLUMN a SET STATISTICS 100; VACUUM t")
    assert not [r for r in caplog.records if r.name == "sqlglot"]


def test_unknown_dialect_gets_the_generic_rules() -> None:
    findings = lint_statements(
        split_sql("DROP TABLE t; CREATE INDEX i ON u (a)", "generic"),
        file=FILE,
        dialect="oracle",
    )
    assert rules(findings) == ["drop-table"]


def test_every_rule_has_a_known_category() -> None:
    assert {r.category for r in RULES.values()} == {
        "data_loss",
        "downtime",
        "rollback",
        "performance",
    }


# --- a migration folder ---


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_lint_migrations_reports_files_lines_and_types_across_files(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    write(folder, "V1__create.sql", "CREATE TABLE users (id int, name text);\n")
    write(folder, "U1__create.sql", "DROP TABLE users;\n")
    write(
        folder,
        "V2__shrink.sql",
        "-- ferry:allow missing-lock-timeout\n"
        "\n"
        "ALTER TABLE users ALTER COLUMN name TYPE varchar(40);\n"
        "-- ferry:allow drop-table\n"
        "DROP TABLE legacy;\n"
        "DROP TABLE other;\n",
    )
    write(folder, "V3__py.py", "def upgrade(ctx):\n    pass\n")
    write(folder, "R__view.sql", "CREATE OR REPLACE VIEW v AS SELECT * FROM users;\n")
    migrations = discover([folder])
    report = lint_migrations(
        migrations,
        dialect="postgresql",
        split_dialect="postgresql",
        table_rows={"users": 200_000, "other": 0},
        transactional_ddl=True,
    )
    got = [(f.file.name, f.line, f.rule, f.severity) for f in report.findings]
    assert got == [
        ("V2__shrink.sql", 3, "narrowing-type", "high"),
        ("V2__shrink.sql", 3, "table-rewrite", "medium"),
        ("V2__shrink.sql", 3, "no-undo", "medium"),
        ("V2__shrink.sql", 6, "drop-table", "low"),
        ("V3__py.py", 1, "no-undo", "medium"),
        ("R__view.sql", 1, "select-star-in-view", "low"),
    ]
    assert report.overall == "high"
    # V1 is not linted for no-undo (it has one); its undo script is not linted unless asked


def test_lint_migrations_only_reports_the_given_scripts(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    write(folder, "V1__create.sql", "CREATE TABLE users (id int, name VARCHAR(100));\n")
    write(folder, "U1__create.sql", "DROP TABLE users;\n")
    write(folder, "V2__shrink.sql", "ALTER TABLE users MODIFY name VARCHAR(10);\n")
    migrations = discover([folder])
    v1 = migrations.versioned[0]
    v2 = migrations.versioned[1]
    report = lint_migrations(
        migrations,
        dialect="mysql",
        split_dialect="mysql",
        transactional_ddl=False,
        only=[v2.script],
        require_undo=False,
    )
    # V1's CREATE TABLE was read for the column type, but only V2 is reported.
    assert [(f.file.name, f.rule) for f in report.findings] == [
        ("V2__shrink.sql", "narrowing-type"),
        ("V2__shrink.sql", "table-rewrite"),
    ]
    assert v1.undo is not None
    undo = lint_migrations(
        migrations,
        dialect="mysql",
        split_dialect="mysql",
        transactional_ddl=False,
        only=[v1.undo],
    )
    assert [(f.file.name, f.rule) for f in undo.findings] == [("U1__create.sql", "drop-table")]


def test_lint_migrations_names_a_file_that_cannot_be_split(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    write(folder, "V1__bad.sql", "SELECT 1;\nSELECT 'unterminated;\n")
    with pytest.raises(MigrationFileError, match=r"V1__bad\.sql:2"):
        lint_migrations(
            discover([folder]),
            dialect="postgresql",
            split_dialect="postgresql",
            transactional_ddl=True,
        )


def test_table_sizes_on_sqlite() -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text('CREATE TABLE "Mixed Case" (id int)'))
        conn.execute(text("CREATE TABLE empty (id int)"))
        conn.execute(text("CREATE TABLE sqlitefoo (id INTEGER PRIMARY KEY AUTOINCREMENT)"))
        conn.execute(text('INSERT INTO "Mixed Case" VALUES (1), (2), (3)'))
        # sqlite_sequence (from AUTOINCREMENT) is SQLite's own; sqlitefoo is not
        assert table_sizes(conn, "sqlite") == {"mixed case": 3, "empty": 0, "sqlitefoo": 0}
        assert table_sizes(conn, "oracle") == {}
    engine.dispose()


def test_a_no_transaction_file_is_linted_as_non_transactional(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    write(
        folder,
        "V1__index.sql",
        "-- ferry:no-transaction\n"
        "CREATE INDEX CONCURRENTLY a_i ON a (x);\n"
        "CREATE INDEX CONCURRENTLY b_i ON b (x);\n",
    )
    write(folder, "U1__index.sql", "DROP INDEX a_i;\n")
    report = lint_migrations(
        discover([folder]),
        dialect="postgresql",
        split_dialect="postgresql",
        transactional_ddl=True,
    )
    finding = only(report.findings, "non-transactional-ddl")
    assert finding.line == 2
    assert "`-- ferry:no-transaction`" in finding.message


def test_python_migration_without_downgrade(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    write(folder, "V1__py.py", "# ferry:allow drop-table\ndef upgrade(ctx):\n    pass\n")
    write(folder, "V2__py.py", "def upgrade(ctx):\n    pass\n\n\ndef downgrade(ctx):\n    pass\n")
    write(folder, "V3__py.py", "# ferry:allow no-undo\ndef upgrade(ctx):\n    pass\n")
    report = lint_migrations(
        discover([folder]), dialect="sqlite", split_dialect="sqlite", transactional_ddl=True
    )
    finding = only(report.findings, "no-undo")
    assert finding.file.name == "V1__py.py"
    assert "downgrade(ctx)" in finding.suggestion
