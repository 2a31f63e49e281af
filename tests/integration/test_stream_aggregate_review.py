"""Review of `load.strategy: stream` and aggregate tables, against the real databases.

Streams: the reader must block (not buffer the table) while nobody takes its batches; a
stream SIGKILLed mid-flush resumes with exactly the source's rows, its rejects once, also for
a table without a primary key and for a `key:` that is not unique; a target that refuses rows
keeps them as rejects, and a run stopped by the error limit is recorded failed with its
checkpoints. Aggregates: figures equal the target's own GROUP BY (NULL group keys, NULL
measures, sums past int32, averages of integers) over several read pages, keep their column
types when the first run had no rows, and read the summarised table in bounded memory.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect, text
from sqlalchemy import types as sat

from ferry.data import aggregate
from ferry.data.chunks import KeyRange
from ferry.data.spec import parse_job
from ferry.data.state import Counts
from ferry.data.stream import BoundedReader
from ferry.data.tables import plan_tables
from ferry.data.transform import DataError
from ferry.db.target import open_url
from ferry.runs.records import read_runs
from tests.conftest import engine_for
from tests.integration.test_copy import Pair, counts_of, make_pair, timestamp_type

pytestmark = pytest.mark.integration

PG, MY, LITE = "postgresql", "mysql", "sqlite"
SHORT = {PG: "pg", MY: "mariadb", LITE: "sqlite"}


def pair_id(pair: tuple[str, str]) -> str:
    return f"{SHORT[pair[0]]}-to-{SHORT[pair[1]]}"


def query(url: str, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params or {}).all()]
    finally:
        engine.dispose()


def _rss() -> int:
    """This process's resident memory in bytes."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _series(dialect: str, count: int) -> str:
    if dialect == MY:
        return f"(SELECT seq AS n FROM seq_1_to_{count}) AS s"
    if dialect == PG:
        return f"generate_series(1, {count}) AS s(n)"
    return (
        f"(WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {count}) "
        "SELECT n FROM g) AS s"
    )


def _source_running(pair: Pair, table: str) -> bool:
    """Whether the source is still executing a query that reads `table`."""
    if pair.source_dialect == PG:
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'active' AND query ILIKE :q"
        )
    else:
        sql = (
            "SELECT COUNT(*) FROM information_schema.processlist WHERE db = DATABASE() "
            "AND id <> CONNECTION_ID() AND command = 'Query' AND info LIKE :q"
        )
    return bool(query(pair.source, sql, {"q": f"%FROM {table}%"})[0][0])


# ------------------------------------------------------------------- stream: back-pressure


