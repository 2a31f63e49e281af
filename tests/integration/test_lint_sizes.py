"""Table sizes read from a real database, and the lint rating an ALTER by them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from ferry.schema.lint import lint_statements, table_sizes
from ferry.schema.splitter import Dialect, split_sql
from tests.conftest import engine_for

pytestmark = pytest.mark.integration

ROWS = 2_000
SPLIT: dict[str, Dialect] = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql"}
# A downtime-rated ALTER on each database (severity from size: low below 100k rows).
ALTER = {
    "postgresql": (
        "SET lock_timeout = '5s';\nALTER TABLE filled ALTER COLUMN name TYPE varchar(50);",
        "table-rewrite",
    ),
    "mysql": ("ALTER TABLE filled MODIFY name VARCHAR(50);", "table-rewrite"),
    "sqlite": ("ALTER TABLE filled ADD COLUMN tier INTEGER NOT NULL;", "not-null-without-default"),
}
# What the database's estimate may be off by (InnoDB samples pages).
TOLERANCE = {"sqlite": 0.0, "postgresql": 0.0, "mysql": 0.5}


def _fill(db_url: str, dialect: str) -> dict[str, int]:
    engine = engine_for(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE filled (id INTEGER PRIMARY KEY, name VARCHAR(100))"))
            conn.execute(text("CREATE TABLE empty_t (id INTEGER PRIMARY KEY)"))
            conn.execute(
                text("INSERT INTO filled (id, name) VALUES (:id, :name)"),
                [{"id": i, "name": f"name {i}"} for i in range(ROWS)],
            )
        with engine.connect() as conn:
            # The server's estimates are refreshed by ANALYZE (PostgreSQL leaves a table
            # never analyzed out; MySQL 8 caches TABLE_ROWS).
            if dialect == "postgresql":
                conn.execute(text("ANALYZE filled"))
                conn.execute(text("ANALYZE empty_t"))
            elif dialect == "mysql":
                conn.execute(text("ANALYZE TABLE filled, empty_t")).all()
            conn.commit()
        with engine.connect() as conn:
            return table_sizes(conn, dialect)
    finally:
        engine.dispose()


def test_table_sizes_and_an_alter_rated_by_them(dialect: str, db_url: str) -> None:
    sizes = _fill(db_url, dialect)

    slack = TOLERANCE[dialect] * ROWS
    assert ROWS - slack <= sizes["filled"] <= ROWS + slack, sizes
    assert sizes["empty_t"] == 0

    sql, rule = ALTER[dialect]
    file = Path("V2__alter.sql")

    def rate(table_rows: dict[str, int] | None) -> tuple[str, int | None]:
        findings = lint_statements(
            split_sql(sql, SPLIT[dialect]), file=file, dialect=dialect, table_rows=table_rows
        )
        found = [f for f in findings if f.rule == rule]
        assert len(found) == 1, findings
        assert found[0].table == "filled"
        return found[0].severity, found[0].rows

    assert rate(sizes) == ("low", sizes["filled"])  # a small table: a brief lock
    assert rate(None) == ("medium", None)  # size unknown
    assert rate({"filled": 20_000_000}) == ("high", 20_000_000)


def test_data_loss_on_a_known_empty_table_is_low(dialect: str, db_url: str) -> None:
    sizes = _fill(db_url, dialect)
    findings = lint_statements(
        split_sql("DROP TABLE empty_t;\nDROP TABLE filled;\n", SPLIT[dialect]),
        file=Path("V3__drop.sql"),
        dialect=dialect,
        table_rows=sizes,
    )
    assert [(f.table, f.severity, f.line) for f in findings] == [
        ("empty_t", "low", 1),
        ("filled", "high", 2),
    ]
    assert findings[1].estimate == f"deletes ~{sizes['filled']:,} rows"
