"""`ferry copy` killed with SIGKILL mid-run, then run again: it ends with exactly the source's
rows, no duplicates and no gaps, and each rejected row recorded once.

A chunk's rows, its rejects and its checkpoint commit in one target transaction, so at any
moment the target holds exactly the rows of the chunks marked done. The tests kill a real
`python -m ferry copy` process once a given share of the chunks is checkpointed, check that
invariant on what the kill left behind, run the same command again and compare the target
with the source.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from tests.conftest import engine_for, new_database

pytestmark = pytest.mark.integration

ROWS = 200_000
BATCH = 5_000
PARENTS = 20
# Rows the job's rules reject: an invalid email, or a code the value map does not name.
BAD_EMAIL_EVERY = 997
UNMAPPED_CODE_EVERY = 1_009
REJECTED = sorted(
    n for n in range(1, ROWS + 1) if n % BAD_EMAIL_EVERY == 0 or n % UNMAPPED_CODE_EVERY == 0
)
CODES = {"A": "alpha", "B": "beta", "C": "gamma"}
# De-duplication: people's emails repeat every DEDUPE_KEYS ids (in varying case), so the
# duplicates of a key are spread over chunks far apart.
DEDUPE_KEYS = 23_456
START_TIMEOUT = 60.0
# After the wanted number of chunks is checkpointed, the kill waits a random moment up to this
# long (about one chunk's time), so it lands anywhere in the other worker's chunk.
KILL_JITTER = 0.08


def _cat(dialect: str, *parts: str) -> str:
    """String concatenation: MariaDB's || is OR, SQLite 3.40 has no CONCAT()."""
    if dialect == "mysql":
        return f"CONCAT({', '.join(parts)})"
    return " || ".join(f"({part})" for part in parts)  # || binds tighter than % in SQLite


def _series(dialect: str, count: int) -> str:
    """A derived table with one column `n` holding 1..count, made by the database itself."""
    if dialect == "mysql":
        return f"(SELECT seq AS n FROM seq_1_to_{count}) AS s"
    if dialect == "postgresql":
        return f"generate_series(1, {count}) AS s(n)"
    return (
        f"(WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {count}) "
        "SELECT n FROM g) AS s"
    )


def _execute(url: str, *statements: str) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def _fill_items(dialect: str, url: str) -> None:
    """`parents` (PARENTS rows) and `items` (ROWS rows, each referring to a parent)."""
    code = (
        f"CASE WHEN n % {UNMAPPED_CODE_EVERY} = 0 THEN 'X' WHEN n % 3 = 0 THEN 'A' "
        "WHEN n % 3 = 1 THEN 'B' ELSE 'C' END"
    )
    bad = _cat(dialect, "'bad'", "n")
    good = _cat(dialect, "'u'", "n", "'@example.org'")
    email = f"CASE WHEN n % {BAD_EMAIL_EVERY} = 0 THEN {bad} ELSE {good} END"
    name = _cat(dialect, "'parent '", "n")
    _execute(
        url,
        "CREATE TABLE parents (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL)",
        f"INSERT INTO parents (id, name) SELECT n, {name} FROM {_series(dialect, PARENTS)}",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, "
        "code VARCHAR(1) NOT NULL, email VARCHAR(100), amount INTEGER NOT NULL, "
        "FOREIGN KEY (parent_id) REFERENCES parents (id))",
        "INSERT INTO items (id, parent_id, code, email, amount) "
        f"SELECT n, n % {PARENTS} + 1, {code}, {email}, n % 1000 FROM {_series(dialect, ROWS)}",
    )


def _fill_people(dialect: str, url: str) -> None:
    """`people`: ROWS rows whose email repeats every DEDUPE_KEYS ids, in upper or lower case."""
    email = _cat(
        dialect,
        "CASE WHEN n % 2 = 0 THEN 'User' ELSE 'user' END",
        f"n % {DEDUPE_KEYS}",
        "'@example.org'",
    )
    _execute(
        url,
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(100) NOT NULL)",
        f"INSERT INTO people (id, email) SELECT n, {email} FROM {_series(dialect, ROWS)}",
    )


