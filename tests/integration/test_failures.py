"""A migration failing in the middle of a plan: what stays, what the error says, how to go on.

PostgreSQL and SQLite roll a failed migration back whole. MariaDB commits each DDL statement,
so Ferry records how many statements ran, resumes a fixed file at the failed one, and can
undo the part that ran.
"""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from ferry.errors import MigrationFailed, MigrationFileError
from ferry.schema import commands
from ferry.schema.history import HistoryRow
from tests.conftest import ProjectMaker, engine_for

pytestmark = pytest.mark.integration

V1 = "CREATE TABLE base_t (id INTEGER PRIMARY KEY);\n"
# Three statements; the second (line 4) refers to a table that does not exist.
V2_BROKEN = (
    "-- three statements, the second one fails\n"
    "CREATE TABLE two_a (id INTEGER PRIMARY KEY);\n"
    "-- the next statement is on line 4\n"
    "INSERT INTO no_such_table (id) VALUES (1);\n"
    "CREATE TABLE two_b (id INTEGER PRIMARY KEY);\n"
)
V2_FIXED = V2_BROKEN.replace("no_such_table", "two_a")
V3 = "CREATE TABLE three_t (id INTEGER PRIMARY KEY);\n"
U2 = "DROP TABLE two_b;\nDROP TABLE two_a;\n"

# The second statement starts on line 2; the database reports the error on line 4.
V2_MULTILINE = (
    "CREATE TABLE two_a (id INTEGER PRIMARY KEY);\n"
    "INSERT INTO two_a (id)\n"
    "VALUES (1),\n"
    "       (2 3);\n"
    "CREATE TABLE two_b (id INTEGER PRIMARY KEY);\n"
)


