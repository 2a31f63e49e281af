"""`ferry verify` review: subtle differences that both methods (in-database checksums and the
row comparison) must catch, and correct copies that both must pass.

Each case damages the target after a clean copy and asks both `--method rows` and
`--method checksum` (where the databases compute checksums): they must agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_copy import LITE, MY, PG, Pair, _pair_id, make_pair
from tests.integration.test_verify import CLEAN, assert_passes, diff_of, table_detail, verify

pytestmark = pytest.mark.integration

ALL_PAIRS = [(MY, PG), (PG, PG), (LITE, PG), (PG, MY)]


@pytest.fixture(params=ALL_PAIRS, ids=_pair_id)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with make_pair(request.param, tmp_path) as made:
        yield made


def _methods(pair: Pair) -> list[str]:
    return ["rows"] if LITE in (pair.source_dialect, pair.target_dialect) else ["rows", "checksum"]


def _both(pair: Pair, job: str, table: str) -> dict[str, dict[str, Any]]:
    return {m: diff_of(verify(pair, job, method=m), table) for m in _methods(pair)}


def _double(dialect: str) -> str:
    return "DOUBLE PRECISION" if dialect == PG else "DOUBLE"


# ------------------------------------------------------------------------------ floats


def test_a_tiny_float_replaced_by_zero_is_different(pair: Pair) -> None:
    """The float tolerance is relative: 1e-12 is not 0, nor 5e-12 (an absolute floor of
    1e-9 made every value below it equal to every other)."""
    pair.source_sql(f"CREATE TABLE m (id INTEGER PRIMARY KEY, v {_double(pair.source_dialect)})")
    pair.source_sql("INSERT INTO m VALUES (1, 1e-12), (2, 5e-12), (3, 0.5)")
    job = "load: {batch_size: 2}\n"
    pair.copy(job)
    for method in _methods(pair):
        assert_passes(verify(pair, job, method=method))

    pair.target_sql("UPDATE m SET v = 0 WHERE id = 1")
    pair.target_sql("UPDATE m SET v = 1e-12 WHERE id = 2")
    wanted = {
        **CLEAN,
        "different": 2,
        "different_keys": [
            {"key": {"id": 1}, "columns": ["v"]},
            {"key": {"id": 2}, "columns": ["v"]},
        ],
    }
    assert _both(pair, job, "m") == dict.fromkeys(_methods(pair), wanted)


def test_nan_copied_as_nan_passes_both_methods(tmp_path: Path) -> None:
    with make_pair((PG, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE m (id INTEGER PRIMARY KEY, v DOUBLE PRECISION)")
        pair.source_sql("INSERT INTO m VALUES (1, 'NaN'), (2, 'Infinity'), (3, 1)")
        job = "load: {batch_size: 2}\n"
        pair.copy(job)
        for method in ("rows", "checksum"):
            assert_passes(verify(pair, job, method=method))

        pair.target_sql("UPDATE m SET v = 'NaN' WHERE id = 3")
        wanted = {**CLEAN, "different": 1, "different_keys": [{"key": {"id": 3}, "columns": ["v"]}]}
        assert _both(pair, job, "m") == {"rows": wanted, "checksum": wanted}


# ---------------------------------------------------------------------------- booleans


def test_a_boolean_kept_as_2_in_tinyint_is_different(tmp_path: Path) -> None:
    """MariaDB keeps a boolean in TINYINT(1): 2 there is not the 1 the copy wrote; the
    checksum rendered every non-zero as 1 and proved the range equal."""
    with make_pair((PG, MY), tmp_path) as pair:
        pair.source_sql("CREATE TABLE f (id INTEGER PRIMARY KEY, b BOOLEAN)")
        pair.source_sql("INSERT INTO f VALUES (1, true), (2, false), (3, NULL)")
        job = "load: {batch_size: 2}\n"
        pair.copy(job)
        for method in ("rows", "checksum"):
            report = verify(pair, job, method=method)
            assert_passes(report)
        assert table_detail(report, "f")["rows_read"] == 0  # clean: proven by checksums

        pair.target_sql("UPDATE f SET b = 2 WHERE id = 1")
        wanted = {**CLEAN, "different": 1, "different_keys": [{"key": {"id": 1}, "columns": ["b"]}]}
        assert _both(pair, job, "f") == {"rows": wanted, "checksum": wanted}


# --------------------------------------------------------------------- subtle values

SUBTLE: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("empty string to NULL", "UPDATE v SET s = NULL WHERE id = 1", None, "s"),
    ("NULL to empty string", "UPDATE v SET s = '' WHERE id = 2", None, "s"),
    ("trailing space", "UPDATE v SET s = 'Bob ' WHERE id = 3", None, "s"),
    ("case", "UPDATE v SET s = 'bob' WHERE id = 3", None, "s"),
    ("unicode normalisation", "UPDATE v SET s = :x WHERE id = 4", {"x": "cafe\u0301"}, "s"),
    ("decimal", "UPDATE v SET n = 1.51 WHERE id = 1", None, "n"),
    ("seconds truncated", "UPDATE v SET t = :x WHERE id = 1", {"x": datetime(2024, 1, 1, 12)}, "t"),
    ("one hour shift", "UPDATE v SET t = :x WHERE id = 2", {"x": datetime(2024, 1, 1, 13)}, "t"),
    (
        "last byte of a long text",
        "UPDATE v SET txt = :x WHERE id = 1",
        {"x": "x" * 9999 + "y"},
        "txt",
    ),
]


@pytest.mark.parametrize(
    ("sql", "params", "column"), [c[1:] for c in SUBTLE], ids=[c[0] for c in SUBTLE]
)
def test_subtle_differences_are_caught_by_both_methods(
    pair: Pair, sql: str, params: dict[str, Any] | None, column: str
) -> None:
    ts = {MY: "DATETIME(6)", PG: "TIMESTAMP(6)", LITE: "TIMESTAMP"}[pair.source_dialect]
    text = "LONGTEXT" if pair.source_dialect == MY else "TEXT"
    pair.source_sql(
        f"CREATE TABLE v (id INTEGER PRIMARY KEY, s VARCHAR(20), n DECIMAL(10, 2), t {ts}, "
        f"txt {text})"
    )
    pair.source_sql(
        "INSERT INTO v VALUES (:id, :s, :n, :t, :txt)",
        [
            {
                "id": 1,
                "s": "",
                "n": "1.50",
                "t": datetime(2024, 1, 1, 12, 0, 0, 5),
                "txt": "x" * 10000,
            },
            {"id": 2, "s": None, "n": "2", "t": datetime(2024, 1, 1, 12), "txt": ""},
            {"id": 3, "s": "Bob", "n": None, "t": None, "txt": None},
            {"id": 4, "s": "caf\u00e9", "n": "-0.01", "t": datetime(1999, 12, 31), "txt": "y"},
        ],
    )
    job = "load: {batch_size: 2}\n"
    pair.copy(job)
    for method in _methods(pair):
        assert_passes(verify(pair, job, method=method))

    pair.target_sql(sql, [params] if params else None)
    key = int(sql.rsplit("=", 1)[1])
    wanted = {
        **CLEAN,
        "different": 1,
        "different_keys": [{"key": {"id": key}, "columns": [column]}],
    }
    assert _both(pair, job, "v") == dict.fromkeys(_methods(pair), wanted)


# ------------------------------------------------------------------------ rows, keys


def test_a_duplicated_row_in_a_target_without_a_primary_key_fails(pair: Pair) -> None:
    pair.source_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v VARCHAR(10))")
    pair.source_sql("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    pair.target_sql("CREATE TABLE t (id INTEGER, v VARCHAR(10))")
    job = "tables:\n  t: {key: [id]}\nload: {batch_size: 2}\n"
    pair.copy(job)
    for method in _methods(pair):
        assert_passes(verify(pair, job, method=method))

    pair.target_sql("INSERT INTO t VALUES (2, 'b')")
    for method in _methods(pair):
        report = verify(pair, job, method=method)
        assert report.status == "failed", method
        assert table_detail(report, "t")["target_rows"] == 4


def test_a_row_outside_the_filter_in_the_target_is_extra(pair: Pair) -> None:
    pair.source_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v VARCHAR(10))")
    pair.source_sql("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (10, 'z')")
    job = "tables:\n  t: {where: \"v <> 'z'\"}\nload: {batch_size: 2}\n"
    pair.copy(job)
    pair.target_sql("INSERT INTO t VALUES (10, 'z')")
    wanted = {**CLEAN, "extra": 1, "extra_keys": [{"id": 10}]}
    assert _both(pair, job, "t") == dict.fromkeys(_methods(pair), wanted)


# --------------------------------------------------------------------------- rejects


def _refusing(pair: Pair, key_type: str, keys: list[Any]) -> str:
    pair.source_sql(f"CREATE TABLE t (k {key_type} PRIMARY KEY, v INTEGER)")
    pair.source_sql(
        "INSERT INTO t VALUES (:k, :v)",
        [{"k": k, "v": v} for k, v in zip(keys, (1, -5, 3), strict=True)],
    )
    target_key = key_type
    if key_type in ("TIMESTAMP", "DATETIME"):
        target_key = "DATETIME" if pair.target_dialect == MY else "TIMESTAMP"
    pair.target_sql(f"CREATE TABLE t (k {target_key} PRIMARY KEY, v INTEGER CHECK (v >= 0))")
    job = "load: {batch_size: 2}\n"
    pair.copy(job)
    assert [r[2] for r in pair.rejects()] == ["load"]
    return job


def test_refused_rows_with_timestamp_keys_are_not_missing(tmp_path: Path) -> None:
    """A reject's key is stored as JSON text ('2024-01-02 00:00:00'); it was matched
    against Arrow's rendering of the key ('2024-01-02 00:00:00.000000'), never equal."""
    for dialects in [(PG, PG), (MY, PG), (PG, MY)]:
        with make_pair(dialects, tmp_path / "-".join(dialects)) as pair:
            stamps = [datetime(2024, 1, 1), datetime(2024, 1, 2), datetime(2024, 1, 3, 10)]
            key_type = "DATETIME" if pair.source_dialect == MY else "TIMESTAMP"
            job = _refusing(pair, key_type, stamps)
            for method in ("rows", "checksum"):
                report = verify(pair, job, method=method)
                assert_passes(report)
                detail = table_detail(report, "t")
                assert (detail["expected_rows"], detail["target_rows"]) == (2, 2)
                assert detail["refused_at_load"] == 1


