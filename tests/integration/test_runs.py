"""Every copy leaves a run record in the target: running, then completed or failed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ferry.data.copy import copy_data
from ferry.data.spec import parse_job
from ferry.data.transform import DataError
from ferry.runs import read_runs
from tests.conftest import engine_for

pytestmark = pytest.mark.integration


def test_failed_and_completed_runs_are_recorded(tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?)",
            [(i, f"u{i}@x.io" if i % 4 else "broken") for i in range(1, 2001)],
        )
    target = tmp_path / "dst.db"
    job = tmp_path / "job.yaml"
    text = (
        "source: sqlite:///{s}\ntarget: sqlite:///{t}\n"
        "tables:\n  t:\n    validate: {{email: email}}\n"
        "load: {{batch_size: 500, workers: 1}}\nerrors: {{max_error_rate: {rate}}}\n"
    )
    with pytest.raises(DataError):
        copy_data(parse_job(text.format(s=source, t=target, rate=0.1), path=job), spec_path=job)
    report = copy_data(
        parse_job(text.format(s=source, t=target, rate=0.5), path=job), spec_path=job
    )
    engine = engine_for(f"sqlite:///{target}")
    with engine.connect() as conn:
        records = read_runs(conn)
    engine.dispose()
    assert [r.status for r in records] == ["completed", "failed"]
    failed, completed = records[1], records[0]
    assert "max_error_rate" in (failed.error or "")
    assert failed.finished_at is not None
    assert completed.run_id == report.run_id
    assert completed.summary["tables"]["t"]["read"] == 2000
    assert completed.summary["tables"]["t"]["rejected"] == 500
