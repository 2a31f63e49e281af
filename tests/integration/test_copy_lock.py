"""One copy at a time into a target: a second one waits for the copy lock, then fails
with a typed error naming the target; a run whose process died is no longer `running`
once a later copy takes the lock."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ferry.data import deferral
from ferry.data.copy import copy_data, copy_lock
from ferry.data.endpoints import open_endpoint
from ferry.data.spec import parse_job
from ferry.db.adapter import adapter_for_dialect
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


def test_objects_set_aside_on_a_table_dropped_since_are_not_put_on_the_new_one(
    tmp_path: Path,
) -> None:
    """A killed run set an index aside; the user then dropped the table. The rerun creates
    the table afresh from the source, and had then also built the old table's index on it."""
    with make_pair((LITE, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20))")
        pair.source_sql("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        pair.target_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20))")
        pair.target_sql("CREATE INDEX items_old_ix ON items (name)")
        engine = create_engine(pair.target.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as conn:  # what the killed run left: recorded and dropped
                deferral.ensure(conn)
                adapter = adapter_for_dialect(conn.dialect.name)()
                assert deferral.set_aside(conn, adapter, "job", ["items"]) == 1
            pair.target_sql("DROP TABLE items")

            report = pair.copy("")

            with engine.connect() as conn:
                names = conn.execute(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'items'")
                ).scalars()
                indexes = set(names)
                left = conn.execute(text("SELECT COUNT(*) FROM ferry_deferred")).scalar()
        finally:
            engine.dispose()
        assert report.warnings == [
            "index items_old_ix on `items`, set aside by an earlier run, went with the table "
            "(dropped since): it is not restored on the table this run created"
        ]
        assert "items_old_ix" not in indexes
        assert left == 0
        assert pair.rows("items") == [(1, "a"), (2, "b")]