def _tables(url: str) -> set[str]:
    engine = engine_for(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _rows_of(maker: ProjectMaker, version: str) -> list[HistoryRow]:
    rows = commands.history(maker.project())
    return [r for r in rows if str(r.version) == version]


def _write_plan(maker: ProjectMaker, v2: str = V2_BROKEN) -> None:
    maker.write("V1__base.sql", V1)
    maker.write("V2__three.sql", v2)
    maker.write("V3__after.sql", V3)
    maker.write("U2__three.sql", U2)


def _fail_v2(maker: ProjectMaker) -> MigrationFailed:
    project = maker.project()
    with pytest.raises(MigrationFailed) as failed:
        commands.apply(project)
    return failed.value


def test_failure_in_the_middle_keeps_earlier_migrations(maker: ProjectMaker, dialect: str) -> None:
    _write_plan(maker)
    error = _fail_v2(maker)

    assert error.file.name == "V2__three.sql"
    assert error.line == 4
    assert error.version == "2"
    assert "V2__three.sql:4: " in str(error)
    assert "no_such_table" in str(error)

    tables = _tables(maker.url)
    assert "base_t" in tables  # V1 stays applied
    assert "three_t" not in tables  # V3 never ran
    states = {line.version: line for line in commands.status(maker.project()).lines}
    assert states["1"].state == "applied"
    assert states["3"].state == "pending"
    assert [str(r.version) for r in commands.history(maker.project()) if r.success] == ["1"]

    (row,) = _rows_of(maker, "2")
    assert row.success is False
    assert row.statements_total == 3
    if dialect == "mysql":
        # DDL commits at once: the first statement's table stays, and the row says so.
        assert "two_a" in tables
        assert row.statements_done == 1
        assert states["2"].state == "partial"
        assert "1 of 3 statements ran" in states["2"].detail
        assert "resumes" in (error.hint or "")
    else:
        # Transactional DDL: the whole migration rolled back.
        assert "two_a" not in tables
        assert row.statements_done == 0
        assert states["2"].state == "failed"
        assert "nothing of this migration was applied" in (error.hint or "")
    assert [p.kind for p in commands.validate(maker.project())] == ["failed"]


def test_error_line_inside_a_multiline_statement(maker: ProjectMaker, dialect: str) -> None:
    _write_plan(maker, V2_MULTILINE)
    error = _fail_v2(maker)
    assert error.file.name == "V2__three.sql"
    if dialect == "sqlite":
        # SQLite reports no position: the line where the statement starts.
        assert error.line == 2
    else:
        # PostgreSQL's statement_position and MariaDB's "at line N" point at line 4.
        assert error.line == 4
    assert f"V2__three.sql:{error.line}: " in str(error)


@pytest.mark.parametrize("dialect", ["mysql"])
def test_fixed_file_resumes_at_the_failed_statement_on_mariadb(
    maker: ProjectMaker, dialect: str
) -> None:
    _write_plan(maker)
    _fail_v2(maker)
    maker.write("V2__three.sql", V2_FIXED)  # statement 1 unchanged, statement 2 fixed

    plan = commands.plan(maker.project())
    assert [(str(p.step.script.version), p.step.resume_from) for p in plan.planned] == [
        ("2", 1),
        ("3", 0),
    ]
    report = commands.apply(maker.project())
    assert [(str(r.step.script.version), r.status) for r in report.results] == [
        ("2", "applied"),
        ("3", "applied"),
    ]
    assert report.results[0].statements_run == 2  # statements 2 and 3, not "already exists"
    assert report.results[0].statements_total == 3
    assert {"base_t", "two_a", "two_b", "three_t"} <= _tables(maker.url)

    (row,) = _rows_of(maker, "2")
    assert row.success is True
    assert row.statements_done == 3
    assert row.error is None
    assert [line.state for line in commands.status(maker.project()).lines] == ["applied"] * 3
    assert commands.validate(maker.project()) == []
    engine = engine_for(maker.url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id FROM two_a").scalars().all() == [1]
    engine.dispose()


@pytest.mark.parametrize("dialect", ["mysql"])
def test_undo_reverts_the_part_that_ran_on_mariadb(maker: ProjectMaker, dialect: str) -> None:
    _write_plan(maker)
    _fail_v2(maker)
    assert "two_a" in _tables(maker.url)

    report = commands.undo(maker.project())
    (result,) = report.results
    assert str(result.step.script.version) == "2"
    assert result.step.partial_undo
    assert result.status == "undone"
    assert result.skipped_lines == [1]  # DROP TABLE two_b: that table was never created
    assert {"two_a", "two_b"}.isdisjoint(_tables(maker.url))
    states = {line.version: line.state for line in commands.status(maker.project()).lines}
    assert states == {"1": "applied", "2": "pending", "3": "pending"}
    assert "base_t" in _tables(maker.url)  # V1 untouched

    # The fixed file now applies from the start.
    maker.write("V2__three.sql", V2_FIXED)
    report = commands.apply(maker.project())
    assert [(str(r.step.script.version), r.statements_run) for r in report.results] == [
        ("2", 3),
        ("3", 1),
    ]


@pytest.mark.parametrize("dialect", ["mysql"])
def test_editing_statements_that_already_ran_is_refused_on_mariadb(
    maker: ProjectMaker, dialect: str
) -> None:
    _write_plan(maker)
    _fail_v2(maker)
    maker.write(
        "V2__three.sql",
        V2_FIXED.replace("two_a (id INTEGER PRIMARY KEY)", "two_a (id BIGINT PRIMARY KEY)"),
    )
    with pytest.raises(MigrationFileError, match=r"statements that already ran were changed") as e:
        commands.apply(maker.project())
    assert e.value.file.name == "V2__three.sql"
    (row,) = _rows_of(maker, "2")
    assert (row.success, row.statements_done) == (False, 1)
    assert "three_t" not in _tables(maker.url)


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_no_transaction_create_index_concurrently_on_postgresql(
    maker: ProjectMaker, dialect: str
) -> None:
    maker.write("V1__base.sql", V1 + "INSERT INTO base_t VALUES (1), (2);\n")
    maker.write(
        "V2__index.sql",
        "-- ferry:no-transaction\nCREATE INDEX CONCURRENTLY base_t_id_ix ON base_t (id);\n",
    )
    maker.write("V3__after.sql", V3)
    report = commands.apply(maker.project())
    assert [r.status for r in report.results] == ["applied"] * 3
    engine = engine_for(maker.url)
    try:
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("base_t")}
    finally:
        engine.dispose()
    assert "base_t_id_ix" in indexes
    assert all(r.success for r in commands.history(maker.project()))


def test_failing_python_migration_names_file_and_line(maker: ProjectMaker, dialect: str) -> None:
    maker.write("V1__base.sql", V1)
    maker.write(
        "V2__seed.py",
        "def upgrade(ctx):\n"
        '    ctx.execute("INSERT INTO base_t (id) VALUES (7)")\n'
        "    values = [1, 2]\n"
        '    raise RuntimeError(f"boom after {len(values)} values")\n',
    )
    maker.write("V3__after.sql", V3)
    with pytest.raises(MigrationFailed, match=r"V2__seed\.py:4: boom after 2 values") as failed:
        commands.apply(maker.project())
    assert failed.value.file.name == "V2__seed.py"
    assert failed.value.line == 4
    assert "three_t" not in _tables(maker.url)
    (row,) = _rows_of(maker, "2")
    assert row.success is False
    engine = engine_for(maker.url)
    with engine.connect() as conn:
        ids = conn.exec_driver_sql("SELECT id FROM base_t").scalars().all()
    engine.dispose()
    # In a transaction the insert rolled back; MariaDB runs Python migrations in autocommit.
    assert ids == ([7] if dialect == "mysql" else [])
