"""`ferry copy` beyond a plain bulk load: upserts into tables that already hold rows,
incremental windows on a cursor column, samples, streaming, index/key/trigger deferral,
aggregate tables and the views a copy cannot translate.

Each test builds its source with plain SQL in a fresh database and checks the target rows
exactly, the checkpoint and reject tables, and the report's balance
read = written + rejected + filtered + deduped.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, inspect, select, text

from ferry.data.state import Counts
from ferry.data.transform import DataError
from tests.conftest import engine_for
from tests.integration.test_copy import Pair, counts_of, make_pair, timestamp_type

pytestmark = pytest.mark.integration

PG, MY, LITE = "postgresql", "mysql", "sqlite"
SHORT = {PG: "pg", MY: "mariadb", LITE: "sqlite"}


def pair_id(pair: tuple[str, str]) -> str:
    return f"{SHORT[pair[0]]}-to-{SHORT[pair[1]]}"


#: Two target dialects, each fed by the other server.
CROSS = [(MY, PG), (PG, MY)]


@pytest.fixture(params=CROSS, ids=pair_id)
def cross(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with make_pair(request.param, tmp_path) as made:
        yield made


def query(url: str, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params or {}).all()]
    finally:
        engine.dispose()


def typed_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    """All rows of a table, typed by its reflected columns, by the first column."""
    engine = engine_for(url)
    try:
        reflected = Table(table, MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            found = conn.execute(select(reflected).order_by(*reflected.c[:1])).all()
        return [tuple(r) for r in found]
    finally:
        engine.dispose()


def checkpoint_rows(pair: Pair, table: str, job: str = "job") -> list[tuple[Any, ...]]:
    """(chunk, lo, hi, status, rows_read, rows_written, run_id), by chunk."""
    return query(
        pair.target,
        "SELECT chunk, lo, hi, status, rows_read, rows_written, run_id "
        "FROM migration_checkpoints WHERE job = :j AND table_name = :t ORDER BY chunk",
        {"j": job, "t": table},
    )


# ------------------------------------------------------------------------------ upsert

ITEMS = [(i, f"item{i}", i * 10) for i in range(1, 7)]
EXISTING = [(2, "old2", 0), (4, "old4", 0), (10, "keep10", 1)]


def _items(pair: Pair) -> None:
    for sql in (pair.source_sql, pair.target_sql):
        sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL, qty INTEGER)")
    pair.source_sql(
        "INSERT INTO items VALUES (:i, :n, :q)", [{"i": i, "n": n, "q": q} for i, n, q in ITEMS]
    )
    pair.target_sql(
        "INSERT INTO items VALUES (:i, :n, :q)", [{"i": i, "n": n, "q": q} for i, n, q in EXISTING]
    )


UPSERT_JOB = """
load: {{strategy: upsert, on_conflict: {mode}, batch_size: 2}}
errors: {{max_errors: 10}}
"""


def test_upsert_update_overwrites_existing_rows(cross: Pair) -> None:
    _items(cross)

    report = cross.copy(UPSERT_JOB.format(mode="update"))

    assert counts_of(report)["items"] == Counts(read=6, written=6)
    assert not report.tables[0].created
    assert cross.rows("items") == [*ITEMS, (10, "keep10", 1)]
    assert cross.rejects() == []


def test_upsert_ignore_keeps_existing_rows_and_counts_them_deduped(cross: Pair) -> None:
    _items(cross)

    report = cross.copy(UPSERT_JOB.format(mode="ignore"))

    assert counts_of(report)["items"] == Counts(read=6, written=4, deduped=2)
    assert cross.rows("items") == [
        (1, "item1", 10),
        (2, "old2", 0),
        (3, "item3", 30),
        (4, "old4", 0),
        (5, "item5", 50),
        (6, "item6", 60),
        (10, "keep10", 1),
    ]
    assert cross.rejects() == []


def test_upsert_fail_rejects_conflicting_rows(cross: Pair) -> None:
    _items(cross)

    report = cross.copy(UPSERT_JOB.format(mode="fail"))

    assert counts_of(report)["items"] == Counts(read=6, written=4, rejected=2)
    assert cross.rows("items") == [
        (1, "item1", 10),
        (2, "old2", 0),
        (3, "item3", 30),
        (4, "old4", 0),
        (5, "item5", 50),
        (6, "item6", 60),
        (10, "keep10", 1),
    ]
    found = cross.rejects()
    assert [(t, k, r, d) for t, k, r, _, d in found] == [
        ("items", [2], "load", {"id": 2, "name": "item2", "qty": 20}),
        ("items", [4], "load", {"id": 4, "name": "item4", "qty": 40}),
    ]
    assert all("dup" in e.lower() for *_, e, _ in found)


@pytest.mark.parametrize("dialects", [(LITE, PG), (PG, MY)], ids=pair_id)
def test_upsert_on_a_unique_column_of_a_table_with_generated_keys(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """`conflict:` names a unique column; the target numbers its rows itself."""
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, code VARCHAR(10), n INTEGER)")
        pair.source_sql(
            "INSERT INTO tags VALUES (:i, :c, :n)",
            [{"i": i, "c": c, "n": n} for i, c, n in [(1, "a", 1), (2, "b", 2), (3, "c", 3)]],
        )
        auto = "SERIAL PRIMARY KEY" if pair.target_dialect == PG else "INTEGER AUTO_INCREMENT"
        pair.target_sql(
            f"CREATE TABLE tags (id {auto}, code VARCHAR(10) NOT NULL, n INTEGER, "
            "CONSTRAINT tags_code_key UNIQUE (code)"
            + (", PRIMARY KEY (id))" if pair.target_dialect == MY else ")")
        )
        pair.target_sql("INSERT INTO tags (id, code, n) VALUES (20, 'b', 0)")

        report = pair.copy(
            "tables:\n  tags:\n    columns: [code, n]\n    conflict: [code]\n"
            "load: {strategy: upsert}\n"
        )

        assert counts_of(report)["tags"] == Counts(read=3, written=3)
        rows = pair.rows("tags")
        assert sorted(r[1:] for r in rows) == [("a", 1), ("b", 2), ("c", 3)]
        assert (20, "b", 2) in rows  # updated in place, its own id kept
        assert pair.rejects() == []


# ------------------------------------------------------------------------- incremental

T0 = datetime(2024, 5, 1, 12, 0, 0)
INCREMENTAL_JOB = """
tables:
  events:
    mode: incremental
    cursor: updated_at
