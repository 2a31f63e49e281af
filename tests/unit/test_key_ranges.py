"""Key ranges: bounds survive the checkpoint table's JSON in their column's type, and the
n-th keys of a stream are picked batch by batch."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Column, MetaData, Table, select
from sqlalchemy import types as sat
from sqlalchemy.dialects import mysql, postgresql, sqlite

import ferry.db.mysql
import ferry.db.postgresql
import ferry.db.sqlite  # noqa: F401  (the adapters register their dialects)
from ferry.data.chunks import KeyRange, every_nth, key_value, plan_ranges, range_predicate


@pytest.mark.parametrize(
    ("value", "type_"),
    [
        (dt.date(2024, 2, 29), sat.Date()),
        (dt.datetime(2024, 1, 1, 23, 59, 30, 123456), sat.DateTime()),
        (dt.datetime(2024, 1, 1, 8, 0, tzinfo=dt.UTC), sat.DateTime(timezone=True)),
        (dt.time(7, 30, 1), sat.Time()),
        (decimal.Decimal("12.50"), sat.Numeric(10, 2)),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), sat.Uuid()),
        (b"\x00\xff'\\", sat.LargeBinary()),
        ("2024-01-01", sat.String(10)),  # text that looks like a date stays text
        (42, sat.Integer()),
    ],
)
def test_a_bound_comes_back_from_json_in_its_column_type(
    value: object, type_: sat.TypeEngine[Any]
) -> None:
    lo, hi = KeyRange(3, [value], None).to_json()
    back = KeyRange.from_json(3, lo, hi)
    assert back.hi is None
    assert back.lo is not None
    assert key_value(back.lo[0], type_) == value


def test_bytes_bounds_written_before_hex_still_read() -> None:
    assert key_value(repr(b"\x01'a"), sat.LargeBinary()) == b"\x01'a"


def test_every_nth_picks_across_batch_edges() -> None:
    keys = list(range(1, 24))
    batches = [
        pa.record_batch({"k": keys[i : i + size], "s": [str(k) for k in keys[i : i + size]]})
        for i, size in ((0, 4), (4, 1), (5, 9), (14, 9))
    ]
    assert every_nth(batches, 5) == [[k, str(k)] for k in (5, 10, 15, 20)]
    assert every_nth(batches[:1], 5) == []
    assert every_nth([], 5) == []


@pytest.mark.parametrize(
    ("dialect", "literal"),
    [
        (mysql.dialect(), "X'00ff27'"),
        (sqlite.dialect(), "X'00ff27'"),
        (postgresql.dialect(), "'\\x00ff27'::bytea"),
    ],
)
def test_bytes_and_date_bounds_render_as_sql_literals(dialect: object, literal: str) -> None:
    # connectorx takes SQL text: every bound must render, in the database's own syntax.
    table = Table("t", MetaData(), Column("token", sat.LargeBinary), Column("day", sat.Date))
    lo, hi = KeyRange(1, [b"\x00\xff'", dt.date(2024, 1, 2)], None).to_json()
    chunk = KeyRange.from_json(1, lo, hi)
    query = select(table.c.token).where(range_predicate(table, ["token", "day"], chunk))
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))  # type: ignore[arg-type]
    assert f"t.token > {literal} OR t.token = {literal} AND t.day > '2024-01-02'" in sql


def _pairs_table() -> tuple[Any, Table]:
    from sqlalchemy import create_engine, insert

    engine = create_engine("sqlite://")
    table = Table(
        "pairs",
        MetaData(),
        Column("a", sat.Integer, primary_key=True),
        Column("b", sat.String(5), primary_key=True),
    )
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(insert(table), [{"a": a, "b": b} for a in range(1, 301) for b in "xyz"])
    return engine, table


@pytest.mark.parametrize(
    ("rows_per_leading", "estimate", "prefix"),
    [
        (3.0, 200, True),  # 3 x 64 <= 200 rows per chunk, and no range estimated too big
        (3.0, 801, False),  # a range estimated at over four chunks (one big value)
        (3.0, None, False),  # no estimate to check with
        (30.0, 200, False),  # too many rows per value
        (None, 200, False),  # no statistics
    ],
)
def test_a_composite_key_splits_on_its_leading_integer_when_values_hold_few_rows(
    rows_per_leading: float | None, estimate: int | None, prefix: bool
) -> None:
    engine, table = _pairs_table()
    with engine.connect() as conn:
        ranges = plan_ranges(
            conn,
            table,
            ["a", "b"],
            rows_per_chunk=200,
            rows_per_leading=rows_per_leading,
            explain=None if estimate is None else (lambda _: estimate),
        )
        assert {len(r.hi) for r in ranges if r.hi is not None} == ({1} if prefix else {2})
        seen: list[tuple[int, str]] = []
        for chunk in ranges:
            predicate = range_predicate(table, ["a", "b"], chunk)
            assert predicate is not None
            rows = [(a, b) for a, b in conn.execute(select(table.c.a, table.c.b).where(predicate))]
            assert len(rows) <= 200 + 3  # a chunk ends with all rows of its last value
            seen.extend(rows)
    assert sorted(seen) == [(a, b) for a in range(1, 301) for b in "xyz"]  # each row once
    assert len(ranges) >= 4