@pytest.mark.parametrize("dialects", [(PG, PG), (MY, PG)], ids=pair_id)
def test_stream_reader_blocks_instead_of_reading_the_table_into_memory(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """A reader nobody takes batches from holds its few buffered batches and waits. It used
    to read through connectorx's arrow_stream, which reads the whole result ahead on its own
    threads whatever the queue's bound: a 250 MB table landed in memory while the target was
    busy."""
    rows = 250_000
    with make_pair(dialects, tmp_path) as pair:
        pad = "repeat('x', 1000)" if pair.source_dialect == PG else "REPEAT('x', 1000)"
        pair.source_sql("CREATE TABLE wide (id INTEGER PRIMARY KEY, pad TEXT)")
        pair.source_sql(
            f"INSERT INTO wide SELECT n, {pad} FROM {_series(pair.source_dialect, rows)}"
        )
        path = tmp_path / "job.yaml"
        spec = parse_job(pair.spec_text("load: {strategy: stream, batch_size: 1000}\n"), path=path)
        source = open_url("source", pair.source)
        target = open_url("target", pair.target)
        try:
            (plan,) = plan_tables(spec, source.engine, target.engine, file=path)
            before = _rss()
            reader = BoundedReader(source, plan, KeyRange(0, None, None), read_rows=250, capacity=4)
            with reader:
                deadline = time.monotonic() + 120
                # Settled: the queue is full and the source runs no query for the reader (it
                # is blocked on the queue, or it has read everything).
                while not (reader.queue.full() and not _source_running(pair, "wide")):
                    assert time.monotonic() < deadline, "the reader never filled its queue"
                    time.sleep(0.2)
                time.sleep(1.0)  # a read-ahead thread would keep filling memory meanwhile
                grown = _rss() - before
                alive = reader.thread.is_alive()
            assert alive
            # 4 batches of 250 rows of 1 kB are 1 MB; the table is 250 MB.
            assert grown < 60 * 2**20, f"memory grew by {grown / 2**20:.0f} MiB"
            # And the queue hands out every row in key order once drained.
            reader = BoundedReader(
                source, plan, KeyRange(0, [rows - 700], None), read_rows=250, capacity=2
            )
            with reader:
                got = list(reader.buffers(300, 60.0))
            ids = [i for t in got for i in t["id"].to_pylist()]
            assert ids == list(range(rows - 699, rows + 1))
        finally:
            source.dispose()
            target.dispose()


# ---------------------------------------------------------------- stream: SIGKILL, resume

STREAM_ROWS = 3_000
STREAM_BATCH = 200
BAD_CODE_EVERY = 53  # rows whose code the value map does not name: rejected


def _slow_target(pair: Pair, table: str) -> None:
    """Each load statement into `table` takes a while, so a kill lands mid-stream."""
    if pair.target_dialect == PG:
        pair.target_sql(
            "CREATE FUNCTION ferry_slow() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.15); "
            "RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        pair.target_sql(
            f"CREATE TRIGGER ferry_slow AFTER INSERT ON {table} FOR EACH STATEMENT "
            "EXECUTE FUNCTION ferry_slow()"
        )
    else:
        pair.target_sql(
            f"CREATE TRIGGER ferry_slow BEFORE INSERT ON {table} FOR EACH ROW DO SLEEP(0.0008)"
        )


def _ticks(pair: Pair, shape: str) -> None:
    """`ticks` in the source and the (empty) target: keyed by id, keyless, or keyed by a
    `grp` of 7 rows each (a `key:` that is not unique)."""
    pk = ", PRIMARY KEY (id)" if shape == "keyed" else ""
    pair.source_sql(
        f"CREATE TABLE ticks (id INTEGER NOT NULL, grp INTEGER NOT NULL, code VARCHAR(2), "
        f"v INTEGER{pk})"
    )
    code = f"CASE WHEN n % {BAD_CODE_EVERY} = 0 THEN 'X' WHEN n % 2 = 0 THEN 'A' ELSE 'B' END"
    # Rows inserted in an order that is not the key's, so a keyless table's scan order is
    # not the id order either.
    pair.source_sql(
        f"INSERT INTO ticks SELECT ({STREAM_ROWS} + 1 - n), ({STREAM_ROWS} + 1 - n) / 7, {code}, "
        f"n * 3 FROM {_series(pair.source_dialect, STREAM_ROWS)}"
    )
    pair.target_sql(
        f"CREATE TABLE ticks (id INTEGER NOT NULL, grp INTEGER NOT NULL, code VARCHAR(10), "
        f"v INTEGER{pk})"
    )
    _slow_target(pair, "ticks")


def _stream_job(pair: Pair, shape: str) -> Path:
    key = "key: [grp], " if shape == "nonunique" else ""
    body = f"""\
        tables:
          ticks: {{{key}values: {{code: {{map: {{A: alpha, B: beta}}, unmapped: reject}}}}}}
        aggregates:
          tick_groups:
            from: ticks
            group_by: {{code: code}}
            measures: {{n: "count(*)", total: "sum(v)", average: "avg(v)"}}
        load:
          strategy: stream
          batch_size: {STREAM_BATCH}
          buffer_batches: 2
          flush_interval: 30
          defer_indexes: false
        errors: {{max_error_rate: 0.5}}
        """
    path = pair.folder / "job.yaml"
    path.write_text(pair.spec_text(body), encoding="utf-8")
    return path


def _command(job: Path) -> list[str]:
    return [sys.executable, "-m", "ferry", "copy", str(job), "--json"]


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)


def _flushes(pair: Pair) -> list[tuple[Any, ...]]:
    try:
        return query(
            pair.target,
            "SELECT chunk, rows_written, rows_rejected FROM migration_checkpoints "
            "WHERE table_name = 'ticks' AND chunk > 0 AND status = 'done'",
        )
    except sa_exc.DBAPIError:  # no checkpoint table yet
        return []


