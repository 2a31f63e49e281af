"""A copy's chunks commit on PostgreSQL without waiting for the WAL flush (rows and checkpoint
commit together, so a server crash costs only a redo); the setting stays in each chunk's
transaction and the run's record, committed last, is flushed as usual."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ferry.data.copy import copy_data
from ferry.data.spec import parse_job
from ferry.db.postgresql import PostgresAdapter
from tests.conftest import engine_for, new_database

pytestmark = pytest.mark.integration


def test_chunks_commit_unflushed_and_nothing_leaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "legacy.db"
    engine = create_engine(f"sqlite:///{source}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counts (id INTEGER PRIMARY KEY, n INTEGER)"))
        conn.execute(
            text("INSERT INTO counts VALUES (:i, :n)"),
            [{"i": i, "n": i * 2} for i in range(1, 501)],
        )
    engine.dispose()
    url, drop = new_database("postgresql", tmp_path)
    seen: list[str] = []
    original = PostgresAdapter.bulk_insert

    def spy(self: PostgresAdapter, conn: Any, table: Any, data: Any) -> None:
        seen.append(str(conn.execute(text("SHOW synchronous_commit")).scalar()))
        original(self, conn, table, data)

    monkeypatch.setattr(PostgresAdapter, "bulk_insert", spy)
    try:
        job = tmp_path / "job.yaml"
        job.write_text(f"source: sqlite:///{source}\ntarget: {url}\nload: {{batch_size: 100}}\n")
        report = copy_data(parse_job(job.read_text(), path=job), spec_path=job)
        assert report.status == "completed"
        assert len(seen) == 5  # 500 rows in chunks of 100
        assert set(seen) == {"off"}
        target = engine_for(url)
        with target.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM counts")).scalar() == 500
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
        target.dispose()
    finally:
        drop()
