"""One copy at a time into a target: a second one waits for the copy lock, then fails
with a typed error naming the target; a run whose process died is no longer `running`
once a later copy takes the lock."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ferry.data.copy import copy_data, copy_lock
from ferry.data.endpoints import open_endpoint
from ferry.data.spec import parse_job
from ferry.errors import LockTimeout
from ferry.runs import start_run
from tests.integration.test_copy import LITE, MY, PG, _pair_id, make_pair

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("dialects", [(LITE, PG), (LITE, MY), (LITE, LITE)], ids=_pair_id)
def test_a_second_copy_into_a_target_waits_for_the_lock_then_fails_clearly(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20))")
        pair.source_sql("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        path = tmp_path / "job.yaml"
        spec = parse_job(pair.spec_text(""), path=path)
        holder = open_endpoint(spec.target, key="target", spec_path=path, project=None)
        try:
            with copy_lock(holder, job="other", wait=1):
                with pytest.raises(LockTimeout, match=r"another `ferry copy` is loading target"):
                    copy_data(spec, spec_path=path, lock_wait=0.5)
                assert "items" not in pair.target_tables()  # nothing written meanwhile
        finally:
            holder.dispose()

        report = pair.copy("")  # the lock released, the copy runs
        assert report.status == "completed"
        assert pair.rows("items") == [(1, "a"), (2, "b")]


def test_a_run_left_running_by_a_dead_process_is_recorded_failed(tmp_path: Path) -> None:
    with make_pair((LITE, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE items (id INTEGER PRIMARY KEY)")
        pair.source_sql("INSERT INTO items VALUES (1)")
        engine = create_engine(pair.target.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as conn:
                start_run(conn, "dead-run", "data", "job")  # its process never finished it
                start_run(conn, "a-migration", "schema", "up")  # another kind: not touched

            report = pair.copy("")

            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT run_id, status, error FROM ferry_runs ORDER BY started_at")
                ).all()
        finally:
            engine.dispose()
        status = {run_id: (state, error) for run_id, state, error in rows}
        assert status[report.run_id] == ("completed", None)
        assert status["a-migration"] == ("running", None)
        assert status["dead-run"][0] == "failed"
        assert f"run {report.run_id} found it" in status["dead-run"][1]
