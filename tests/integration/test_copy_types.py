"""Awkward values through `ferry copy`: NULL in every type, unicode and emoji, MySQL zero dates,
exact decimals, booleans, 1 MB of text, every byte value, time zones, floats, and the empty
string kept apart from NULL.

Each test fills one source table, lets Ferry create the target table, and reads the target
back through SQLAlchemy (so values arrive as Python objects of the reflected column types).
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, select, text
from sqlalchemy import types as sa_types

from ferry.data.copy import CopyReport, copy_data
from ferry.data.spec import parse_job
from ferry.data.state import Counts
from tests.conftest import engine_for, new_database

pytestmark = pytest.mark.integration

UNICODE = "Zürich \u2013 東京 \u2013 Ελληνικά \u2013 🚀👩\u200d👩\u200d👧 \u00a0tab\there"
BIG = ("ab€🚀" * 250_000)[:1_000_000]  # 1 MB of characters, 4-byte ones among them
ALL_BYTES = bytes(range(256))


@pytest.fixture
def dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    source_dialect, target_dialect = request.param
    source, drop_source = new_database(source_dialect, tmp_path)
    try:
        target, drop_target = new_database(target_dialect, tmp_path)
        try:
            yield source, target, tmp_path
        finally:
            drop_target()
    finally:
        drop_source()


def run_sql(url: str, statements: list[str], rows: list[dict[str, Any]] | None = None) -> None:
    """Run statements on one connection; the last one gets `rows` as parameters."""
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for statement in statements[:-1]:
                conn.execute(text(statement))
            if rows:
                conn.execute(text(statements[-1]), rows)
            else:
                conn.execute(text(statements[-1]))
    finally:
        engine.dispose()


def copy_all(source: str, target: str, folder: Path) -> CopyReport:
    spec = textwrap.dedent(
        f"""
        source: "{source}"
        target: "{target}"
        load: {{batch_size: 2}}
        """
    )
    path = folder / "job.yaml"
    report = copy_data(parse_job(spec, path=path), spec_path=path)
    for table in report.tables:
        c = table.counts
        assert c.read == c.written + c.rejected + c.filtered + c.deduped
    return report


def target_rows(url: str, table: str = "awkward") -> dict[int, dict[str, Any]]:
    engine = engine_for(url)
    try:
        reflected = Table(table, MetaData(), autoload_with=engine)
        for column in reflected.c:
            # SQLAlchemy reflects MySQL DOUBLE as asdecimal, rounding to 10 places on read.
            if isinstance(column.type, sa_types.Float):
                column.type.asdecimal = False
        with engine.connect() as conn:
            rows = conn.execute(select(reflected).order_by(reflected.c.id)).mappings().all()
        return {row["id"]: dict(row) for row in rows}
    finally:
        engine.dispose()


def rejects(url: str) -> list[tuple[str, str]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT rule, error FROM ferry_rejects"))]
    finally:
        engine.dispose()


def assert_all_null(row: dict[str, Any]) -> None:
    assert {k: v for k, v in row.items() if k != "id"} == dict.fromkeys(set(row) - {"id"})


# ------------------------------------------------------------------ MariaDB -> PostgreSQL


@pytest.mark.parametrize("dbs", [("mysql", "postgresql")], indirect=True, ids=["mariadb-to-pg"])
def test_mariadb_to_postgresql(dbs: tuple[str, str, Path]) -> None:
    source, target, folder = dbs
    columns = ["id", "txt", "big", "bin", "d", "dt", "dt6", "dec2", "dec6", "flag", "dbl", "flt"]
    rows = [
        dict.fromkeys(columns) | {"id": 1},
        {
            "id": 2,
            "txt": UNICODE,
            "big": BIG,
            "bin": ALL_BYTES,
            "d": "2024-02-29",
            "dt": "2024-03-04 08:15:00",
            "dt6": "2024-03-04 08:15:00.123456",
            "dec2": Decimal("12345678.91"),
            "dec6": Decimal("12345678901234.567891"),
            "flag": 1,
            "dbl": 0.1,
            "flt": 3.14,
        },
        {
            "id": 3,
            "txt": "",
            "big": "",
            "bin": b"",
            "d": "0000-00-00",
            "dt": "0000-00-00 00:00:00",
            "dt6": "0000-00-00 00:00:00",
            "dec2": Decimal("-0.01"),
            "dec6": Decimal("-0.000001"),
            "flag": 0,
            "dbl": 1.7976931348623157e308,
            "flt": -1.5,
        },
        {
            "id": 4,
            "txt": "🚀",
            "big": None,
            "bin": b"\x00",
            "d": "1000-01-01",
            "dt": "9999-12-31 23:59:59",
            "dt6": "1970-01-01 00:00:00.000001",
            "dec2": Decimal("99999999.99"),
            "dec6": Decimal("99999999999999.999999"),
            "flag": None,
            "dbl": 1 / 3,
            "flt": 1e-3,
        },
    ]
    run_sql(
        source,
        [
            "CREATE TABLE awkward (id INT PRIMARY KEY, txt VARCHAR(100), big LONGTEXT, "
            "bin LONGBLOB, d DATE, dt DATETIME, dt6 DATETIME(6), dec2 DECIMAL(10,2), "
            "dec6 DECIMAL(20,6), flag TINYINT(1), dbl DOUBLE, flt FLOAT)",
            "SET SESSION sql_mode = ''",  # zero dates
            "INSERT INTO awkward VALUES "
            "(:id, :txt, :big, :bin, :d, :dt, :dt6, :dec2, :dec6, :flag, :dbl, :flt)",
        ],
        rows,
    )

    report = copy_all(source, target, folder)

    assert {t.source: t.counts for t in report.tables} == {"awkward": Counts(read=4, written=4)}
    assert rejects(target) == []
    got = target_rows(target)
    assert_all_null(got[1])
    two, three, four = got[2], got[3], got[4]
    assert two["txt"] == UNICODE
    assert two["big"] == BIG
    assert two["bin"] == ALL_BYTES
    assert two["d"] == date(2024, 2, 29)
    assert two["dt"] == datetime(2024, 3, 4, 8, 15)
    assert two["dt6"] == datetime(2024, 3, 4, 8, 15, 0, 123456)
    assert two["dec2"] == Decimal("12345678.91")
    assert two["dec6"] == Decimal("12345678901234.567891")
    assert two["flag"] is True
    assert two["dbl"] == 0.1
    assert two["flt"] == pytest.approx(3.14, rel=1e-6)
    # The empty string is not NULL; zero dates are.
    assert (three["txt"], three["big"], three["bin"]) == ("", "", b"")
    assert (three["d"], three["dt"], three["dt6"]) == (None, None, None)
    assert (three["dec2"], three["dec6"]) == (Decimal("-0.01"), Decimal("-0.000001"))
    assert three["flag"] is False
    assert three["dbl"] == 1.7976931348623157e308
    assert three["flt"] == -1.5
    assert (four["txt"], four["big"], four["bin"]) == ("🚀", None, b"\x00")
    assert four["d"] == date(1000, 1, 1)
    assert four["dt"] == datetime(9999, 12, 31, 23, 59, 59)
    assert four["dt6"] == datetime(1970, 1, 1, 0, 0, 0, 1)
    assert (four["dec2"], four["dec6"]) == (
        Decimal("99999999.99"),
        Decimal("99999999999999.999999"),
    )
    assert four["flag"] is None
    assert four["dbl"] == 1 / 3
    assert four["flt"] == pytest.approx(1e-3, rel=1e-6)


# ------------------------------------------------------------------ PostgreSQL -> MariaDB


@pytest.mark.parametrize("dbs", [("postgresql", "mysql")], indirect=True, ids=["pg-to-mariadb"])
def test_postgresql_to_mariadb(dbs: tuple[str, str, Path]) -> None:
    source, target, folder = dbs
    columns = ["id", "txt", "big", "bin", "d", "ts", "tstz", "dec2", "dec6", "flag", "dbl", "flt"]
    rows = [
        dict.fromkeys(columns) | {"id": 1},
        {
            "id": 2,
            "txt": UNICODE,
            "big": BIG,
            "bin": ALL_BYTES,
            "d": date(2024, 2, 29),
            "ts": datetime(2024, 3, 4, 8, 15, 0, 123456),
            "tstz": "2024-03-04 08:15:00+02:00",
            "dec2": Decimal("12345678.91"),
            "dec6": Decimal("12345678901234.567891"),
            "flag": True,
            "dbl": 0.1,
            "flt": 3.14,
        },
        {
            "id": 3,
            "txt": "",
            "big": "",
            "bin": b"",
            "d": date(1970, 1, 1),
            "ts": datetime(1999, 12, 31, 23, 59, 59),
            "tstz": "2024-07-01 23:30:00-05:00",
            "dec2": Decimal("-0.01"),
            "dec6": Decimal("-0.000001"),
            "flag": False,
            "dbl": 1.7976931348623157e308,
            "flt": -1.5,
        },
        {
            "id": 4,
            "txt": "🚀",
            "big": None,
            "bin": b"\x00",
            "d": None,
            "ts": None,
            "tstz": "2024-01-01 00:00:00.654321+00:00",
            "dec2": Decimal("99999999.99"),
            "dec6": Decimal("99999999999999.999999"),
            "flag": None,
            "dbl": 1 / 3,
            "flt": 1e-3,
        },
    ]
    run_sql(
        source,
        [
            "CREATE TABLE awkward (id INTEGER PRIMARY KEY, txt VARCHAR(100), big TEXT, "
            "bin BYTEA, d DATE, ts TIMESTAMP, tstz TIMESTAMPTZ, dec2 NUMERIC(10,2), "
            "dec6 NUMERIC(20,6), flag BOOLEAN, dbl DOUBLE PRECISION, flt REAL)",
            # The session's zone must not matter: timestamptz values are instants.
            "SET TIME ZONE 'America/New_York'",
            "INSERT INTO awkward VALUES "
            "(:id, :txt, :big, :bin, :d, :ts, CAST(:tstz AS TIMESTAMPTZ), :dec2, :dec6, :flag, "
            ":dbl, :flt)",
        ],
        rows,
    )

    report = copy_all(source, target, folder)

    assert rejects(target) == []
    assert {t.source: t.counts for t in report.tables} == {"awkward": Counts(read=4, written=4)}
    got = target_rows(target)
    assert_all_null(got[1])
    two, three, four = got[2], got[3], got[4]
    assert two["txt"] == UNICODE
    assert two["big"] == BIG
    assert two["bin"] == ALL_BYTES
    assert two["d"] == date(2024, 2, 29)
    assert two["ts"] == datetime(2024, 3, 4, 8, 15, 0, 123456)
    # MariaDB DATETIME has no zone: an instant arrives as its UTC wall-clock time.
    assert two["tstz"] == datetime(2024, 3, 4, 6, 15)
    assert three["tstz"] == datetime(2024, 7, 2, 4, 30)
    assert four["tstz"] == datetime(2024, 1, 1, 0, 0, 0, 654321)
    assert two["dec2"] == Decimal("12345678.91")
    assert two["dec6"] == Decimal("12345678901234.567891")
    assert two["flag"] == 1
    assert two["dbl"] == 0.1
    assert two["flt"] == pytest.approx(3.14, rel=1e-6)
    assert (three["txt"], three["big"], three["bin"]) == ("", "", b"")
    assert three["ts"] == datetime(1999, 12, 31, 23, 59, 59)
    assert (three["dec2"], three["dec6"]) == (Decimal("-0.01"), Decimal("-0.000001"))
    assert three["flag"] == 0
    assert three["dbl"] == 1.7976931348623157e308
    assert three["flt"] == -1.5
    assert (four["txt"], four["big"], four["bin"]) == ("🚀", None, b"\x00")
    assert (four["d"], four["ts"], four["flag"]) == (None, None, None)
    assert (four["dec2"], four["dec6"]) == (
        Decimal("99999999.99"),
        Decimal("99999999999999.999999"),
    )
    assert four["dbl"] == 1 / 3
    assert four["flt"] == pytest.approx(1e-3, rel=1e-6)


# --------------------------------------------------------------------- SQLite -> PostgreSQL


@pytest.mark.parametrize("dbs", [("sqlite", "postgresql")], indirect=True, ids=["sqlite-to-pg"])
def test_sqlite_to_postgresql(dbs: tuple[str, str, Path]) -> None:
    source, target, folder = dbs
    columns = ["id", "txt", "big", "bin", "d", "ts", "dec2", "flag", "dbl", "n"]
    rows = [
        dict.fromkeys(columns) | {"id": 1},
        {
            "id": 2,
            "txt": UNICODE,
            "big": BIG,
            "bin": ALL_BYTES,
            "d": "2024-02-29",
            "ts": "2024-03-04 08:15:00.123456",
            "dec2": Decimal("12345678.91"),
            "flag": True,
            "dbl": 0.1,
            "n": 9223372036854775807,
        },
        {
            "id": 3,
            "txt": "",
            "big": "",
            "bin": b"",
            "d": "1970-01-01",
            "ts": "1999-12-31 23:59:59",
            "dec2": Decimal("-0.01"),
            "flag": False,
            "dbl": 1.7976931348623157e308,
            "n": -9223372036854775808,
        },
        {
            "id": 4,
            "txt": "🚀",
            "big": None,
            "bin": b"\x00",
            "d": None,
            "ts": None,
            "dec2": Decimal("0.10"),
            "flag": None,
            "dbl": 1 / 3,
            "n": 0,
        },
    ]
    run_sql(
        source,
        [
            "CREATE TABLE awkward (id INTEGER PRIMARY KEY, txt TEXT, big TEXT, bin BLOB, "
            "d DATE, ts TIMESTAMP, dec2 DECIMAL(10,2), flag BOOLEAN, dbl DOUBLE, n BIGINT)",
            "INSERT INTO awkward VALUES (:id, :txt, :big, :bin, :d, :ts, :dec2, :flag, :dbl, :n)",
        ],
        rows,
    )

    report = copy_all(source, target, folder)

    assert rejects(target) == []
    assert {t.source: t.counts for t in report.tables} == {"awkward": Counts(read=4, written=4)}
    got = target_rows(target)
    assert_all_null(got[1])
    two, three, four = got[2], got[3], got[4]
    assert two["txt"] == UNICODE
    assert two["big"] == BIG
    assert two["bin"] == ALL_BYTES
    assert two["d"] == date(2024, 2, 29)
    assert two["ts"] == datetime(2024, 3, 4, 8, 15, 0, 123456)
    assert two["dec2"] == Decimal("12345678.91")
    assert two["flag"] is True
    assert two["dbl"] == 0.1
    assert two["n"] == 9223372036854775807
    assert (three["txt"], three["big"], three["bin"]) == ("", "", b"")
    assert three["d"] == date(1970, 1, 1)
    assert three["ts"] == datetime(1999, 12, 31, 23, 59, 59)
    assert three["dec2"] == Decimal("-0.01")
    assert three["flag"] is False
    assert three["dbl"] == 1.7976931348623157e308
    assert three["n"] == -9223372036854775808
    assert (four["txt"], four["big"], four["bin"]) == ("🚀", None, b"\x00")
    assert four["dec2"] == Decimal("0.10")
    assert four["flag"] is None
    assert four["dbl"] == 1 / 3
    assert not math.isnan(four["dbl"])


# ----------------------------------------------------- a large row refused at load


@pytest.mark.parametrize("dbs", [("postgresql", "mysql")], indirect=True, ids=["pg-to-mariadb"])
def test_a_refused_row_with_a_large_value_is_recorded_whole(dbs: tuple[str, str, Path]) -> None:
    source, target, folder = dbs
    large = "é🚀" * 100_000  # 600 KB in UTF-8
    run_sql(
        source,
        [
            "CREATE TABLE awkward (id INTEGER PRIMARY KEY, n INTEGER, body TEXT)",
            "INSERT INTO awkward VALUES (:id, :n, :body)",
        ],
        [{"id": 1, "n": 1, "body": "small"}, {"id": 2, "n": -1, "body": large}],
    )
    run_sql(
        target,
        [
            "CREATE TABLE awkward (id INTEGER PRIMARY KEY, n INTEGER, body LONGTEXT, "
            "CONSTRAINT n_positive CHECK (n > 0))"
        ],
    )

    report = copy_all(source, target, folder)

    assert {t.source: t.counts for t in report.tables} == {
        "awkward": Counts(read=2, written=1, rejected=1)
    }
    assert [(r["id"], r["body"]) for r in target_rows(target).values()] == [(1, "small")]
    engine = engine_for(target)
    try:
        with engine.connect() as conn:
            rule, row_data = conn.execute(text("SELECT rule, row_data FROM ferry_rejects")).one()
    finally:
        engine.dispose()
    assert rule == "load"
    assert json.loads(row_data) == {"id": 2, "n": -1, "body": large}
