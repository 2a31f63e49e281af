"""UUID primary keys: keyset chunks over UUIDs, and the type where the target has none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from ferry.data.copy import copy_data
from ferry.data.spec import parse_job
from tests.conftest import engine_for, new_database

pytestmark = pytest.mark.integration


@pytest.fixture
def uuid_source(tmp_path: Path) -> Iterator[str]:
    url, drop = new_database("postgresql", tmp_path)
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id uuid PRIMARY KEY, n integer NOT NULL)"))
        conn.execute(
            text("INSERT INTO t SELECT gen_random_uuid(), g FROM generate_series(1, 2500) g")
        )
    engine.dispose()
    yield url
    drop()


@pytest.mark.parametrize("target_dialect", ["postgresql", "mysql", "sqlite"])
def test_uuid_keys_split_into_chunks_and_copy_exactly(
    uuid_source: str, target_dialect: str, tmp_path: Path
) -> None:
    target, drop = new_database(target_dialect, tmp_path)
    try:
        job = tmp_path / "job.yaml"
        spec = parse_job(
            f"source: {uuid_source}\ntarget: {target}\nload: {{batch_size: 1000}}\n", path=job
        )
        report = copy_data(spec, spec_path=job)
        assert report.tables[0].chunks == 3
        assert report.tables[0].counts.written == 2500
        source_engine, target_engine = engine_for(uuid_source), engine_for(target)
        with source_engine.connect() as conn:
            expected = sorted((str(i), n) for i, n in conn.execute(text("SELECT id, n FROM t")))
        with target_engine.connect() as conn:
            got = sorted((str(i), n) for i, n in conn.execute(text("SELECT id, n FROM t")))
        source_engine.dispose()
        target_engine.dispose()
        assert got == expected
    finally:
        drop()