def _write_job(path: Path, source: str, target: str, tables: str) -> Path:
    path.write_text(
        f"source: {json.dumps(source)}\n"
        f"target: {json.dumps(target)}\n"
        f"tables:\n{tables}"
        f"load:\n  batch_size: {BATCH}\n  workers: 2\n",
        encoding="utf-8",
    )
    return path


ITEMS_JOB = """\
  items:
    values:
      code: {map: {A: alpha, B: beta, C: gamma}, unmapped: reject}
    validate: {email: email}
"""


def _copy_command(job: Path) -> list[str]:
    return [sys.executable, "-m", "ferry", "copy", str(job), "--json"]


@pytest.fixture
def make_db(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Creates databases on demand; drops them all at the end of the test."""
    drops: list[Callable[[], None]] = []

    def make(dialect: str) -> str:
        url, drop = new_database(dialect, tmp_path)
        drops.append(drop)
        return url

    yield make
    errors = []
    for drop in reversed(drops):
        try:
            drop()
        except Exception as error:  # drop the others anyway
            errors.append(error)
    if errors:
        raise errors[0]


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)


def _chunk_states(conn: Any, table: str) -> list[Any]:
    return list(
        conn.execute(
            text(
                "SELECT chunk, status, rows_written, rows_rejected FROM migration_checkpoints "
                "WHERE table_name = :t AND chunk >= 0"
            ),
            {"t": table},
        ).all()
    )


def _kill_when_done(
    job: Path,
    target: str,
    table: str,
    fraction: float,
    tmp_path: Path,
    children: list[subprocess.Popen[bytes]],
) -> int:
    """Start the copy, SIGKILL it a random moment after `fraction` of `table`'s chunks are
    done (0: after its chunk plan is saved); return the number of chunks done at the kill."""
    with (tmp_path / "killed.out").open("wb") as out, (tmp_path / "killed.err").open("wb") as err:
        child = subprocess.Popen(_copy_command(job), cwd=tmp_path, stdout=out, stderr=err)
    children.append(child)
    engine = engine_for(target)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if child.poll() is not None:
                stderr = (tmp_path / "killed.err").read_text(encoding="utf-8", errors="replace")
                pytest.fail(f"the copy ended (exit {child.returncode}) before the kill: {stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"no chunk of `{table}` was checkpointed within {START_TIMEOUT} s")
            try:
                with engine.connect() as conn:
                    chunks = _chunk_states(conn, table)
            except sa_exc.DBAPIError:  # the checkpoint table is not there yet
                chunks = []
            if chunks:
                done = sum(1 for c in chunks if c.status == "done")
                if done >= math.ceil(fraction * len(chunks)):
                    time.sleep(random.uniform(0.0, KILL_JITTER))
                    os.kill(child.pid, signal.SIGKILL)
                    break
            time.sleep(0.005)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL, (
            f"the copy ended (exit {child.returncode}) before SIGKILL reached it; raise ROWS"
        )
        with engine.connect() as conn:
            chunks = _chunk_states(conn, table)
    finally:
        engine.dispose()
    done_chunks = [c for c in chunks if c.status == "done"]
    assert len(done_chunks) < len(chunks), "every chunk was done at the kill; raise ROWS"
    return len(done_chunks)


def _assert_partial_state_consistent(target: str, table: str) -> None:
    """What a kill leaves: the table holds exactly the rows of the chunks marked done, and
    ferry_rejects exactly their rejects."""
    chunks = _rows(
        target,
        "SELECT status, rows_written, rows_rejected FROM migration_checkpoints "
        "WHERE table_name = :t AND chunk >= 0",
        t=table,
    )
    done = [c for c in chunks if c.status == "done"]
    assert {c.status for c in chunks} <= {"done", "pending"}
    loaded = _rows(target, f"SELECT COUNT(*) FROM {table}")[0][0]
    rejects = _rows(target, "SELECT COUNT(*) FROM ferry_rejects WHERE table_name = :t", t=table)
    rejected = rejects[0][0]
    assert loaded == sum(c.rows_written for c in done), (
        f"after the kill `{table}` holds {loaded} rows, but its {len(done)} done chunks "
        f"wrote {sum(c.rows_written for c in done)}"
    )
    assert rejected == sum(c.rows_rejected for c in done)


def _run_to_completion(job: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _copy_command(job), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


def _table_report(report: dict[str, Any], table: str) -> dict[str, Any]:
    found = [t for t in report["tables"] if t["table"] == table]
    assert len(found) == 1, report
    return found[0]


def _assert_all_chunks_done(target: str, table: str) -> int:
    statuses = _rows(
        target,
        "SELECT status, COUNT(*) FROM migration_checkpoints "
        "WHERE table_name = :t AND chunk >= 0 GROUP BY status",
        t=table,
    )
    assert [s[0] for s in statuses] == ["done"]
    # Chunks follow the source's row estimate (its statistics) for a table this size.
    planned = int(statuses[0][1])
    assert math.ceil(ROWS / BATCH) / 2 <= planned <= math.ceil(ROWS / BATCH) * 2
    return planned


def _check_items_copy(
    source: str, target: str, done_at_kill: int, rerun: subprocess.CompletedProcess[str]
) -> None:
    rejected = set(REJECTED)
    kept = f"NOT (id % {BAD_EMAIL_EVERY} = 0 OR id % {UNMAPPED_CODE_EVERY} = 0)"
    aggregate = "SELECT COUNT(*), SUM(id), COUNT(DISTINCT id), SUM(amount) FROM items"

    # The rows: the source's, minus the rejected ones, each exactly once.
    expected = tuple(_rows(source, f"{aggregate} WHERE {kept}")[0])
    assert expected[0] == ROWS - len(rejected)
    assert tuple(_rows(target, aggregate)[0]) == expected
    dupes = _rows(target, "SELECT id FROM items GROUP BY id HAVING COUNT(*) > 1")
    assert dupes == []
    source_codes = dict(
        _rows(source, f"SELECT code, COUNT(*) FROM items WHERE {kept} GROUP BY code")
    )
    target_codes = dict(_rows(target, "SELECT code, COUNT(*) FROM items GROUP BY code"))
    assert target_codes == {CODES[c]: n for c, n in source_codes.items()}
    assert _rows(target, "SELECT COUNT(*), SUM(id) FROM parents")[0] == (
        PARENTS,
        PARENTS * (PARENTS + 1) // 2,
    )

    # The rejects: each rejected row once, for the rule that caught it.
    found = _rows(target, "SELECT source_key, rule FROM ferry_rejects WHERE table_name = 'items'")
    keys = sorted(json.loads(row.source_key)[0] for row in found)
    assert keys == REJECTED, "ferry_rejects does not hold each rejected row exactly once"
    rules = {json.loads(row.source_key)[0]: row.rule for row in found}
    assert {k for k, rule in rules.items() if rule == "value_map:code"} == {
        n for n in REJECTED if n % UNMAPPED_CODE_EVERY == 0
    }
    assert {k for k, rule in rules.items() if rule == "validate:email:email"} == {
        n for n in REJECTED if n % UNMAPPED_CODE_EVERY != 0
    }
    chunks = _assert_all_chunks_done(target, "items")

    # The second run finishes and its report balances over both runs.
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads(rerun.stdout)
    assert report["status"] == "completed"
    assert report["balanced"] is True
    items = _table_report(report, "items")
    assert (items["read"], items["written"], items["rejected"]) == (
        ROWS,
        ROWS - len(rejected),
        len(rejected),
    )
    assert (items["filtered"], items["deduped"]) == (0, 0)
    assert (items["chunks"], items["chunks_resumed"]) == (chunks, done_at_kill)
    parents = _table_report(report, "parents")
    assert (parents["read"], parents["written"], parents["rejected"]) == (PARENTS, PARENTS, 0)


PAIRS = [
    pytest.param("mysql", "postgresql", 0.0, id="mariadb-to-pg-plan-saved"),
    pytest.param("mysql", "postgresql", 0.05, id="mariadb-to-pg-first-chunks"),
    pytest.param("mysql", "postgresql", 0.5, id="mariadb-to-pg-half"),
    pytest.param("sqlite", "postgresql", 0.3, id="sqlite-to-pg"),
    pytest.param("postgresql", "mysql", 0.3, id="pg-to-mariadb"),
]


@pytest.mark.parametrize(("source_dialect", "target_dialect", "fraction"), PAIRS)
def test_copy_killed_mid_run_resumes_without_duplicates_or_gaps(
    source_dialect: str,
    target_dialect: str,
    fraction: float,
    tmp_path: Path,
    make_db: Callable[[str], str],
    children: list[subprocess.Popen[bytes]],
) -> None:
    source = make_db(source_dialect)
    target = make_db(target_dialect)
    _fill_items(source_dialect, source)
    job = _write_job(tmp_path / "job.yaml", source, target, ITEMS_JOB)

    done_at_kill = _kill_when_done(job, target, "items", fraction, tmp_path, children)
    _assert_partial_state_consistent(target, "items")

    rerun = _run_to_completion(job, tmp_path)
    _check_items_copy(source, target, done_at_kill, rerun)


def _expected_people(keep: str) -> dict[int, str]:
    """id -> email of the rows a whole-table de-duplication keeps."""
    kept: dict[str, tuple[int, str]] = {}
    for n in range(1, ROWS + 1):
        email = f"{'User' if n % 2 == 0 else 'user'}{n % DEDUPE_KEYS}@example.org"
        key = email.lower()
        if keep == "last" or key not in kept:
            kept[key] = (n, email)
    return dict(kept.values())


@pytest.mark.parametrize("keep", ["first", "last"])
def test_dedupe_killed_mid_run_reseeds_from_the_target(
    keep: str,
    tmp_path: Path,
    make_db: Callable[[str], str],
    children: list[subprocess.Popen[bytes]],
) -> None:
    source = make_db("sqlite")
    target = make_db("postgresql")
    _fill_people("sqlite", source)
    assert _rows(source, "SELECT COUNT(DISTINCT LOWER(email)) FROM people") == [(DEDUPE_KEYS,)]
    job = _write_job(
        tmp_path / "job.yaml",
        source,
        target,
        f"  people:\n    dedupe: {{on: [email], keep: {keep}}}\n",
    )

    # Kill once the kept rows of a few chunks are in: every later chunk repeats their keys.
    done_at_kill = _kill_when_done(job, target, "people", 0.1, tmp_path, children)
    assert done_at_kill >= 1
    _assert_partial_state_consistent(target, "people")

    rerun = _run_to_completion(job, tmp_path)
    expected = _expected_people(keep)
    assert len(expected) == DEDUPE_KEYS
    dupes = _rows(
        target, "SELECT LOWER(email) FROM people GROUP BY LOWER(email) HAVING COUNT(*) > 1"
    )
    assert dupes == [], f"{len(dupes)} de-duplication keys twice in the target"
    assert dict(_rows(target, "SELECT id, email FROM people")) == expected
    chunks = _assert_all_chunks_done(target, "people")

    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads(rerun.stdout)
    assert report["balanced"] is True
    people = _table_report(report, "people")
    assert (people["read"], people["written"], people["deduped"], people["rejected"]) == (
        ROWS,
        DEDUPE_KEYS,
        ROWS - DEDUPE_KEYS,
        0,
    )
    assert (people["chunks"], people["chunks_resumed"]) == (chunks, done_at_kill)