load: {batch_size: 3}
"""


@pytest.mark.parametrize("dialects", [(MY, PG), (PG, MY), (LITE, PG)], ids=pair_id)
def test_incremental_copies_only_changed_rows(dialects: tuple[str, str], tmp_path: Path) -> None:
    with make_pair(dialects, tmp_path) as pair:
        ts = timestamp_type(pair.source_dialect)
        pair.source_sql(
            f"CREATE TABLE events (id INTEGER PRIMARY KEY, val VARCHAR(20), updated_at {ts} NULL)"
        )
        first = [(i, f"v{i}", T0 + timedelta(minutes=i)) for i in range(1, 7)]
        first += [(7, "v7", None), (8, "v8", None)]  # a cursor never set
        pair.source_sql(
            "INSERT INTO events VALUES (:i, :v, :u)",
            [{"i": i, "v": v, "u": u} for i, v, u in first],
        )

        report = pair.copy(INCREMENTAL_JOB)

        assert counts_of(report)["events"] == Counts(read=8, written=8)
        assert pair.rows("events") == first

        later = T0 + timedelta(hours=1)
        pair.source_sql(
            "UPDATE events SET val = 'v2b', updated_at = :u WHERE id = 2", [{"u": later}]
        )
        pair.source_sql(
            "UPDATE events SET val = 'v5b', updated_at = :u WHERE id = 5", [{"u": later}]
        )
        pair.source_sql(
            "UPDATE events SET val = 'v7b', updated_at = :u WHERE id = 7", [{"u": later}]
        )
        pair.source_sql(
            "INSERT INTO events VALUES (:i, :v, :u)",
            [{"i": 9, "v": "v9", "u": later}, {"i": 10, "v": "v10", "u": later}],
        )
        expected = typed_rows(pair.source, "events")

        second = pair.copy(INCREMENTAL_JOB)

        # The five changed rows, and id 6 again: it holds the last run's maximum, which a
        # row written in the same tick would hold too (the window includes it).
        assert counts_of(second)["events"] == Counts(read=6, written=6)
        assert second.tables[0].chunks_resumed == 0
        assert pair.rows("events") == expected
        assert len(expected) == 10

        third = pair.copy(INCREMENTAL_JOB)

        # Nothing changed: only the five rows at the maximum are read again.
        assert counts_of(third)["events"] == Counts(read=5, written=5)
        chunk_runs = {r[6] for r in checkpoint_rows(pair, "events") if r[0] >= 0}
        assert chunk_runs == {third.run_id}
        assert pair.rows("events") == expected


# ------------------------------------------------------------------------------ samples

SAMPLE_ROWS = 400


def _sample_source(pair: Pair, *names: str) -> None:
    def group(i: int) -> str:
        if i > SAMPLE_ROWS - 24:
            return f"few{(SAMPLE_ROWS - i) // 3}"  # eight strata of three rows each
        if i == 200:
            return "one"  # a stratum of a single row
        return "big" if i % 4 else "mid"

    rows = [{"i": i, "g": group(i), "v": i * 3} for i in range(1, SAMPLE_ROWS + 1)]
    for name in names:
        pair.source_sql(
            f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, grp VARCHAR(10) NOT NULL, v INTEGER)"
        )
        pair.source_sql(f"INSERT INTO {name} VALUES (:i, :g, :v)", rows)


def _assert_sample_balance(pair: Pair, counts: dict[str, Counts]) -> None:
    for name, c in counts.items():
        assert c.read == SAMPLE_ROWS, name
        assert c.rejected == c.deduped == 0, name
        assert c.filtered == SAMPLE_ROWS - c.written, name  # unsampled rows are filtered
        assert c.written == len(pair.rows(name)), name


SAMPLE_JOB = """
tables:
  s_random:
    mode: sample
    sample: {method: random, percent: 25, seed: 7}
  s_rows:
    mode: sample
    sample: {rows: 60, seed: 3}
  s_systematic:
    mode: sample
    sample: {method: systematic, percent: 10}
