"""A source that goes away mid-run: `ferry copy` stops with a clear error naming the source,
the run is recorded as failed, the checkpoint of every finished chunk is kept (the target
holds exactly their rows), and once the source is back the same command finishes the copy
with exactly the source's rows.

The source is PostgreSQL, cut off for real: new connections refused
(`ALLOW_CONNECTIONS false`) and every open one terminated, once a quarter of the chunks are
done.
"""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from tests.conftest import engine_for
from tests.integration.test_copy_resume import (
    ITEMS_JOB,
    START_TIMEOUT,
    _assert_partial_state_consistent,
    _check_items_copy,
    _chunk_states,
    _copy_command,
    _execute,
    _fill_items,
    _rows,
    _run_to_completion,
    _write_job,
    children,  # noqa: F401 (fixture)
    make_db,  # noqa: F401 (fixture)
)

pytestmark = pytest.mark.integration


def _cut_off(source: str, *, allow: bool) -> None:
    """Refuse (or allow again) new connections to the source, then end every open one.
    The ALTER commits before the terminate: in one transaction, a connection opened between
    the terminate and the commit would survive and quietly finish the copy."""
    name = make_url(source).database
    admin = str(make_url(source).set(database="postgres"))
    flag = "true" if allow else "false"
    _execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {flag}')
    if allow:
        return
    # A backend still starting up when the ALTER committed shows its database a moment later.
    for _ in range(5):
        _execute(
            admin,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )
        time.sleep(0.02)


@pytest.mark.parametrize("target_dialect", ["postgresql", "mysql"])
def test_source_lost_mid_run_fails_clearly_and_a_rerun_finishes(
    target_dialect: str,
    tmp_path: Path,
    make_db,  # noqa: F811
    children,  # noqa: F811
) -> None:
    source, target = make_db("postgresql"), make_db(target_dialect)
    _fill_items("postgresql", source)
    job = _write_job(tmp_path / "job.yaml", source, target, ITEMS_JOB)

    with (tmp_path / "lost.out").open("wb") as out, (tmp_path / "lost.err").open("wb") as err:
        child = subprocess.Popen(_copy_command(job), cwd=tmp_path, stdout=out, stderr=err)
    children.append(child)
    engine = engine_for(target)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            assert child.poll() is None, "the copy ended before the source was cut off"
            assert time.monotonic() < deadline, "no chunk of `items` was checkpointed"
            try:
                with engine.connect() as conn:
                    chunks = _chunk_states(conn, "items")
            except sa_exc.DBAPIError:  # the checkpoint table is not there yet
                chunks = []
            done = sum(1 for c in chunks if c.status == "done")
            if chunks and done >= math.ceil(len(chunks) / 4):
                _cut_off(source, allow=False)
                break
            time.sleep(0.005)
        child.wait(timeout=120)
    finally:
        engine.dispose()
    try:
        stderr = (tmp_path / "lost.err").read_text(encoding="utf-8")
        assert child.returncode not in (0, None), stderr
        assert "Traceback" not in stderr, stderr
        assert "source" in stderr, stderr

        # The failure is on record, and what finished is kept, consistent, checkpointed.
        runs = _rows(target, "SELECT status, error FROM ferry_runs")
        assert [r.status for r in runs] == ["failed"]
        assert runs[0].error
        _assert_partial_state_consistent(target, "items")
        states = _rows(
            target,
            "SELECT status FROM migration_checkpoints WHERE table_name = 'items' AND chunk >= 0",
        )
        done_at_loss = sum(1 for s in states if s.status == "done")
        assert done_at_loss >= 1
    finally:
        _cut_off(source, allow=True)

    rerun = _run_to_completion(job, tmp_path)
    _check_items_copy(source, target, done_at_loss, rerun)
