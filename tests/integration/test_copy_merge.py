"""`dedupe: keep: merge`: one row per key, its NULLs filled from later duplicates, also
across batches (the target row is updated) and across a resumed run."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from ferry.data.copy import copy_data
from ferry.data.spec import parse_job
from tests.conftest import engine_for, new_database

pytestmark = pytest.mark.integration

ROWS = [
    (1, "Ann", "a@x.io", None, None),
    (2, "Bob", "b@x.io", "555", None),
    (3, "ann", "A@x.io", "123", None),
    (4, "Cy", "c@x.io", None, "Oslo"),
    (5, "Ann", "a@x.io", None, "Rome"),
    (6, "Cy", "C@X.io", "999", "Bergen"),
    (7, "Dee", None, None, "Lima"),
    (8, "Dee", None, "777", None),
]
EXPECTED = [
    (1, "Ann", "a@x.io", "123", "Rome"),
    (2, "Bob", "b@x.io", "555", None),
    (4, "Cy", "c@x.io", "999", "Oslo"),
    (7, "Dee", None, "777", "Lima"),
]


@pytest.mark.parametrize(
    ("source_dialect", "target_dialect"),
    [("sqlite", "sqlite"), ("mysql", "postgresql"), ("postgresql", "mysql")],
)
def test_merge_fills_nulls_across_batches(
    source_dialect: str, target_dialect: str, tmp_path: Path
) -> None:
    source, drop_source = new_database(source_dialect, tmp_path)
    target, drop_target = new_database(target_dialect, tmp_path)
    try:
        engine = engine_for(source)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(20), "
                    "email VARCHAR(50), phone VARCHAR(20), city VARCHAR(20))"
                )
            )
            conn.execute(
                text("INSERT INTO users VALUES (:i, :n, :e, :p, :c)"),
                [dict(zip("inepc", row, strict=True)) for row in ROWS],
            )
        engine.dispose()
        job = tmp_path / "job.yaml"
        spec = parse_job(
            f"source: {source}\ntarget: {target}\n"
            "tables:\n  users:\n    dedupe: {on: [name, email], keep: merge}\n"
            "load: {batch_size: 2}\n",
            path=job,
        )
        report = copy_data(spec, spec_path=job)
        counts = report.tables[0].counts
        assert (counts.read, counts.written, counts.deduped) == (8, 4, 4)
        assert counts.balanced
        engine = engine_for(target)
        with engine.connect() as conn:
            got = [
                tuple(r)
                for r in conn.execute(
                    text("SELECT id, name, email, phone, city FROM users ORDER BY id")
                )
            ]
        engine.dispose()
        assert got == EXPECTED
    finally:
        drop_source()
        drop_target()
