"""`ferry verify` end to end: a copy made by `copy_data` is proven row by row against its source
as the job transforms it, and a damaged target is caught with the exact keys.

Each test copies a source built with plain SQL into a fresh target, checks that verification
passes (rows the job rejects, filters, de-duplicates, or that the target refused at load are
not "missing"; engines' representations of floats, timestamps, time zones and decimals raise
no false alarm), then damages the target and checks that exactly the damaged keys are named:
missing, extra, or different with the differing column.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table

from ferry.data.spec import parse_job
from ferry.data.state import Counts
from ferry.db.target import open_url
from ferry.validate.compare import Canon
from ferry.validate.constraints import check_constraints
from ferry.validate.data import Method, verify_job
from ferry.validate.report import Category, ValidationReport
from tests.conftest import engine_for
from tests.integration.test_copy import (
    LITE,
    MY,
    PG,
    Pair,
    _pair_id,
    counts_of,
    make_pair,
    timestamp_type,
)

pytestmark = pytest.mark.integration

#: (source, target) dialect pairs that verification is proven on.
VERIFY_PAIRS = [(MY, PG), (PG, MY), (LITE, PG), (LITE, LITE)]
#: Pairs crossing engines, for the representation (canonicalisation) cases.
CROSS_PAIRS = [(MY, PG), (PG, MY), (LITE, PG)]


def write_job(pair: Pair, body: str) -> Path:
    path = pair.folder / "job.yaml"
    path.write_text(pair.spec_text(body), encoding="utf-8")
    return path


def verify(
    pair: Pair, body: str, *, max_keys: int = 20, method: str = "auto", **canon: Any
) -> ValidationReport:
    path = write_job(pair, body)
    return verify_job(
        parse_job(path.read_text(encoding="utf-8"), path=path),
        spec_path=path,
        canon=Canon(**canon),
        max_keys=max_keys,
        method=Method(method),
    )


def table_detail(report: ValidationReport, table: str) -> dict[str, Any]:
    detail: dict[str, Any] = report.categories["data"].details[table]
    return detail


#: What a table's comparison finds when the target holds exactly the expected rows.
CLEAN: dict[str, Any] = {
    "missing": 0,
    "extra": 0,
    "different": 0,
    "missing_keys": [],
    "extra_keys": [],
    "different_keys": [],
}


def diff_of(report: ValidationReport, table: str) -> dict[str, Any]:
    """What a table's comparison found, without the row counts."""
    detail = table_detail(report, table)
    return {k: detail[k] for k in CLEAN}


def assert_passes(report: ValidationReport) -> None:
    """Passed, with no error and no difference in any table."""
    assert {name: c.errors for name, c in report.categories.items()} == {
        name: [] for name in report.categories
    }
    for table in report.categories["data"].details:
        assert diff_of(report, table) == CLEAN, table
    assert report.status == "passed"