load: {batch_size: 90}
"""


@pytest.mark.parametrize("dialects", [(PG, MY), (MY, PG)], ids=pair_id)
def test_samples_random_rows_and_systematic(dialects: tuple[str, str], tmp_path: Path) -> None:
    with make_pair(dialects, tmp_path) as pair:
        _sample_source(pair, "s_random", "s_rows", "s_systematic")

        report = pair.copy(SAMPLE_JOB)

        counts = counts_of(report)
        _assert_sample_balance(pair, counts)
        assert 70 <= counts["s_random"].written <= 130  # 25 % of 400
        assert 30 <= counts["s_rows"].written <= 90  # about 60
        assert pair.rows("s_systematic", "id") == [(i,) for i in range(10, SAMPLE_ROWS + 1, 10)]
        assert counts["s_systematic"] == Counts(read=400, written=40, filtered=360)

        # The same seeds pick the same rows in another run, into another database.
        first = {name: pair.rows(name) for name in counts}
        pair.target = f"sqlite:///{tmp_path / 'again.db'}"
        again = pair.copy(SAMPLE_JOB)
        assert counts_of(again) == counts
        assert {name: pair.rows(name) for name in counts} == first


#: Four tables, four seeds: the guarantee holds for every seed, not a lucky one.
STRATA_TABLES = {f"strata_{n}": n for n in (1, 2, 3, 4)}
STRATA_JOB = (
    "tables:\n"
    + "".join(
        f"  {name}:\n    mode: sample\n"
        f"    sample: {{method: stratified, by: grp, percent: 10, seed: {seed}}}\n"
        for name, seed in STRATA_TABLES.items()
    )
    + "load: {batch_size: 90}\n"
)


@pytest.mark.parametrize("dialects", [(PG, MY), (MY, PG)], ids=pair_id)
def test_stratified_sample_keeps_every_stratum(dialects: tuple[str, str], tmp_path: Path) -> None:
    with make_pair(dialects, tmp_path) as pair:
        _sample_source(pair, *STRATA_TABLES)

        report = pair.copy(STRATA_JOB)

        _assert_sample_balance(pair, counts_of(report))
        for name in STRATA_TABLES:
            strata: dict[str, int] = {}
            for (grp,) in pair.rows(name, "grp"):
                strata[grp] = strata.get(grp, 0) + 1
            # Each stratum keeps its share, and even a small one keeps a row.
            assert 20 <= strata.pop("big") <= 50, name  # 282 rows, 10 %
            assert 3 <= strata.pop("mid") <= 17, name  # 93 rows, 10 %
            assert strata.pop("one") == 1, name
            assert sorted(strata) == [f"few{n}" for n in range(8)], name  # 3 rows each
            assert all(n <= 3 for n in strata.values()), name


# ------------------------------------------------------------------------------ stream

STREAM_JOB = """
load: {strategy: stream, batch_size: 7, buffer_batches: 2, flush_interval: 0.05}
"""


@pytest.mark.parametrize("dialects", [(PG, MY), (MY, PG), (LITE, PG)], ids=pair_id)
def test_stream_flushes_are_checkpointed_and_a_rerun_copies_nothing(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql("CREATE TABLE ticks (id INTEGER PRIMARY KEY, v VARCHAR(10))")
        pair.source_sql("CREATE TABLE codes (code VARCHAR(10) PRIMARY KEY, n INTEGER)")
        ids = [i * 2 for i in range(1, 51)]  # 2..100
        pair.source_sql("INSERT INTO ticks VALUES (:i, :v)", [{"i": i, "v": f"t{i}"} for i in ids])
        codes = [f"k{n:03d}" for n in range(30)]
        pair.source_sql(
            "INSERT INTO codes VALUES (:c, :n)", [{"c": c, "n": n} for n, c in enumerate(codes)]
        )

        report = pair.copy(STREAM_JOB)

        assert report.status == "completed"
        counts = counts_of(report)
        assert counts["ticks"] == Counts(read=50, written=50)
        assert counts["codes"] == Counts(read=30, written=30)
        assert pair.rows("ticks") == [(i, f"t{i}") for i in ids]
        assert pair.rows("codes") == [(c, n) for n, c in enumerate(codes)]

        for table, last, total in (("ticks", [100], 50), ("codes", ["k029"], 30)):
            rows = checkpoint_rows(pair, table)
            stream = [r for r in rows if r[0] == 0]
            flushes = [r for r in rows if r[0] >= 1]
            assert [r[3] for r in stream] == ["done"], table
            assert len(flushes) >= 2, table
            assert all(r[3] == "done" for r in flushes), table
            assert json.loads(flushes[-1][2]) == last, table
            assert sum(r[4] for r in flushes) == total, table
            assert sum(r[5] for r in flushes) == total, table
            # Each flush starts where the one before ended.
            for before, after in itertools.pairwise(flushes):
                assert after[1] == before[2], table
        before = {t: checkpoint_rows(pair, t) for t in ("ticks", "codes")}

        again = pair.copy(STREAM_JOB)

        assert counts_of(again) == counts
        assert {t: checkpoint_rows(pair, t) for t in ("ticks", "codes")} == before
        assert pair.rows("ticks") == [(i, f"t{i}") for i in ids]
        assert pair.rows("codes") == [(c, n) for n, c in enumerate(codes)]


# ---------------------------------------------------------------------------- deferral


def _schema_snapshot(pair: Pair) -> dict[str, Any]:
    """Definitions of the target's indexes, foreign keys and triggers."""
    url = pair.target
    if pair.target_dialect == PG:
        return {
            "indexes": query(
                url,
                "SELECT tablename, indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema() AND tablename IN ('parent', 'child') "
                "ORDER BY 1, 2",
            ),
            "constraints": query(
                url,
                "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "JOIN pg_class t ON t.oid = c.conrelid "
                "WHERE t.relname IN ('parent', 'child') ORDER BY 1, 2",
            ),
            "triggers": query(
                url,
                "SELECT t.relname, g.tgname, g.tgenabled, pg_get_triggerdef(g.oid) "
                "FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid "
                "WHERE t.relname IN ('parent', 'child') AND NOT g.tgisinternal ORDER BY 1, 2",
            ),
        }
    return {
        "create": [query(url, f"SHOW CREATE TABLE {t}")[0] for t in ("parent", "child")],
        "indexes": query(
            url,
            "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE "
            "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME IN ('parent', 'child') "
            "ORDER BY 1, 2, 3",
        ),
        "constraints": query(
            url,
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, "
            "k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE "
            "FROM information_schema.KEY_COLUMN_USAGE k "
            "JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
            "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA "
            "AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
            "WHERE k.TABLE_SCHEMA = DATABASE() ORDER BY 1, 2, 3",
        ),
        "triggers": query(
            url,
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_STATEMENT "
            "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1",
        ),
    }


