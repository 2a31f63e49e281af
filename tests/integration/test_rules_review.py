"""Review of the transform rules end to end, on the real servers: value maps with keys YAML
reads as numbers, de-duplication with NULL and whitespace-padded keys across chunks (also
`merge`), a derived column that cannot be computed for one row, a NULL default of the wrong
type, and aggregates over NULL measures built again on a re-run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect

from ferry.data.copy import copy_data
from ferry.data.spec import parse_job
from ferry.data.state import Counts
from ferry.errors import ConfigError
from ferry.runs import read_runs
from tests.conftest import engine_for
from tests.integration.test_copy import MY, PG, Pair, counts_of, make_pair, timestamp_type

pytestmark = pytest.mark.integration

PAIRS = [(MY, PG), (PG, MY)]


@pytest.fixture(params=PAIRS, ids=lambda p: f"{p[0][:5]}-to-{p[1][:5]}")
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with make_pair(request.param, tmp_path) as made:
        yield made


def test_value_map_keys_read_as_numbers_by_yaml(pair: Pair) -> None:
    pair.source_sql("CREATE TABLE codes (id INTEGER PRIMARY KEY, code VARCHAR(5), flag INTEGER)")
    pair.source_sql(
        "INSERT INTO codes VALUES (:i, :c, :f)",
        [
            {"i": 1, "c": "010", "f": 1},
            {"i": 2, "c": "01", "f": 0},
            {"i": 3, "c": "1:30", "f": 7},
            {"i": 4, "c": "1.0", "f": None},
        ],
    )
    report = pair.copy(
        """
        tables:
          codes:
            values:
              code: {010: ten, 01: one, 1:30: late, 1.0: float}
              flag: {map: {1: true, 0: false}, unmapped: keep}
        """
    )
    assert counts_of(report)["codes"] == Counts(read=4, written=4)
    assert pair.rows("codes") == [
        (1, "ten", 1),
        (2, "one", 0),
        (3, "late", 7),
        (4, "float", None),
    ]


def _emails(pair: Pair) -> None:
    pair.source_sql(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(50), name VARCHAR(20))"
    )
    pair.source_sql(
        "INSERT INTO people VALUES (:i, :e, :n)",
        [
            {"i": 1, "e": None, "n": "ann"},
            {"i": 2, "e": "bo@x.com", "n": None},
            {"i": 3, "e": None, "n": "cy"},  # chunk 2: no e-mail, no duplicate
            {"i": 4, "e": " BO@x.com ", "n": "bo"},  # duplicate of 2 (case, spaces)
            {"i": 5, "e": None, "n": "di"},  # chunk 3
            {"i": 6, "e": "ed@x.com", "n": "ed"},
        ],
    )


def test_dedupe_first_keeps_rows_without_a_key_across_chunks(pair: Pair) -> None:
    _emails(pair)
    report = pair.copy(
        """
        tables:
          people:
            dedupe: {on: [email]}
        load: {batch_size: 2}
        """
    )
    assert counts_of(report)["people"] == Counts(read=6, written=5, deduped=1)
    assert [r[0] for r in pair.rows("people")] == [1, 2, 3, 5, 6]


def test_dedupe_merge_fills_across_chunks_and_keeps_rows_without_a_key(pair: Pair) -> None:
    _emails(pair)
    report = pair.copy(
        """
        tables:
          people:
            dedupe: {on: [email], keep: merge}
        load: {batch_size: 2}
        """
    )
    assert counts_of(report)["people"] == Counts(read=6, written=5, deduped=1)
    assert pair.rows("people") == [
        (1, None, "ann"),
        (2, "bo@x.com", "bo"),  # its NULL name filled from row 4, a later chunk
        (3, None, "cy"),
        (5, None, "di"),
        (6, "ed@x.com", "ed"),
    ]


def test_a_derived_column_rejects_the_rows_it_cannot_compute(pair: Pair) -> None:
    pair.source_sql("CREATE TABLE ratios (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER)")
    pair.source_sql(
        "INSERT INTO ratios VALUES (:i, :a, :b)",
        [
            {"i": 1, "a": 6, "b": 3},
            {"i": 2, "a": 1, "b": 0},
            {"i": 3, "a": None, "b": 0},
            {"i": 4, "a": 8, "b": 2},
        ],
    )
    report = pair.copy(
        """
        tables:
          ratios:
            derive: {ratio: "a / b"}
        errors: {max_error_rate: 0.5}
        """
    )
    assert report.status == "completed"
    assert counts_of(report)["ratios"] == Counts(read=4, written=3, rejected=1)
    assert pair.rows("ratios") == [(1, 6, 3, 2), (3, None, 0, None), (4, 8, 2, 4)]
    [(table, key, rule, error, row)] = pair.rejects()
    assert (table, key, rule, row) == ("ratios", [2], "derive:ratio", {"id": 2, "a": 1, "b": 0})
    assert "divide by zero" in error


def test_a_default_of_the_wrong_type_fails_before_anything_is_written(pair: Pair) -> None:
    pair.source_sql("CREATE TABLE stock (id INTEGER PRIMARY KEY, qty INTEGER)")
    pair.source_sql("INSERT INTO stock VALUES (1, NULL), (2, 5)")
    path = pair.folder / "job.yaml"
    spec = parse_job(pair.spec_text("tables:\n  stock:\n    nulls: {qty: none}\n"), path=path)
    with pytest.raises(ConfigError) as caught:
        copy_data(spec, spec_path=path)
    assert caught.value.key == "tables.stock.nulls.qty"
    assert str(path) in str(caught.value)
    engine = engine_for(pair.target)
    try:
        # The rules are compiled before the run starts: no table made, no run to roll back.
        assert not inspect(engine).has_table("stock")
        with engine.connect() as conn:
            assert not [r for r in read_runs(conn) if r.type == "data"]
    finally:
        engine.dispose()


def test_aggregates_over_null_measures_are_rebuilt_on_a_rerun(pair: Pair) -> None:
    ts = timestamp_type(pair.source_dialect)
    pair.source_sql(
        f"CREATE TABLE readings (id INTEGER PRIMARY KEY, camera_id INTEGER, count INTEGER, "
        f"recorded_at {ts})"
    )
    pair.source_sql(
        "INSERT INTO readings VALUES (:i, :c, :n, :t)",
        [
            {"i": 1, "c": 1, "n": 5, "t": datetime(2024, 3, 4, 8, 15)},
            {"i": 2, "c": 1, "n": None, "t": datetime(2024, 3, 4, 8, 45)},
            {"i": 3, "c": 2, "n": None, "t": datetime(2024, 3, 4, 9, 0)},
        ],
    )
    job = """
        tables:
          readings: {}
        aggregates:
          hourly:
            from: readings
            group_by: {camera_id: camera_id, hour: "DATE_TRUNC('hour', recorded_at)"}
            measures: {n: "count(*)", counted: "count(count)", total: "sum(count)",
                       average: "avg(count)"}
        """
    expected = [
        (1, datetime(2024, 3, 4, 8), 2, 1, 5, 5.0),
        (2, datetime(2024, 3, 4, 9), 1, 0, None, None),
    ]
    pair.copy(job)
    assert [
        tuple(float(v) if k == 5 and v is not None else v for k, v in enumerate(r))
        for r in pair.rows("hourly")
    ] == expected
    pair.copy(job, restart=True)
    report = pair.copy(job)
    assert report.aggregates[0].groups == 2
    assert [
        tuple(float(v) if k == 5 and v is not None else v for k, v in enumerate(r))
        for r in pair.rows("hourly")
    ] == expected
    engine = engine_for(pair.target)
    try:
        assert "hourly" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
