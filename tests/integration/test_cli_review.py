# ruff: noqa: F811
"""The CLI shell of the data pipeline, run as a real `python -m ferry` process: signals mid-copy
(SIGINT and SIGTERM alike: run recorded, what was set aside restored, a rerun resumes),
`sync --follow` stopped by a signal, and passwords kept out of every message."""

from __future__ import annotations

import json
import os
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
from sqlalchemy.engine import make_url

from tests.conftest import engine_for

# make_db is test_copy_resume's fixture: its parameters name it again.
from tests.integration.test_copy_resume import make_db  # noqa: F401

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ROWS = 200_000
PASSWORD = "S3cretPW-review"  # PostgreSQL on loopback trusts: any password connects


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)


def _with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def _sql(url: str, *statements: str) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _rows(url: str, sql: str) -> list[Any]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).all())
    finally:
        engine.dispose()


def _ferry(*args: str) -> list[str]:
    return [sys.executable, "-m", "ferry", *args]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), **extra}


def _items_pair(make_db: Callable[[str], str], tmp_path: Path) -> tuple[str, str, Path]:
    """PostgreSQL source with ROWS items; a target table with a secondary index the copy
    sets aside; a job naming both by `${ENV}` URLs that carry a password."""
    source, target = make_db("postgresql"), make_db("postgresql")
    _sql(
        source,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, v VARCHAR(40), n INTEGER)",
        f"INSERT INTO items SELECT g, 'v' || g, g % 100 FROM generate_series(1, {ROWS}) g",
    )
    _sql(
        target,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, v VARCHAR(40), n INTEGER)",
        "CREATE INDEX items_n ON items (n)",
    )
    job = tmp_path / "job.yaml"
    job.write_text(
        "source: ${REVIEW_SOURCE}\ntarget: ${REVIEW_TARGET}\ntables:\n  items: {}\n"
        "load: {batch_size: 5000, workers: 2}\n",
        encoding="utf-8",
    )
    return source, target, job