def run_cli(pair: Pair, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferry", "verify", "job.yaml", *args],
        cwd=pair.folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(params=VERIFY_PAIRS, ids=_pair_id)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with make_pair(request.param, tmp_path) as made:
        yield made


@pytest.fixture(params=CROSS_PAIRS, ids=_pair_id)
def cross(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with make_pair(request.param, tmp_path) as made:
        yield made


# ------------------------------------------------------------ transforms, then damage

MEMBERS = [
    # (member_id, member_name, email_address, member_status, joined)
    (1, "alice", "alice@example.com", "A", datetime(2024, 1, 2, 3, 4, 5)),
    (2, "bob", "bob@example.com", "I", datetime(2024, 1, 3, 0, 0, 0)),
    (3, "carol", "not-an-email", "A", None),  # rejected: bad e-mail
    (4, "alice", "alice@example.com", "S", datetime(2024, 2, 1, 12, 0, 0)),  # dup of 1
    (5, "dave", "dave@example.com", None, datetime(2024, 2, 2, 23, 59, 59)),  # NULL -> inactive
    (6, "erin", "erin@example.com", "X", None),  # rejected: unmapped status
    (7, "bob", "bob@example.com", "A", datetime(2024, 3, 1, 8, 0, 0)),  # dup of 2
    (8, "frank", None, "A", datetime(2024, 3, 2, 9, 30, 0)),
    (9, "gina", "gina@example.com", "I", datetime(2024, 3, 3, 10, 0, 0)),
    (10, "hal", "hal@example.com", "Z", None),  # left out by the row filter
    (11, "ivy", "ivy@example.com", "S", datetime(2024, 4, 1, 0, 0, 1)),
    (12, "jo", "jo@example.com", "A", datetime(2024, 4, 2, 0, 0, 2)),
]

MEMBERS_JOB = """
tables:
  members:
    to: people
    columns: {member_id: id, member_name: username, email_address: email,
              member_status: status, joined: joined_at}
    where: "member_status IS NULL OR member_status <> 'Z'"
    values:
      status: {map: {A: active, I: inactive, S: suspended}, unmapped: reject}
    nulls: {status: inactive}
    validate: {email: email}
    dedupe: {on: [username, email], keep: first}
load: {batch_size: 3}
"""


def make_members(pair: Pair) -> None:
    ts = timestamp_type(pair.source_dialect)
    pair.source_sql(
        "CREATE TABLE members (member_id INTEGER PRIMARY KEY, member_name VARCHAR(50) NOT NULL, "
        f"email_address VARCHAR(100), member_status CHAR(1), joined {ts} NULL)"
    )
    pair.source_sql(
        "INSERT INTO members VALUES (:a, :b, :c, :d, :e)",
        [dict(zip("abcde", r, strict=True)) for r in MEMBERS],
    )


def test_verify_passes_after_a_copy_and_names_each_damaged_key(pair: Pair) -> None:
    make_members(pair)
    report = pair.copy(MEMBERS_JOB)
    assert counts_of(report)["members"] == Counts(
        read=11, written=7, rejected=2, filtered=0, deduped=2
    )
    assert report.tables[0].chunks >= 3

    verified = verify(pair, MEMBERS_JOB)

    # Rejected (3, 6), filtered (10) and de-duplicated (4, 7) rows are not missing.
    assert_passes(verified)
    detail = table_detail(verified, "members")
    assert detail["target"] == "people"
    assert (detail["expected_rows"], detail["target_rows"], detail["compared"]) == (7, 7, 7)

    pair.target_sql("UPDATE people SET status = 'suspended' WHERE id = 5")  # was inactive
    pair.target_sql("DELETE FROM people WHERE id = 8")
    pair.target_sql(
        "INSERT INTO people (id, username, email, status) "
        "VALUES (40, 'mallory', 'm@example.com', 'active')"
    )

    damaged = verify(pair, MEMBERS_JOB)

    assert damaged.status == "failed"
    assert damaged.categories["data"].status == "failed"
    assert diff_of(damaged, "members") == {
        "missing": 1,
        "extra": 1,
        "different": 1,
        "missing_keys": [{"id": 8}],
        "extra_keys": [{"id": 40}],
        "different_keys": [{"key": {"id": 5}, "columns": ["status"]}],
    }
    detail = table_detail(damaged, "members")
    assert (detail["expected_rows"], detail["target_rows"], detail["compared"]) == (7, 7, 6)
    errors = " | ".join(damaged.categories["data"].errors)
    assert "1 rows missing" in errors
    assert "1 rows that the source does not have" in errors
    assert "1 rows differ" in errors
    assert damaged.categories["constraint"].status == "passed"

    # The CLI reports the same, as JSON, and exits 9.
    done = run_cli(pair, "--json")
    assert done.returncode == 9, done.stderr
    assert json.loads(done.stdout) == json.loads(json.dumps(damaged.as_dict(), default=str))


def test_a_row_the_job_rejects_that_appears_in_the_target_is_extra(tmp_path: Path) -> None:
    with make_pair((LITE, LITE), tmp_path) as pair:
        make_members(pair)
        pair.copy(MEMBERS_JOB)
        # Keys the job rejected (3), filtered (10) and de-duplicated (4) are not allowed in
        # the target either.
        for key in (3, 4, 10):
            pair.target_sql(
                "INSERT INTO people (id, username, email, status) "
                f"VALUES ({key}, 'x{key}', 'x{key}@example.com', 'active')"
            )

        damaged = verify(pair, MEMBERS_JOB)

        assert damaged.status == "failed"
        assert diff_of(damaged, "members") == {
            **CLEAN,
            "extra": 3,
            "extra_keys": [{"id": 3}, {"id": 4}, {"id": 10}],
        }


def test_max_keys_limits_the_keys_listed_not_the_counts(tmp_path: Path) -> None:
    with make_pair((LITE, LITE), tmp_path) as pair:
        pair.source_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER)")
        pair.source_sql(
            "INSERT INTO items VALUES (:i, :v)", [{"i": i, "v": i} for i in range(1, 31)]
        )
        job = "load: {batch_size: 4}\n"
        pair.copy(job)
        pair.target_sql("DELETE FROM items WHERE id % 3 = 0")  # 10 rows, over 8 ranges
        pair.target_sql("UPDATE items SET v = -v WHERE id % 5 = 1")  # 1, 6, 11, ..., 26
        pair.target_sql("INSERT INTO items VALUES (100, 1), (101, 2), (0, 3)")

        damaged = verify(pair, job, max_keys=2)

        found = diff_of(damaged, "items")
        assert (found["missing"], found["extra"], found["different"]) == (10, 3, 4)
        assert found["missing_keys"] == [{"id": 3}, {"id": 6}]
        assert found["extra_keys"] == [{"id": 0}, {"id": 100}]
        assert found["different_keys"] == [
            {"key": {"id": 1}, "columns": ["v"]},
            {"key": {"id": 11}, "columns": ["v"]},
        ]


def test_composite_and_string_keys(pair: Pair) -> None:
    pair.source_sql("CREATE TABLE codes (code VARCHAR(20) PRIMARY KEY, label VARCHAR(20))")
    pair.source_sql(
        "CREATE TABLE stock (site VARCHAR(10) NOT NULL, shelf INTEGER NOT NULL, "
        "qty INTEGER, note VARCHAR(20), PRIMARY KEY (site, shelf))"
    )
    codes = ["a1", "a2", "b", "b0", "c-1", "c_2", "d", "e e", "f", "g0", "zz"]
    pair.source_sql(
        "INSERT INTO codes VALUES (:c, :l)", [{"c": c, "l": f"label {c}"} for c in codes]
    )
    stock = [(s, n) for s in ("north", "south", "west") for n in (1, 2, 10, 11)]
    pair.source_sql(
        "INSERT INTO stock VALUES (:s, :n, :q, :t)",
        [{"s": s, "n": n, "q": n * 10, "t": None} for s, n in stock],
    )
    job = "load: {batch_size: 3}\n"
    report = pair.copy(job)
    assert all(t.chunks >= 4 for t in report.tables)

    assert_passes(verify(pair, job))

    pair.target_sql("UPDATE codes SET label = 'changed' WHERE code = 'c-1'")
    pair.target_sql("DELETE FROM codes WHERE code = 'e e'")
    pair.target_sql("INSERT INTO codes VALUES ('0first', 'extra')")
    pair.target_sql("UPDATE stock SET qty = 7, note = 'set' WHERE site = 'south' AND shelf = 10")
    pair.target_sql("UPDATE stock SET note = 'only note' WHERE site = 'west' AND shelf = 1")
    pair.target_sql("DELETE FROM stock WHERE site = 'north' AND shelf = 2")
    pair.target_sql("INSERT INTO stock VALUES ('west', 12, 1, NULL)")

    damaged = verify(pair, job)

    assert damaged.status == "failed"
    assert diff_of(damaged, "codes") == {
        "missing": 1,
        "extra": 1,
        "different": 1,
        "missing_keys": [{"code": "e e"}],
        "extra_keys": [{"code": "0first"}],
        "different_keys": [{"key": {"code": "c-1"}, "columns": ["label"]}],
    }
    assert diff_of(damaged, "stock") == {
        "missing": 1,
        "extra": 1,
        "different": 2,
        "missing_keys": [{"site": "north", "shelf": 2}],
        "extra_keys": [{"site": "west", "shelf": 12}],
        "different_keys": [
            {"key": {"site": "south", "shelf": 10}, "columns": ["qty", "note"]},
            {"key": {"site": "west", "shelf": 1}, "columns": ["note"]},
        ],
    }


def test_string_keys_whose_order_differs_between_engines(tmp_path: Path) -> None:
    """The source sorts bytes ("C" collation: 'B' < 'a'), MariaDB case-insensitively
    ('a' < 'B'): a key range holds other rows on each side, and no row is missing for it."""
    with make_pair((PG, MY), tmp_path) as pair:
        pair.source_sql('CREATE TABLE tags (tag VARCHAR(10) COLLATE "C" PRIMARY KEY, n INTEGER)')
        pair.target_sql(
            "CREATE TABLE tags (tag VARCHAR(10) PRIMARY KEY, n INTEGER) COLLATE utf8mb4_general_ci"
        )
        tags = ["Apple", "Banana", "Cherry", "apple2", "banana2", "cherry2"]
        pair.source_sql(
            "INSERT INTO tags VALUES (:t, :n)", [{"t": t, "n": n} for n, t in enumerate(tags)]
        )
        job = "load: {batch_size: 2}\n"
        pair.copy(job)
        assert sorted(r[0] for r in pair.rows("tags")) == sorted(tags)

        assert_passes(verify(pair, job))


# ---------------------------------------------------------------- representations


def _single(value: float | None) -> float | None:
    """The value a 4-byte float holds."""
    return None if value is None else float(struct.unpack("f", struct.pack("f", value))[0])


FLOATS = [0.1, 1 / 3, 123456.789, -2.5e10, 1e-7, 0.0, None, 2.0**-20, 3.4e38]


def test_floats_double_and_single_precision(cross: Pair) -> None:
    pair = cross
    double = {MY: "DOUBLE", PG: "DOUBLE PRECISION", LITE: "DOUBLE"}[pair.source_dialect]
    single = {MY: "FLOAT", PG: "REAL", LITE: "FLOAT"}[pair.source_dialect]
    pair.source_sql(f"CREATE TABLE measures (id INTEGER PRIMARY KEY, d {double}, r {single})")
    # SQLite has no 4-byte float: its FLOAT column gets values a 4-byte float holds exactly.
    pair.source_sql(
        "INSERT INTO measures VALUES (:i, :d, :r)",
        [
            {"i": i, "d": v, "r": _single(v) if pair.source_dialect == LITE else v}
            for i, v in enumerate(FLOATS, start=1)
        ],
    )
    job = "load: {batch_size: 3}\n"
    pair.copy(job)

    assert_passes(verify(pair, job))

    pair.target_sql("UPDATE measures SET d = d * 1.000001 WHERE id = 2")
    pair.target_sql("UPDATE measures SET r = 0.5 WHERE id = 3")
    damaged = verify(pair, job)
    assert diff_of(damaged, "measures") == {
        **CLEAN,
        "different": 2,
        "different_keys": [
            {"key": {"id": 2}, "columns": ["d"]},
            {"key": {"id": 3}, "columns": ["r"]},
        ],
    }


def test_sqlite_real_is_double_precision_through_a_copy(tmp_path: Path) -> None:
    """SQLite's REAL is an 8-byte float: the copy keeps every bit, and verify agrees."""
    with make_pair((LITE, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE measures (id INTEGER PRIMARY KEY, v REAL)")
        pair.source_sql(
            "INSERT INTO measures VALUES (:i, :v)",
            [{"i": i, "v": v} for i, v in enumerate(FLOATS, start=1)],
        )
        job = "load: {batch_size: 3}\n"
        pair.copy(job)
        assert [r[1] for r in pair.rows("measures")] == FLOATS

        assert_passes(verify(pair, job))


def test_timestamps_keep_microseconds_across_engines(cross: Pair) -> None:
    pair = cross
    ts = {MY: "DATETIME(6)", PG: "TIMESTAMP(6)", LITE: "TIMESTAMP"}[pair.source_dialect]
    pair.source_sql(f"CREATE TABLE events (id INTEGER PRIMARY KEY, at {ts}, day DATE)")
    stamps = [
        datetime(2024, 1, 1, 0, 0, 0),
        datetime(2024, 2, 29, 23, 59, 59, 999999),
        datetime(1999, 12, 31, 12, 30, 15, 500000),
        datetime(2030, 6, 1, 8, 0, 0, 1),
        None,
    ]
    pair.source_sql(
        "INSERT INTO events VALUES (:i, :t, :d)",
        [{"i": i, "t": t, "d": t.date() if t else None} for i, t in enumerate(stamps, start=1)],
    )
    job = "load: {batch_size: 2}\n"
    pair.copy(job)

    assert_passes(verify(pair, job))

    # One microsecond off is a difference.
    pair.target_sql(
        "UPDATE events SET at = :t WHERE id = 4", [{"t": datetime(2030, 6, 1, 8, 0, 0, 2)}]
    )
    damaged = verify(pair, job)
    assert diff_of(damaged, "events") == {
        **CLEAN,
        "different": 1,
        "different_keys": [{"key": {"id": 4}, "columns": ["at"]}],
    }


def test_timestamptz_source_into_a_datetime_target_holds_utc(tmp_path: Path) -> None:
    with make_pair((PG, MY), tmp_path) as pair:
        pair.source_sql("CREATE TABLE logins (id INTEGER PRIMARY KEY, at TIMESTAMPTZ)")
        pair.source_sql(
            "INSERT INTO logins VALUES "
            "(1, '2024-03-10 09:15:00.123456+02'), "
            "(2, '2024-07-01 23:30:00-07'), "
            "(3, '2024-12-31 23:59:59.5+00'), "
            "(4, NULL)"
        )
        job = "load: {batch_size: 2}\n"
        pair.copy(job)
        assert pair.rows("logins") == [
            (1, datetime(2024, 3, 10, 7, 15, 0, 123456)),
            (2, datetime(2024, 7, 2, 6, 30, 0)),
            (3, datetime(2024, 12, 31, 23, 59, 59, 500000)),
            (4, None),
        ]

        assert_passes(verify(pair, job))

        # Local wall time instead of UTC is a difference.
        pair.target_sql("UPDATE logins SET at = '2024-03-10 09:15:00.123456' WHERE id = 1")
        damaged = verify(pair, job)
        assert diff_of(damaged, "logins") == {
            **CLEAN,
            "different": 1,
            "different_keys": [{"key": {"id": 1}, "columns": ["at"]}],
        }


def test_timestamptz_into_postgresql_compares_instants(tmp_path: Path) -> None:
    with make_pair((PG, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE logins (id INTEGER PRIMARY KEY, at TIMESTAMPTZ)")
        pair.source_sql(
            "INSERT INTO logins VALUES (1, '2024-03-10 09:15:00.123456+02'), "
            "(2, '2024-07-01 23:30:00-07')"
        )
        job = "load: {batch_size: 1}\n"
        pair.copy(job)

        assert_passes(verify(pair, job))

        pair.target_sql("UPDATE logins SET at = at + INTERVAL '1 hour' WHERE id = 2")
        damaged = verify(pair, job)
        assert diff_of(damaged, "logins")["different_keys"] == [
            {"key": {"id": 2}, "columns": ["at"]}
        ]


def test_decimals_with_another_scale_on_the_target(cross: Pair) -> None:
    pair = cross
    pair.source_sql("CREATE TABLE prices (id INTEGER PRIMARY KEY, amount DECIMAL(10, 2))")
    pair.source_sql(
        "INSERT INTO prices VALUES (1, 1.5), (2, 0), (3, -12.34), (4, 99999999.99), (5, NULL), "
        "(6, 0.01)"
    )
    pair.target_sql("CREATE TABLE prices (id INTEGER PRIMARY KEY, amount DECIMAL(14, 4))")
    job = "load: {batch_size: 2}\n"
    pair.copy(job)

    assert_passes(verify(pair, job))

    pair.target_sql("UPDATE prices SET amount = 1.5001 WHERE id = 1")
    damaged = verify(pair, job)
    assert diff_of(damaged, "prices") == {
        **CLEAN,
        "different": 1,
        "different_keys": [{"key": {"id": 1}, "columns": ["amount"]}],
    }


def test_decimals_copied_as_they_are(pair: Pair) -> None:
    pair.source_sql(
        "CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount NUMERIC(12, 4), rate NUMERIC(5, 3))"
    )
    pair.source_sql(
        "INSERT INTO ledger VALUES (1, 1.5, 0.125), (2, -0.0001, 99.999), (3, 12345678.9, 0), "
        "(4, NULL, NULL)"
    )
    job = "load: {batch_size: 2}\n"
    pair.copy(job)

    assert_passes(verify(pair, job))


def test_text_case_and_trailing_spaces(tmp_path: Path) -> None:
    with make_pair((PG, MY), tmp_path) as pair:
        pair.source_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, title VARCHAR(30), body TEXT)")
        pair.source_sql(
            "INSERT INTO notes VALUES (1, 'Hello', 'First'), (2, 'World', 'second  '), "
            "(3, NULL, 'Third'), (4, 'same', 'same')"
        )
        job = "load: {batch_size: 2}\n"
        pair.copy(job)
        assert_passes(verify(pair, job))

        pair.target_sql("UPDATE notes SET title = 'HELLO' WHERE id = 1")  # case only
        pair.target_sql("UPDATE notes SET body = 'second' WHERE id = 2")  # spaces only
        pair.target_sql("UPDATE notes SET body = 'THIRD   ' WHERE id = 3")  # both

        def differing(**flags: bool) -> list[tuple[int, list[str]]]:
            report = verify(pair, job, **flags)
            found = table_detail(report, "notes")["different_keys"]
            assert report.status == ("failed" if found else "passed")
            return [(d["key"]["id"], d["columns"]) for d in found]

        assert differing() == [(1, ["title"]), (2, ["body"]), (3, ["body"])]
        assert differing(ignore_case=True) == [(2, ["body"]), (3, ["body"])]
        assert differing(ignore_trailing_spaces=True) == [(1, ["title"]), (3, ["body"])]
        assert differing(ignore_case=True, ignore_trailing_spaces=True) == []
        assert_passes(verify(pair, job, ignore_case=True, ignore_trailing_spaces=True))

        # The flags forgive only case and trailing spaces.
        pair.target_sql("UPDATE notes SET title = ' hello' WHERE id = 1")
        assert differing(ignore_case=True, ignore_trailing_spaces=True) == [(1, ["title"])]


def test_text_flags_through_the_cli(tmp_path: Path) -> None:
    with make_pair((LITE, LITE), tmp_path) as pair:
        pair.source_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, title VARCHAR(30))")
        pair.source_sql("INSERT INTO notes VALUES (1, 'Hello'), (2, 'World')")
        job = "tables:\n  notes:\n"
        pair.copy(job)
        pair.target_sql("UPDATE notes SET title = 'HELLO ' WHERE id = 1")
        write_job(pair, job)

        strict = run_cli(pair, "--json")
        assert strict.returncode == 9, strict.stderr
        found = json.loads(strict.stdout)["categories"]["data"]["details"]["notes"]
        assert found["different_keys"] == [{"key": {"id": 1}, "columns": ["title"]}]

        relaxed = run_cli(pair, "--json", "--ignore-case", "--ignore-trailing-spaces")
        assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
        assert json.loads(relaxed.stdout)["status"] == "passed"


# ---------------------------------------------------------------- rows refused at load


def test_rows_the_target_refused_at_load_are_not_missing(cross: Pair) -> None:
    pair = cross
    pair.source_sql("CREATE TABLE readings (id INTEGER PRIMARY KEY, code VARCHAR(10), n INTEGER)")
    rows = [(1, "r1", 5), (2, "r2", -3), (3, "r3", 7), (4, "r4", -1), (5, "r5", 9), (6, "r6", 1)]
    pair.source_sql(
        "INSERT INTO readings VALUES (:i, :c, :n)", [{"i": i, "c": c, "n": n} for i, c, n in rows]
    )
    pair.target_sql(
        "CREATE TABLE readings (id INTEGER PRIMARY KEY, code VARCHAR(10), n INTEGER, "
        "CONSTRAINT n_not_negative CHECK (n >= 0))"
    )
    job = "load: {batch_size: 3}\n"
    report = pair.copy(job)
    assert counts_of(report)["readings"] == Counts(read=6, written=4, rejected=2)
    assert [(r[1], r[2]) for r in pair.rejects()] == [([2], "load"), ([4], "load")]

    verified = verify(pair, job)

    assert diff_of(verified, "readings") == CLEAN
    assert table_detail(verified, "readings")["target_rows"] == 4
    assert_passes(verified)

    # A row lost after the load is still missing.
    pair.target_sql("DELETE FROM readings WHERE id = 5")
    damaged = verify(pair, job)
    assert diff_of(damaged, "readings") == {**CLEAN, "missing": 1, "missing_keys": [{"id": 5}]}


def test_refused_rows_are_not_missing_whatever_max_keys(tmp_path: Path) -> None:
    """Three refused rows in one key range, and only one key listed per kind."""
    with make_pair((LITE, LITE), tmp_path) as pair:
        pair.source_sql("CREATE TABLE readings (id INTEGER PRIMARY KEY, n INTEGER)")
        pair.source_sql(
            "INSERT INTO readings VALUES (1, 5), (2, -3), (3, -1), (4, 7), (5, -9), (6, 1)"
        )
        pair.target_sql("CREATE TABLE readings (id INTEGER PRIMARY KEY, n INTEGER CHECK (n >= 0))")
        job = "load: {batch_size: 10}\n"
        pair.copy(job)
        assert [r[1] for r in pair.rejects()] == [[2], [3], [5]]

        verified = verify(pair, job, max_keys=1)

        assert diff_of(verified, "readings") == CLEAN


def test_refused_rows_with_string_keys(tmp_path: Path) -> None:
    with make_pair((MY, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE parts (sku VARCHAR(10) PRIMARY KEY, n INTEGER)")
        pair.source_sql("INSERT INTO parts VALUES ('a-1', 1), ('b-2', -2), ('c-3', 3)")
        pair.target_sql("CREATE TABLE parts (sku VARCHAR(10) PRIMARY KEY, n INTEGER CHECK (n > 0))")
        job = "load: {batch_size: 2}\n"
        pair.copy(job)
        assert [(r[1], r[2]) for r in pair.rejects()] == [(["b-2"], "load")]

        verified = verify(pair, job)

        assert diff_of(verified, "parts") == CLEAN
        assert_passes(verified)


# ------------------------------------------------------------------ constraint checks


def _family(pair: Pair) -> None:
    pair.source_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL)")
    pair.source_sql(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, "
        "note VARCHAR(20), FOREIGN KEY (parent_id) REFERENCES parent (id))"
    )
    pair.source_sql("INSERT INTO parent VALUES (1, 'p1'), (2, 'p2')")
    pair.source_sql("INSERT INTO child VALUES (1, 1, 'c1'), (2, 2, 'c2'), (3, 1, 'c3')")


def test_orphan_in_a_sqlite_target_is_reported(tmp_path: Path) -> None:
    with make_pair((LITE, LITE), tmp_path) as pair:
        _family(pair)
        job = "load: {batch_size: 2}\n"
        pair.copy(job)
        assert_passes(verify(pair, job))

        # Foreign keys are enforced per connection in SQLite: a plain connection lets an
        # orphan in.
        raw = sqlite3.connect(pair.target.removeprefix("sqlite:///"))
        try:
            raw.execute("INSERT INTO child VALUES (9, 42, 'orphan')")
            raw.commit()
        finally:
            raw.close()

        damaged = verify(pair, job)

        constraint = damaged.categories["constraint"]
        assert constraint.status == "failed"
        assert constraint.errors == ["`child`: 1 rows reference a missing `parent` row (parent_id)"]
        assert diff_of(damaged, "child") == {**CLEAN, "extra": 1, "extra_keys": [{"id": 9}]}


def test_orphan_under_a_not_valid_foreign_key_on_postgresql(tmp_path: Path) -> None:
    with make_pair((PG, PG), tmp_path) as pair:
        pair.target_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(20))")
        pair.target_sql(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER, note VARCHAR(20))"
        )
        pair.target_sql("INSERT INTO parent VALUES (1, 'p1'), (2, 'p2')")
        pair.target_sql(
            "INSERT INTO child VALUES (1, 1, 'c1'), (2, 7, 'orphan'), (3, 8, 'orphan'), "
            "(4, NULL, 'no parent')"
        )
        pair.target_sql(
            "ALTER TABLE child ADD CONSTRAINT child_parent FOREIGN KEY (parent_id) "
            "REFERENCES parent (id) NOT VALID"
        )
        target = open_url("t", pair.target)
        engine = engine_for(pair.target)
        try:
            meta = MetaData()
            tables = [Table(n, meta, autoload_with=engine) for n in ("parent", "child")]
            category = Category()
            check_constraints(target, tables, category)
        finally:
            engine.dispose()
            target.dispose()

        assert category.status == "failed"
        assert category.errors == ["`child`: 2 rows reference a missing `parent` row (parent_id)"]


def test_clean_constraints_after_a_copy_with_foreign_keys(pair: Pair) -> None:
    _family(pair)
    job = "load: {batch_size: 2}\n"
    pair.copy(job)
    verified = verify(pair, job)
    assert_passes(verified)
    assert verified.categories["constraint"].status == "passed"