def _kill_mid_stream(
    pair: Pair, job: Path, children: list[subprocess.Popen[bytes]], *, flushes: int
) -> bool:
    """Start the copy and SIGKILL it a moment after `flushes` flushes committed. False when
    the copy finished first (it commits nothing before its end, as a keyless table does)."""
    err = pair.folder / "killed.err"
    with err.open("wb") as stderr:
        child = subprocess.Popen(
            _command(job), cwd=pair.folder, stdout=subprocess.DEVNULL, stderr=stderr
        )
    children.append(child)
    deadline = time.monotonic() + 120
    while len(_flushes(pair)) < flushes:
        if child.poll() is not None:
            assert child.returncode == 0, err.read_text(encoding="utf-8", errors="replace")
            return False
        assert time.monotonic() < deadline, "no flush was checkpointed in 120 s"
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.2))  # anywhere in the next (slow) flush
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    return True


SHAPES = [
    ((MY, PG), "keyed"),
    ((PG, PG), "keyed"),
    ((LITE, PG), "keyed"),
    ((PG, MY), "keyed"),
    ((PG, PG), "keyless"),
    ((MY, PG), "keyless"),
    ((PG, PG), "nonunique"),
    ((PG, MY), "nonunique"),
]


@pytest.mark.parametrize(
    ("dialects", "shape"), SHAPES, ids=[f"{pair_id(d)}-{s}" for d, s in SHAPES]
)
def test_stream_killed_mid_run_resumes_with_exactly_the_source_rows(
    dialects: tuple[str, str], shape: str, tmp_path: Path, children: list[Any]
) -> None:
    """A keyless table used to flush (and commit) batch by batch with no key to resume
    from, so the rerun read it again from its first row: rows twice. A `key:` that is not
    unique could end a flush between two rows of one key: the rerun started after that key
    and lost the rest of its rows."""
    with make_pair(dialects, tmp_path) as pair:
        _ticks(pair, shape)
        job = _stream_job(pair, shape)

        killed = _kill_mid_stream(pair, job, children, flushes=2)

        # What the kill left: exactly the rows and rejects of the committed flushes.
        done = _flushes(pair)
        assert query(pair.target, "SELECT COUNT(*) FROM ticks")[0][0] == sum(r[1] for r in done)
        rejects = "SELECT COUNT(*) FROM ferry_rejects WHERE table_name = 'ticks'"
        assert query(pair.target, rejects)[0][0] == sum(r[2] for r in done)
        if shape != "keyless":
            assert killed, "the copy ended before the kill; slow the target more"

        rerun = subprocess.run(
            _command(job), cwd=pair.folder, capture_output=True, text=True, timeout=300
        )
        assert rerun.returncode == 0, rerun.stderr

        kept = "code <> 'X'"
        expected = query(pair.source, f"SELECT id, grp, v FROM ticks WHERE {kept} ORDER BY id")
        assert query(pair.target, "SELECT id, grp, v FROM ticks ORDER BY id") == expected
        bad = STREAM_ROWS // BAD_CODE_EVERY
        assert query(pair.target, rejects)[0][0] == bad
        report = json.loads(rerun.stdout)
        (table,) = [t for t in report["tables"] if t["table"] == "ticks"]
        counts = table.get("counts", table)
        assert (
            counts["read"]
            == counts["written"] + counts["rejected"] + counts["filtered"] + counts["deduped"]
        )
        assert counts["written"] == len(expected)
        assert counts["rejected"] == bad
        # The summary agrees with the rows loaded, not counted twice over the two runs.
        want = query(
            pair.target,
            "SELECT code, COUNT(*), SUM(v), AVG(v) FROM ticks GROUP BY code ORDER BY code",
        )
        got = query(pair.target, "SELECT code, n, total, average FROM tick_groups ORDER BY code")
        assert [(c, int(n), int(t), round(float(a), 3)) for c, n, t, a in got] == [
            (c, int(n), int(t), round(float(a), 3)) for c, n, t, a in want
        ]
        assert [int(n) for _, n, _, _ in got]
        assert sum(int(n) for _, n, _, _ in got) == len(expected)