def _deferral_tables(pair: Pair) -> None:
    pair.source_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL)")
    pair.source_sql(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, "
        "note VARCHAR(20), email VARCHAR(40))"
    )
    pair.source_sql(
        "INSERT INTO parent VALUES (:i, :n)", [{"i": i, "n": f"p{i}"} for i in range(1, 6)]
    )
    pair.source_sql(
        "INSERT INTO child VALUES (:i, :p, :n, :e)",
        [
            {"i": i, "p": i % 5 + 1, "n": f"note{i}", "e": "bad" if i == 9 else f"c{i}@x.org"}
            for i in range(1, 13)
        ],
    )
    pair.target_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL)")
    pair.target_sql("CREATE INDEX parent_name_ix ON parent (name)")
    pair.target_sql(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, "
        "note VARCHAR(20), email VARCHAR(40), "
        "CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) "
        "ON DELETE CASCADE)"
    )
    pair.target_sql("CREATE INDEX child_note_email_ix ON child (note, email)")
    pair.target_sql("CREATE INDEX child_parent_ix ON child (parent_id)")
    if pair.target_dialect == PG:
        pair.target_sql(
            "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.note := upper(NEW.note); RETURN NEW; END $$"
        )
        pair.target_sql(
            "CREATE TRIGGER child_shout BEFORE INSERT ON child "
            "FOR EACH ROW EXECUTE FUNCTION shout()"
        )
    else:
        pair.target_sql(
            "CREATE TRIGGER child_shout BEFORE INSERT ON child FOR EACH ROW "
            "SET NEW.note = UPPER(NEW.note)"
        )