def _done_chunks(target: str) -> int:
    try:
        rows = _rows(
            target,
            "SELECT COUNT(*) FROM migration_checkpoints WHERE status = 'done' AND chunk >= 0",
        )
    except sa_exc.DBAPIError:  # not created yet
        return 0
    return int(rows[0][0])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_signal_mid_copy_records_the_run_restores_indexes_and_a_rerun_resumes(
    signum: signal.Signals,
    tmp_path: Path,
    make_db: Callable[[str], str],
    children: list[subprocess.Popen[str]],
) -> None:
    source, target, job = _items_pair(make_db, tmp_path)
    env = _env(REVIEW_SOURCE=_with_password(source), REVIEW_TARGET=_with_password(target))
    child = subprocess.Popen(
        _ferry("copy", str(job), "--json"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children.append(child)
    deadline = time.monotonic() + 60
    while _done_chunks(target) < 3:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "no chunk was checkpointed within 60 s"
        time.sleep(0.01)
    child.send_signal(signum)
    stdout, stderr = child.communicate(timeout=60)

    assert child.returncode == 128 + signum, stderr
    assert stdout == ""
    assert "Traceback" not in stderr
    assert f"interrupted by {signum.name}" in stderr
    assert "run the same command again" in stderr
    runs = _rows(target, "SELECT status, error FROM ferry_runs")
    assert [(r.status, r.error) for r in runs] == [("failed", f"interrupted by {signum.name}")]
    assert _rows(target, "SELECT name FROM ferry_deferred") == []
    indexes = _rows(target, "SELECT indexname FROM pg_indexes WHERE tablename = 'items'")
    assert sorted(r[0] for r in indexes) == ["items_n", "items_pkey"]
    done = _done_chunks(target)
    assert 0 < done < ROWS // 5000, "the signal came after the copy had finished; raise ROWS"

    rerun = subprocess.run(
        _ferry("copy", str(job), "--json"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["status"] == "completed"
    (items,) = report["tables"]
    assert (items["read"], items["written"], items["chunks_resumed"]) == (ROWS, ROWS, done)
    agg = "SELECT COUNT(*), SUM(id), COUNT(DISTINCT id) FROM items"
    assert _rows(target, agg) == _rows(source, agg)
    assert PASSWORD not in rerun.stdout + rerun.stderr + stdout + stderr
    records = _rows(target, "SELECT summary, error FROM ferry_runs")
    assert PASSWORD not in repr(records)


def test_password_from_env_never_printed_in_a_job_spec_error(tmp_path: Path) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/nowhere"
    job = tmp_path / "job.yaml"
    # `target:` takes a URL, not a mapping: the error quotes the value it refused.
    job.write_text(
        "source: sqlite:///a.db\ntarget:\n  url: ${REVIEW_TARGET}\ntables:\n  items: {}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        _ferry("copy", str(job)),
        cwd=tmp_path,
        env=_env(REVIEW_TARGET=url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: ")
    assert "key `target`" in done.stderr
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stderr
    assert "postgres:***@127.0.0.1" in done.stderr


def test_json_report_alone_on_stdout_and_progress_events_on_stderr(
    tmp_path: Path, make_db: Callable[[str], str]
) -> None:
    source, target, job = _items_pair(make_db, tmp_path)
    env = _env(REVIEW_SOURCE=_with_password(source), REVIEW_TARGET=_with_password(target))
    done = subprocess.run(
        _ferry("copy", str(job), "--json", "--restart"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    # Without --json, stderr off a terminal carries one JSON progress event a line.
    plain = subprocess.run(
        _ferry("copy", str(job), "--restart"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode == 0, plain.stderr
    events = [json.loads(line) for line in plain.stderr.splitlines()]
    assert events
    assert [e["event"] for e in events][-1] == "finished"
    assert {e["event"] for e in events[:-1]} == {"progress"}
    last = events[-2]
    assert last["chunks_done"] == last["chunks_total"]
    assert last["read"] == ROWS
    assert events[-1]["status"] == "completed"
    assert "read" in plain.stdout
    assert "written" in plain.stdout
    for output in (done.stdout, done.stderr, plain.stdout, plain.stderr):
        assert PASSWORD not in output


DELTA_JOB = "source: {source}\ntarget: {target}\ntables:\n  accounts: {{mode: delta}}\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_sync_follow_stops_cleanly_on_a_signal(
    signum: signal.Signals,
    tmp_path: Path,
    make_db: Callable[[str], str],
    children: list[subprocess.Popen[str]],
) -> None:
    source, target = make_db("postgresql"), make_db("postgresql")
    _sql(source, "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name VARCHAR(40))")
    _sql(source, "INSERT INTO accounts VALUES (1, 'alice'), (2, 'bob')")
    job = tmp_path / "job.yaml"
    job.write_text(
        DELTA_JOB.format(source=json.dumps(source), target=json.dumps(target)), encoding="utf-8"
    )
    copied = subprocess.run(
        _ferry("copy", str(job)), cwd=tmp_path, env=_env(), capture_output=True, timeout=120
    )
    assert copied.returncode == 0, copied.stderr
    child = subprocess.Popen(
        _ferry("sync", str(job), "--follow", "--interval", "0.1", "--json"),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children.append(child)
    _sql(source, "INSERT INTO accounts VALUES (3, 'carol')", "DELETE FROM accounts WHERE id = 1")
    deadline = time.monotonic() + 30
    # Replayed and consumed: a signal between the target's commit and the log's cleanup
    # would (rightly) report nothing, the entries being replayed again by the next sync.
    while _rows(target, "SELECT id FROM accounts ORDER BY id") != [(2,), (3,)] or _rows(
        source, "SELECT COUNT(*) FROM ferry_delta_log"
    ) != [(0,)]:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "sync --follow did not replay the changes"
        time.sleep(0.05)
    time.sleep(0.2)  # past the round's report, taken right after the cleanup commits
    child.send_signal(signum)
    stdout, stderr = child.communicate(timeout=30)

    assert child.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert f"sync stopped by {signum.name}" in stderr
    report = json.loads(stdout)
    assert (report["applied_entries"], report["upserted"], report["deleted"]) == (2, 1, 1)
    assert _rows(source, "SELECT COUNT(*) FROM ferry_delta_log") == [(0,)]


@pytest.mark.parametrize("command", ["copy", "verify"])
def test_an_unreachable_database_is_named_as_source_or_target(tmp_path: Path, command: str) -> None:
    """Both reflected first and failed with the driver's bare words, naming neither."""
    job = tmp_path / "job.yaml"
    job.write_text(
        f"source: sqlite:///{tmp_path / 'a.db'}\n"
        "target: postgresql+psycopg://postgres@127.0.0.1:5432/ferry_no_such_db\ntables: {}\n",
        encoding="utf-8",
    )
    (tmp_path / "a.db").touch()
    done = subprocess.run(
        _ferry(command, str(job)),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert "cannot connect to target `target`" in done.stderr
    assert "ferry_no_such_db" in done.stderr
    assert "hint: create the database first" in done.stderr