def test_a_fake_load_reject_does_not_excuse_a_missing_row(pair: Pair) -> None:
    """A load reject excuses its row only while it records the source's row: one written by
    hand (or left from an older source row) must not hide a row deleted from the target."""
    job = _refusing(pair, "INTEGER", [1, 2, 3])
    for method in _methods(pair):
        assert_passes(verify(pair, job, method=method))
    pair.target_sql("DELETE FROM t WHERE k = 3")
    pair.target_sql(
        "INSERT INTO ferry_rejects (run_id, job, table_name, source_key, rule, error, row_data, "
        "rejected_at) VALUES ('x', 'job', 't', '[3]', 'load', 'fake', '{\"k\": 3, \"v\": 4}', "
        "CURRENT_TIMESTAMP)"
    )
    wanted = {**CLEAN, "missing": 1, "missing_keys": [{"k": 3}]}
    for method in _methods(pair):
        report = verify(pair, job, method=method)
        assert diff_of(report, "t") == wanted, method
        assert any("do not hold the source's row" in w for w in report.categories["data"].warnings)


# ------------------------------------------------------- transforms the rows path checks


def test_value_maps_null_defaults_and_derived_columns(pair: Pair) -> None:
    pair.source_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, st CHAR(1), a INTEGER, b INTEGER)")
    pair.source_sql("INSERT INTO t VALUES (1, 'A', 1, 2), (2, 'I', 3, 4), (3, NULL, 5, 6)")
    job = (
        "tables:\n  t:\n    values: {st: {map: {A: active, I: inactive}}}\n"
        "    nulls: {st: unknown}\n    types: {st: VARCHAR(20)}\n"
        '    derive: {total: "a + b"}\nload: {batch_size: 2}\n'
    )
    pair.copy(job)
    assert_passes(verify(pair, job))
    pair.target_sql("UPDATE t SET st = 'A' WHERE id = 1")
    pair.target_sql("UPDATE t SET total = 8 WHERE id = 2")
    pair.target_sql("UPDATE t SET st = NULL WHERE id = 3")
    assert diff_of(verify(pair, job, method="rows"), "t") == {
        **CLEAN,
        "different": 3,
        "different_keys": [
            {"key": {"id": 1}, "columns": ["st"]},
            {"key": {"id": 2}, "columns": ["total"]},
            {"key": {"id": 3}, "columns": ["st"]},
        ],
    }
