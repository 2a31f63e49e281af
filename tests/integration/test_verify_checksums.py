"""In-database checksums: verify proves equal key ranges inside PostgreSQL and MariaDB
without reading their rows, and bisects a differing range down to the damaged keys.

The canonical texts must agree across engines for the common types (else every range would
fall back to reading rows): clean copies are proven with zero rows read. Values two engines
print differently (tiny floats) still pass, by the row comparison of their ranges.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ferry.errors import ConfigError
from tests.integration.test_copy import LITE, MY, PG, Pair, _pair_id, make_pair
from tests.integration.test_verify import (
    CLEAN,
    assert_passes,
    diff_of,
    run_cli,
    table_detail,
    verify,
    write_job,
)

pytestmark = pytest.mark.integration

CHECKSUM_PAIRS = [(MY, PG), (PG, MY), (PG, PG), (MY, MY)]


@pytest.fixture(params=CHECKSUM_PAIRS, ids=_pair_id)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with make_pair(request.param, tmp_path) as made:
        yield made


def _types(dialect: str) -> dict[str, str]:
    if dialect == MY:
        return {
            "flag": "TINYINT(1)",
            "at": "DATETIME(6)",
            "blob": "BLOB",
            "double": "DOUBLE",
            "single": "FLOAT",
            "uid": "CHAR(36)",
        }
    return {
        "flag": "BOOLEAN",
        "at": "TIMESTAMP(6)",
        "blob": "BYTEA",
        "double": "DOUBLE PRECISION",
        "single": "REAL",
        "uid": "UUID",
    }


ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "big": 9_007_199_254_740_993,
        "amount": Decimal("12.50"),
        "d": 0.1,
        "r": 0.5,
        "flag": True,
        "at": datetime(2024, 2, 29, 23, 59, 59, 999999),
        "day": date(2024, 2, 29),
        "name": "Zoë 📷 camera",
        "data": b"\x00\xffbinary",
        "uid": str(uuid.UUID(int=1)),
    },
    {
        "id": 2,
        "big": -1,
        "amount": Decimal("100.00"),
        "d": 1 / 3,
        "r": 0.25,
        "flag": False,
        "at": datetime(1999, 12, 31, 12, 30, 15),
        "day": date(1999, 12, 31),
        "name": "  spaces  ",
        "data": b"",
        "uid": str(uuid.UUID(int=2**128 - 1)),
    },
    {
        "id": 3,
        **dict.fromkeys(("big", "amount", "d", "r", "flag", "at", "day", "name", "data", "uid")),
    },
    {
        "id": 4,
        "big": 0,
        "amount": Decimal("-0.01"),
        "d": -2.5e10,
        "r": 3.0,
        "flag": True,
        "at": datetime(2030, 6, 1, 8, 0, 0, 1),
        "day": date(2030, 6, 1),
        "name": "",
        "data": b"\x01",
        "uid": "00000000-0000-0000-0000-00000000abcd",
    },
]


def make_samples(pair: Pair) -> None:
    t = _types(pair.source_dialect)
    pair.source_sql(
        "CREATE TABLE samples (id INTEGER PRIMARY KEY, big BIGINT, amount DECIMAL(10, 2), "
        f"d {t['double']}, r {t['single']}, flag {t['flag']}, at {t['at']}, day DATE, "
        f"name VARCHAR(40), data {t['blob']}, uid {t['uid']})"
    )
    pair.source_sql(
        "INSERT INTO samples VALUES "
        "(:id, :big, :amount, :d, :r, :flag, :at, :day, :name, :data, :uid)",
        ROWS,
    )


def test_clean_copy_is_proven_inside_the_databases_without_reading_rows(pair: Pair) -> None:
    make_samples(pair)
    job = "load: {batch_size: 2}\n"
    pair.copy(job)

    report = verify(pair, job)
    assert_passes(report)
    detail = table_detail(report, "samples")
    assert detail["method"] == "checksum"
    assert detail["ranges_compared_by_rows"] == 0, "canonical texts differ between engines"
    assert detail["rows_read"] == 0
    assert detail["expected_rows"] == detail["target_rows"] == detail["compared"] == 4

    # Each column is in the checksum: one changed value anywhere is found, and named.
    pair.target_sql("UPDATE samples SET name = 'Zoe 📷 camera' WHERE id = 1")
    pair.target_sql("UPDATE samples SET day = NULL WHERE id = 2")
    damaged = verify(pair, job)
    assert diff_of(damaged, "samples") == {
        **CLEAN,
        "different": 2,
        "different_keys": [
            {"key": {"id": 1}, "columns": ["name"]},
            {"key": {"id": 2}, "columns": ["day"]},
        ],
    }
    assert table_detail(damaged, "samples")["rows_read"] > 0


def test_values_printed_differently_fall_back_to_rows_and_pass(tmp_path: Path) -> None:
    """MariaDB prints 1e-7 as 0.0000001, PostgreSQL as 1e-07: the range is read and compared
    in Arrow, which finds the values equal."""
    with make_pair((MY, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE tiny (id INTEGER PRIMARY KEY, v DOUBLE)")
        pair.source_sql("INSERT INTO tiny VALUES (1, 0.5), (2, 1e-7), (3, 2.5)")
        job = "load: {batch_size: 1}\n"
        pair.copy(job)
        report = verify(pair, job)
        assert_passes(report)
        detail = table_detail(report, "tiny")
        assert detail["method"] == "checksum"
        assert detail["ranges_compared_by_rows"] == 1
        assert detail["rows_read"] == 2  # one row from each side


def _many(pair: Pair, rows: int) -> None:
    pair.source_sql("CREATE TABLE counts (id INTEGER PRIMARY KEY, camera_id INTEGER, n INTEGER)")
    series = (
        f"SELECT seq, seq % 7, seq * 3 FROM seq_1_to_{rows}"
        if pair.source_dialect == MY
        else f"SELECT g, g % 7, g * 3 FROM generate_series(1, {rows}) g"
    )
    pair.source_sql(f"INSERT INTO counts (id, camera_id, n) {series}")


def test_bisection_names_damaged_keys_reading_few_rows(pair: Pair) -> None:
    total = 40_000
    _many(pair, total)
    job = "load: {batch_size: 10000}\n"
    pair.copy(job)
    clean = verify(pair, job)
    assert_passes(clean)
    assert table_detail(clean, "counts")["rows_read"] == 0

    pair.target_sql("UPDATE counts SET n = n + 1 WHERE id IN (17, 25001)")
    pair.target_sql("DELETE FROM counts WHERE id = 33333")
    pair.target_sql("INSERT INTO counts VALUES (90001, 1, 1)")
    damaged = verify(pair, job)
    assert diff_of(damaged, "counts") == {
        "missing": 1,
        "extra": 1,
        "different": 2,
        "missing_keys": [{"id": 33333}],
        "extra_keys": [{"id": 90001}],
        "different_keys": [
            {"key": {"id": 17}, "columns": ["n"]},
            {"key": {"id": 25001}, "columns": ["n"]},
        ],
    }
    detail = table_detail(damaged, "counts")
    assert detail["expected_rows"] == total
    assert detail["target_rows"] == total
    # Four damaged places, each narrowed to a leaf of about a thousand rows per side.
    assert detail["rows_read"] <= 4 * 2 * 2_000
    assert detail["ranges_checksummed"] > 4

    rows_way = verify(pair, job, method="rows")
    assert diff_of(rows_way, "counts") == diff_of(damaged, "counts")
    assert table_detail(rows_way, "counts")["method"] == "rows"
    assert table_detail(rows_way, "counts")["rows_read"] == 2 * total


def test_a_table_the_job_changes_is_compared_by_rows(tmp_path: Path) -> None:
    with make_pair((MY, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE cams (id INTEGER PRIMARY KEY, active CHAR(1))")
        pair.source_sql("INSERT INTO cams VALUES (1, 'Y'), (2, 'N')")
        job = "tables:\n  cams:\n    values: {active: {Y: true, N: false}}\n"
        pair.copy(job)
        report = verify(pair, job)
        assert_passes(report)
        assert table_detail(report, "cams")["method"] == "rows"

        with pytest.raises(ConfigError, match=r"`cams` cannot be verified by in-database"):
            verify(pair, job, method="checksum")


def test_sqlite_is_compared_by_rows(tmp_path: Path) -> None:
    with make_pair((LITE, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE cams (id INTEGER PRIMARY KEY, name TEXT)")
        pair.source_sql("INSERT INTO cams VALUES (1, 'door'), (2, 'hall')")
        job = "load: {batch_size: 1}\n"
        pair.copy(job)
        report = verify(pair, job)
        assert_passes(report)
        assert table_detail(report, "cams")["method"] == "rows"


def test_method_through_the_cli(tmp_path: Path) -> None:
    with make_pair((MY, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE cams (id INTEGER PRIMARY KEY, name VARCHAR(20))")
        pair.source_sql("INSERT INTO cams VALUES (1, 'door'), (2, 'hall')")
        job = "load: {batch_size: 1}\n"
        pair.copy(job)
        write_job(pair, job)
        for method, expected in ("auto", "checksum"), ("rows", "rows"):
            done = run_cli(pair, "--method", method, "--json")
            assert done.returncode == 0, done.stderr
            details = json.loads(done.stdout)["categories"]["data"]["details"]["cams"]
            assert details["method"] == expected

        shown = run_cli(pair)
        assert "checksum" in shown.stdout
        assert "rows read" in shown.stdout