def _deferred_left(pair: Pair) -> list[tuple[Any, ...]]:
    return query(pair.target, "SELECT table_name, kind, name FROM ferry_deferred")


@pytest.mark.parametrize("dialects", [(MY, PG), (PG, MY), (LITE, PG)], ids=pair_id)
def test_deferred_objects_come_back_after_success_and_failure(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    with make_pair(dialects, tmp_path) as pair:
        _deferral_tables(pair)
        before = _schema_snapshot(pair)

        report = pair.copy("load: {batch_size: 4}\n")

        assert counts_of(report) == {
            "parent": Counts(read=5, written=5),
            "child": Counts(read=12, written=12),
        }
        assert _schema_snapshot(pair) == before
        assert _deferred_left(pair) == []
        deferred = sorted((d.table, d.kind, d.name, d.error) for d in report.deferred)
        expected = [
            ("child", "foreign_key", "child_parent_fk", None),
            ("child", "index", "child_note_email_ix", None),
            ("child", "index", "child_parent_ix", None),
            ("parent", "index", "parent_name_ix", None),
        ]
        if pair.target_dialect == PG:
            expected += [("child", "trigger", "child_shout", None)]
        # (MariaDB cannot disable triggers: they keep firing.)
        assert deferred == sorted(expected)
        notes = [r[0] for r in pair.rows("child", "note")]
        if pair.target_dialect == PG:
            # The trigger was off for the load, and is on again.
            assert notes == sorted(f"note{i}" for i in range(1, 13))
            pair.target_sql("INSERT INTO child VALUES (100, 1, 'quiet', NULL)")
            assert pair.rows("child", "id", "note")[-1] == (100, "QUIET")
        else:
            assert notes == sorted(f"NOTE{i}" for i in range(1, 13))
        # The foreign key holds again.
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            pair.target_sql("INSERT INTO child VALUES (101, 42, 'orphan', NULL)")

        # A run stopped by an error limit puts everything back as well.
        pair.target_sql("DELETE FROM child")
        pair.target_sql("DELETE FROM parent")
        with pytest.raises(DataError, match=r"max_errors = 0"):
            pair.copy(
                "name: failing\n"
                "tables:\n  parent:\n  child:\n    validate: {email: email}\n"
                "load: {batch_size: 4, workers: 1}\nerrors: {max_errors: 0}\n"
            )
        assert _schema_snapshot(pair) == before
        assert _deferred_left(pair) == []
        assert len(pair.rows("child")) < 12  # it did stop part-way


# -------------------------------------------------------------------------- aggregates

READINGS = [
    # (id, camera, count, recorded_at)
    (1, 1, 5, datetime(2024, 3, 4, 8, 15)),
    (2, 1, 3, datetime(2024, 3, 4, 8, 59, 59)),
    (3, 1, 4, datetime(2024, 3, 4, 9, 0)),
    (4, 2, 7, datetime(2024, 3, 4, 8, 30)),
    (5, 2, 0, datetime(2024, 3, 4, 8, 45)),
    (6, 2, 12, datetime(2024, 3, 4, 8, 50)),
    (7, 3, 9, datetime(2024, 3, 5, 0, 0)),
    (8, 3, 1, datetime(2024, 3, 4, 23, 59)),
    (9, 1, 6, datetime(2024, 3, 4, 8, 0)),
]
AGGREGATE_JOB = """
tables:
  analytics:
    columns: {id: id, camera_id: camera_id, count: count, timestamp: recorded_at}
aggregates:
  hourly_counts:
    from: analytics
    group_by: {camera_id: camera_id, hour_start: "DATE_TRUNC('hour', recorded_at)"}
    measures:
      total_count: "sum(count)"
      samples: "count(*)"
      avg_count: "avg(count)"
      min_count: "min(count)"
      max_count: "MAX( count )"
load: {batch_size: 4}
"""


def _expected_hourly(pair: Pair) -> list[tuple[Any, ...]]:
    hour = {
        PG: "date_trunc('hour', recorded_at)",
        MY: "CAST(DATE_FORMAT(recorded_at, '%Y-%m-%d %H:00:00') AS DATETIME)",
        LITE: "strftime('%Y-%m-%d %H:00:00', recorded_at)",
    }[pair.target_dialect]
    rows = query(
        pair.target,
        f"SELECT camera_id, {hour} AS h, SUM(count), COUNT(*), AVG(count), MIN(count), "
        "MAX(count) FROM analytics GROUP BY camera_id, h ORDER BY camera_id, h",
    )
    return [_normalized(r) for r in rows]


def _normalized(row: tuple[Any, ...]) -> tuple[Any, ...]:
    camera, hour, total, samples, avg, low, high = row
    if isinstance(hour, str):
        hour = datetime.fromisoformat(hour)
    return (camera, hour, int(total), int(samples), round(float(avg), 3), int(low), int(high))


def _hourly(pair: Pair) -> list[tuple[Any, ...]]:
    rows = pair.rows(
        "hourly_counts",
        "camera_id",
        "hour_start",
        "total_count",
        "samples",
        "avg_count",
        "min_count",
        "max_count",
    )
    return sorted(_normalized(r) for r in rows)


@pytest.mark.parametrize("dialects", [(MY, PG), (PG, MY), (LITE, LITE)], ids=pair_id)
def test_hourly_counts_aggregate_matches_group_by(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    with make_pair(dialects, tmp_path) as pair:
        ts = timestamp_type(pair.source_dialect)
        pair.source_sql(
            "CREATE TABLE analytics (id INTEGER PRIMARY KEY, camera_id INTEGER NOT NULL, "
            f"count INTEGER NOT NULL, timestamp {ts} NOT NULL)"
        )
        pair.source_sql(
            "INSERT INTO analytics VALUES (:a, :b, :c, :d)",
            [dict(zip("abcd", r, strict=True)) for r in READINGS],
        )
        if pair.target_dialect == PG:
            # The example's migration made the table already (plus the extra measures).
            pair.target_sql(
                "CREATE TABLE hourly_counts (camera_id INTEGER NOT NULL, "
                "hour_start TIMESTAMP NOT NULL, total_count BIGINT NOT NULL, "
                "samples INTEGER NOT NULL, avg_count DOUBLE PRECISION, min_count INTEGER, "
                "max_count INTEGER, PRIMARY KEY (camera_id, hour_start))"
            )

        report = pair.copy(AGGREGATE_JOB)

        expected = _expected_hourly(pair)
        assert len(expected) == 5
        assert _hourly(pair) == expected
        assert expected[0] == (1, datetime(2024, 3, 4, 8), 14, 3, round(14 / 3, 3), 3, 6)
        assert [(a.table, a.source, a.groups, a.rows_read) for a in report.aggregates] == [
            ("hourly_counts", "analytics", 5, 9)
        ]

        # A rerun rebuilds the summary from the rows now in the target: no duplicates.
        pair.target_sql(
            "INSERT INTO analytics (id, camera_id, count, recorded_at) VALUES (50, 2, 8, :t)",
            [{"t": datetime(2024, 3, 6, 10, 5)}],
        )
        again = pair.copy(AGGREGATE_JOB)

        expected = _expected_hourly(pair)
        assert len(expected) == 6
        assert _hourly(pair) == expected
        assert [(a.groups, a.rows_read) for a in again.aggregates] == [(6, 10)]


# ------------------------------------------------------------- views and routines


def _views_and_routines(pair: Pair) -> list[str]:
    """Source views (one translatable, one on a table the job leaves out), a trigger and,
    where the database has them, routines. Returns what a person must translate."""
    pair.source_sql("CREATE TABLE base (id INTEGER PRIMARY KEY, n INTEGER)")
    pair.source_sql("CREATE TABLE temp_stage (id INTEGER PRIMARY KEY)")  # excluded: temp_*
    pair.source_sql("INSERT INTO base VALUES (1, 10), (2, 20), (3, 30)")
    pair.source_sql("CREATE VIEW big_ones AS SELECT id, n FROM base WHERE n > 15")
    pair.source_sql("CREATE VIEW staged AS SELECT id FROM temp_stage")
    d = pair.source_dialect
    if d == PG:
        pair.source_sql(
            "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.n := NEW.n + 1; RETURN NEW; END $$"
        )
        pair.source_sql(
            "CREATE TRIGGER base_touch BEFORE UPDATE ON base FOR EACH ROW EXECUTE FUNCTION touch()"
        )
        return ["function touch", "trigger base_touch on base"]
    if d == MY:
        pair.source_sql(
            "CREATE TRIGGER base_touch BEFORE UPDATE ON base FOR EACH ROW SET NEW.n = NEW.n + 1"
        )
        pair.source_sql("CREATE PROCEDURE reset_base() UPDATE base SET n = 0")
        return ["procedure reset_base", "trigger base_touch on base"]
    pair.source_sql(
        "CREATE TRIGGER base_touch AFTER UPDATE ON base BEGIN "
        "UPDATE base SET n = NEW.n + 1 WHERE id = NEW.id AND n = NEW.n; END"
    )
    return ["trigger base_touch on base"]


@pytest.mark.parametrize("dialects", [(MY, PG), (PG, MY), (LITE, PG)], ids=pair_id)
def test_views_carried_over_and_the_rest_listed_for_translation(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    with make_pair(dialects, tmp_path) as pair:
        routines = _views_and_routines(pair)

        report = pair.copy("")

        assert [t.source for t in report.tables] == ["base"]
        assert report.views_created == ["big_ones"]
        assert query(pair.target, "SELECT id, n FROM big_ones ORDER BY id") == [(2, 20), (3, 30)]
        views = [v for v in report.needs_translation if v.startswith("view ")]
        assert [v.split(":")[0] for v in views] == ["view staged"]
        assert "temp_stage" in views[0]  # the target's own reason
        assert sorted(set(report.needs_translation) - set(views)) == routines
        engine = engine_for(pair.target)
        try:
            assert inspect(engine).get_view_names() == ["big_ones"]
        finally:
            engine.dispose()