@pytest.mark.parametrize("dialects", [(PG, PG), (MY, MY)], ids=pair_id)
def test_stream_pages_of_a_key_that_is_not_unique_end_between_keys(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """A composite `key:` (text, integer) whose first key holds more rows than a page: every
    row once, in key order, and no flush ends inside a key."""
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql(
            "CREATE TABLE parts (id INTEGER PRIMARY KEY, zone VARCHAR(10) NOT NULL, "
            "slot INTEGER NOT NULL)"
        )
        rows = [{"i": i, "z": "a" if i <= 25 else f"z{i % 4}", "s": i % 3} for i in range(1, 90)]
        pair.source_sql("INSERT INTO parts VALUES (:i, :z, :s)", rows)
        path = tmp_path / "job.yaml"
        body = "tables: {parts: {key: [zone, slot]}}\nload: {strategy: stream}\n"
        spec = parse_job(pair.spec_text(body), path=path)
        source = open_url("source", pair.source)
        target = open_url("target", pair.target)
        try:
            (plan,) = plan_tables(spec, source.engine, target.engine, file=path)
            reader = BoundedReader(source, plan, KeyRange(0, None, None), read_rows=4, capacity=2)
            with reader:
                flushes = list(reader.buffers(5, 60.0))
        finally:
            source.dispose()
            target.dispose()
        ids = sorted(i for t in flushes for i in t["id"].to_pylist())
        assert ids == list(range(1, 90))
        keys = [tuple(r.values()) for t in flushes for r in t.select(["zone", "slot"]).to_pylist()]
        assert keys == sorted(keys)
        ends = [
            tuple(t.select(["zone", "slot"]).slice(t.num_rows - 1).to_pylist()[0].values())
            for t in flushes
        ]
        starts = [
            tuple(t.select(["zone", "slot"]).slice(0, 1).to_pylist()[0].values()) for t in flushes
        ]
        assert all(end < start for end, start in zip(ends, starts[1:], strict=False))


# ------------------------------------------------------------------------------ aggregates

HOURLY = """
tables:
  analytics:
    columns: {id: id, camera_id: camera_id, count: count, timestamp: recorded_at}
aggregates:
  hourly_counts:
    from: analytics
    group_by: {camera_id: camera_id, hour_start: "DATE_TRUNC('hour', recorded_at)"}
    measures: {total_count: "sum(count)", samples: "count(*)", counted: "count(count)",
               avg_count: "avg(count)", low: "min(count)", high: "max(count)"}
load: {batch_size: 3}
"""


def _analytics(pair: Pair, rows: list[tuple[Any, ...]]) -> None:
    ts = timestamp_type(pair.source_dialect)
    pair.source_sql(
        f"CREATE TABLE analytics (id INTEGER PRIMARY KEY, camera_id INTEGER, count INTEGER, "
        f"timestamp {ts} NOT NULL)"
    )
    if rows:
        pair.source_sql(
            "INSERT INTO analytics VALUES (:a, :b, :c, :d)",
            [dict(zip("abcd", r, strict=True)) for r in rows],
        )


def _hour_sql(dialect: str) -> str:
    return {
        PG: "date_trunc('hour', recorded_at)",
        MY: "CAST(DATE_FORMAT(recorded_at, '%Y-%m-%d %H:00:00') AS DATETIME)",
        LITE: "strftime('%Y-%m-%d %H:00:00', recorded_at)",
    }[dialect]


def _norm(row: tuple[Any, ...]) -> tuple[Any, ...]:
    camera, hour, total, samples, counted, avg, low, high = row
    if isinstance(hour, str):
        hour = datetime.fromisoformat(hour)

    def whole(v: Any) -> Any:
        return None if v is None else int(v)

    return (
        camera,
        hour,
        whole(total),
        int(samples),
        int(counted),
        None if avg is None else round(float(avg), 3),
        whole(low),
        whole(high),
    )


def _expected_and_found(pair: Pair) -> tuple[list[Any], list[Any]]:
    hour = _hour_sql(pair.target_dialect)
    expected = query(
        pair.target,
        f"SELECT camera_id, {hour} AS h, SUM(count), COUNT(*), COUNT(count), AVG(count), "
        "MIN(count), MAX(count) FROM analytics GROUP BY camera_id, h",
    )
    found = query(
        pair.target,
        "SELECT camera_id, hour_start, total_count, samples, counted, avg_count, low, high "
        "FROM hourly_counts",
    )

    def order(r: tuple[Any, ...]) -> tuple[Any, ...]:
        return (r[0] is not None, r[0] or 0, r[1])

    return sorted(map(_norm, expected), key=order), sorted(map(_norm, found), key=order)


BIG = 2**31 - 1
T0 = datetime(2024, 3, 4, 8, 0)
READINGS = [
    (1, 1, BIG, T0 + timedelta(minutes=1)),
    (2, 1, BIG, T0 + timedelta(minutes=2)),
    (3, 1, BIG, T0 + timedelta(minutes=3)),
    (4, 1, None, T0 + timedelta(minutes=4)),
    (5, None, 4, T0 + timedelta(minutes=5)),
    (6, 2, 1, T0 + timedelta(minutes=6)),
    (7, None, 3, T0 + timedelta(minutes=7)),
    (8, 2, 2, T0 + timedelta(minutes=8)),
    (9, 3, None, T0 + timedelta(minutes=9)),
    (10, 1, 1, T0 + timedelta(minutes=70)),
    (11, None, None, T0 + timedelta(minutes=11)),
    (12, 2, 2, T0 + timedelta(minutes=12)),
]
AGG_PAIRS = [(MY, PG), (PG, PG), (LITE, PG), (PG, MY)]


@pytest.mark.parametrize("dialects", AGG_PAIRS, ids=pair_id)
def test_aggregate_figures_equal_group_by_with_nulls_big_sums_and_pages(
    dialects: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NULL cameras form one group, NULL counts count in count(*) only, three int32 maxima
    sum past int32, the average of 1 and 2 is 1.5; groups spread over read pages of 2 rows
    (rows of camera 1 and of camera NULL are on several pages) come out as one row each."""
    monkeypatch.setattr(aggregate, "READ_ROWS", 2, raising=False)
    with make_pair(dialects, tmp_path) as pair:
        _analytics(pair, READINGS)

        report = pair.copy(HOURLY)

        expected, found = _expected_and_found(pair)
        assert found == expected
        assert len(found) == 5
        first = next(r for r in found if r[0] == 1 and r[1] == T0)
        assert first[2:6] == (3 * BIG, 4, 3, round(float(BIG), 3))
        nulls = next(r for r in found if r[0] is None)
        assert nulls[2:6] == (7, 3, 2, 3.5)
        two = next(r for r in found if r[0] == 2)
        assert two[5] == round(5 / 3, 3)
        assert [(a.groups, a.rows_read) for a in report.aggregates] == [(5, 12)]


@pytest.mark.parametrize("dialects", [(MY, PG), (PG, MY), (LITE, PG), (PG, LITE)], ids=pair_id)
def test_aggregate_of_an_empty_table_then_of_rows_keeps_the_column_types(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """The first run over no rows made the summary's group columns TEXT and its counts
    DOUBLE: the next run's camera 1 and hour came back as '1' and a string."""
    with make_pair(dialects, tmp_path) as pair:
        _analytics(pair, [])

        report = pair.copy(HOURLY)

        assert [(a.groups, a.rows_read) for a in report.aggregates] == [(0, 0)]
        assert query(pair.target, "SELECT COUNT(*) FROM hourly_counts") == [(0,)]
        engine = engine_for(pair.target)
        try:
            columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("hourly_counts")}
        finally:
            engine.dispose()
        assert isinstance(columns["camera_id"], sat.Integer)
        assert isinstance(columns["hour_start"], sat.DateTime)
        assert isinstance(columns["samples"], sat.Integer)
        assert isinstance(columns["total_count"], sat.Integer)

        pair.source_sql(
            "INSERT INTO analytics VALUES (:a, :b, :c, :d)",
            [dict(zip("abcd", r, strict=True)) for r in READINGS],
        )
        pair.copy(HOURLY, restart=True)

        expected, found = _expected_and_found(pair)
        assert found == expected
        assert next(r[:3] for r in found if r[0] == 1) == (1, T0, 3 * BIG)


def test_aggregate_reads_the_summarised_table_in_bounded_memory(tmp_path: Path) -> None:
    """The summary read its table through connectorx's arrow_stream, which reads the whole
    result ahead: memory grew with the table (here 250 MB of group keys), not the groups."""
    with make_pair((PG, PG), tmp_path) as pair:
        pair.target_sql(
            "CREATE TABLE visits (id INTEGER PRIMARY KEY, place TEXT NOT NULL, n INTEGER)"
        )
        pair.target_sql(
            "INSERT INTO visits SELECT n, repeat(chr(97 + n % 5), 1000), n % 7 "
            "FROM generate_series(1, 250000) AS s(n)"
        )
        script = textwrap.dedent(
            f"""
            import json
            from pathlib import Path
            from ferry.data import aggregate
            from ferry.data.spec import AggregateSpec
            from ferry.db.target import open_url
            target = open_url("t", {pair.target!r})
            spec = AggregateSpec.model_validate(
                {{"from": "visits", "group_by": {{"place": "place"}},
                  "measures": {{"visits": "count(*)", "total": "sum(n)"}}}}
            )
            def peak():  # this process's own (ru_maxrss keeps the forking runner's)
                status = Path("/proc/self/status").read_text().splitlines()
                return next(int(s.split()[1]) for s in status if s.startswith("VmHWM:"))
            aggregate.READ_ROWS = 8192  # pages of 8 MB here: what they hold stays small
            with target.connect() as conn:
                pass
            before = peak()
            report = aggregate.build(target, "by_place", spec, key="aggregates.by_place")
            after = peak()
            print(json.dumps([before, after, report.groups, report.rows_read]))
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        before, after, groups, rows_read = json.loads(done.stdout)
        assert (groups, rows_read) == (5, 250_000)
        grown = (after - before) * 1024
        assert grown < 120 * 2**20, f"peak memory grew by {grown / 2**20:.0f} MiB"
        got = query(pair.target, "SELECT visits, total FROM by_place ORDER BY place")
        want = query(
            pair.target, "SELECT COUNT(*), SUM(n) FROM visits GROUP BY place ORDER BY place"
        )
        assert got == want


# ------------------------------------------------------- stream: the target refuses rows


@pytest.mark.parametrize("dialects", [(MY, PG), (PG, MY), (LITE, PG)], ids=pair_id)
def test_stream_rows_the_target_refuses_are_rejects_and_the_limit_fails_the_run(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """A CHECK on the target refuses every row whose v is a multiple of 7: each lands in
    ferry_rejects once with the database's error; past `max_errors` the run stops, is
    recorded failed and keeps its flushes' checkpoints; with the limit raised the same job
    resumes and ends with exactly the accepted rows."""
    rows = 600
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql("CREATE TABLE nums (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        pair.source_sql(
            f"INSERT INTO nums SELECT n, n * 3 FROM {_series(pair.source_dialect, rows)}"
        )
        pair.target_sql(
            "CREATE TABLE nums (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, "
            "CONSTRAINT not_seven CHECK (v % 7 <> 0))"
        )
        job = "load: {{strategy: stream, batch_size: 50, flush_interval: 30}}\n" + (
            "errors: {{max_errors: {limit}, max_error_rate: 1}}\n"
        )

        with pytest.raises(DataError, match="max_errors"):
            pair.copy(job.format(limit=20))

        engine = engine_for(pair.target)
        try:
            with engine.connect() as conn:
                (run,) = [r for r in read_runs(conn) if r.type == "data"]
        finally:
            engine.dispose()
        assert run.status == "failed"
        flushes = query(
            pair.target,
            "SELECT chunk, status, rows_written, rows_rejected FROM migration_checkpoints "
            "WHERE table_name = 'nums' AND chunk >= 0 ORDER BY chunk",
        )
        assert flushes[0][:2] == (0, "pending")
        done = [f for f in flushes if f[0] > 0]
        assert done
        assert all(f[1] == "done" for f in done)
        loaded = query(pair.target, "SELECT COUNT(*) FROM nums")[0][0]
        assert loaded == sum(f[2] for f in done)
        assert len(pair.rejects()) == sum(f[3] for f in done) > 20

        report = pair.copy(job.format(limit=1000))

        refused = [i for i in range(1, rows + 1) if (i * 3) % 7 == 0]
        accepted = [(i, i * 3) for i in range(1, rows + 1) if (i * 3) % 7]
        assert pair.rows("nums") == accepted
        rejects = pair.rejects()
        assert sorted(r[1][0] for r in rejects) == refused  # each once, over both runs
        assert all(r[4]["v"] % 7 == 0 for r in rejects)
        assert counts_of(report)["nums"] == Counts(
            read=rows, written=len(accepted), rejected=len(refused)
        )


# ------------------------------------- aggregates over an incremental stream, with filters


@pytest.mark.parametrize("dialects", [(MY, PG), (PG, MY), (LITE, PG), (PG, PG)], ids=pair_id)
def test_aggregate_of_an_incremental_stream_is_recomputed_not_added_to(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """Second increment: changed rows are upserted and the summary is rebuilt from the
    target's rows (no group counted twice); rows a rule removes or rejects are in no group."""
    with make_pair(dialects, tmp_path) as pair:
        ts = timestamp_type(pair.source_dialect)
        pair.source_sql(
            "CREATE TABLE readings (id INTEGER PRIMARY KEY, camera_id INTEGER NOT NULL, "
            f"count INTEGER, kind VARCHAR(2) NOT NULL, updated_at {ts} NOT NULL)"
        )
        t0 = datetime(2024, 5, 1, 12, 0)
        first = [
            {
                "i": i,
                "c": i % 3,
                "n": None if i % 10 == 0 else i,
                "k": "X" if i % 17 == 0 else "A",
                "t": t0 + timedelta(seconds=i),
            }
            for i in range(1, 61)
        ]
        pair.source_sql("INSERT INTO readings VALUES (:i, :c, :n, :k, :t)", first)
        job = """
            tables:
              readings:
                mode: incremental
                cursor: updated_at
                nulls: {count: remove}
                values: {kind: {map: {A: a}, unmapped: reject}}
            aggregates:
              per_camera:
                from: readings
                group_by: {camera_id: camera_id}
                measures: {n: "count(*)", total: "sum(count)", average: "avg(count)"}
            load: {strategy: stream, batch_size: 8, flush_interval: 30}
            errors: {max_error_rate: 1}
            """

        pair.copy(job)
        later = t0 + timedelta(hours=1)
        pair.source_sql(
            "UPDATE readings SET count = count + 1000, updated_at = :t WHERE id % 4 = 0",
            [{"t": later}],
        )
        pair.source_sql(
            "INSERT INTO readings VALUES (:i, :c, :n, 'A', :t)",
            [{"i": i, "c": i % 3, "n": i, "t": later} for i in range(61, 71)],
        )
        report = pair.copy(job)

        loaded = query(
            pair.source,
            "SELECT id, camera_id, count FROM readings WHERE count IS NOT NULL AND kind = 'A' "
            "ORDER BY id",
        )
        assert query(pair.target, "SELECT id, camera_id, count FROM readings ORDER BY id") == loaded
        want = query(
            pair.source,
            "SELECT camera_id, COUNT(*), SUM(count), AVG(count) FROM readings "
            "WHERE count IS NOT NULL AND kind = 'A' GROUP BY camera_id ORDER BY camera_id",
        )
        got = query(
            pair.target, "SELECT camera_id, n, total, average FROM per_camera ORDER BY camera_id"
        )
        assert [(c, int(n), int(t), round(float(a), 3)) for c, n, t, a in got] == [
            (c, int(n), int(t), round(float(a), 3)) for c, n, t, a in want
        ]
        assert report.aggregates[0].rows_read == len(loaded)


def test_stream_pages_of_a_key_equal_under_the_collation_lose_no_row(tmp_path: Path) -> None:
    """MariaDB's default collation holds 'a' and 'A' equal: a page ending among them must
    not start the next one after 'A' while rows 'a' are left (Arrow sees them apart)."""
    with make_pair((MY, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, name VARCHAR(10) NOT NULL)")
        names = ["a", "A", "b", "B"]
        rows = [{"i": i, "n": names[(i * 7) % 4] if i <= 40 else f"z{i}"} for i in range(1, 61)]
        pair.source_sql("INSERT INTO tags VALUES (:i, :n)", rows)
        path = tmp_path / "job.yaml"
        spec = parse_job(
            pair.spec_text("tables: {tags: {key: [name]}}\nload: {strategy: stream}\n"), path=path
        )
        source = open_url("source", pair.source)
        target = open_url("target", pair.target)
        try:
            (plan,) = plan_tables(spec, source.engine, target.engine, file=path)
            reader = BoundedReader(source, plan, KeyRange(0, None, None), read_rows=6, capacity=2)
            with reader:
                flushes = list(reader.buffers(7, 60.0))
        finally:
            source.dispose()
            target.dispose()
        ids = sorted(i for t in flushes for i in t["id"].to_pylist())
        assert ids == list(range(1, 61))


# ------------------------------------------------- aggregates into the example's own table

EXAMPLE_TABLE = (
    "CREATE TABLE hourly_counts (camera_id INTEGER NOT NULL, hour_start TIMESTAMP NOT NULL, "
    "total_count BIGINT NOT NULL, samples INTEGER NOT NULL, PRIMARY KEY (camera_id, hour_start))"
)
EXAMPLE_JOB = """
tables:
  analytics:
    columns: {id: id, camera_id: camera_id, count: count, timestamp: recorded_at}
aggregates:
  hourly_counts:
    from: analytics
    group_by: {camera_id: camera_id, hour_start: "DATE_TRUNC('hour', recorded_at)"}
    measures: {total_count: "sum(count)", samples: "count(*)"}
"""


NARROW_TABLE = (
    "CREATE TABLE hourly_counts (camera_id INTEGER, hour_start TIMESTAMP NOT NULL, "
    "total_count INTEGER, samples INTEGER NOT NULL)"
)


@pytest.mark.parametrize(
    ("dialects", "table", "column"),
    [
        ((MY, PG), EXAMPLE_TABLE, "camera_id"),
        ((PG, MY), EXAMPLE_TABLE, "camera_id"),
        ((PG, PG), NARROW_TABLE, "total_count"),
    ],
    ids=["mariadb-to-pg-null-key", "pg-to-mariadb-null-key", "pg-to-pg-int32-sum"],
)
def test_aggregate_a_table_cannot_hold_is_a_typed_error_naming_it(
    dialects: tuple[str, str], table: str, column: str, tmp_path: Path
) -> None:
    """The example's hourly_counts has camera_id NOT NULL; readings of no camera make a NULL
    group the table refuses. The run used to end on the driver's raw IntegrityError: it
    must name the aggregate and the column, leave the summary as it was, and record the
    run failed. So must three int32 maxima summed into an INTEGER column."""
    from ferry.errors import FerryError

    with make_pair(dialects, tmp_path) as pair:
        _analytics(pair, READINGS)
        pair.target_sql(table)
        pair.target_sql("INSERT INTO hourly_counts VALUES (9, '2020-01-01 00:00:00', 1, 1)")

        with pytest.raises(FerryError) as caught:
            pair.copy(EXAMPLE_JOB)

        message = str(caught.value)
        assert "hourly_counts" in message
        assert f"`{column}`" in message
        assert query(pair.target, "SELECT camera_id, total_count FROM hourly_counts") == [(9, 1)]
        engine = engine_for(pair.target)
        try:
            with engine.connect() as conn:
                (run,) = [r for r in read_runs(conn) if r.type == "data"]
        finally:
            engine.dispose()
        assert run.status == "failed"


def test_keyless_stream_killed_after_its_flush_committed_copies_nothing_again(
    tmp_path: Path,
) -> None:
    """A keyless table streams as one flush (all or nothing). A kill after that flush's
    commit and before the stream's own checkpoint is marked done leaves chunk 0 pending:
    the rerun has no key to resume after and read the whole table again."""
    with make_pair((PG, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE notes (n INTEGER, body VARCHAR(20))")
        pair.source_sql(
            "INSERT INTO notes VALUES (:n, :b)", [{"n": i, "b": f"note {i}"} for i in range(40)]
        )
        job = "load: {strategy: stream, batch_size: 10}\n"
        pair.copy(job)
        assert query(pair.target, "SELECT COUNT(*) FROM notes") == [(40,)]
        # What the kill leaves: the flush's rows and checkpoint, the stream not marked done.
        pair.target_sql(
            "UPDATE migration_checkpoints SET status = 'pending' "
            "WHERE table_name = 'notes' AND chunk = 0"
        )

        pair.copy(job)

        assert query(pair.target, "SELECT COUNT(*) FROM notes") == [(40,)]
