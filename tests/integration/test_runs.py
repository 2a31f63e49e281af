"""Every run leaves a record in the target: running, then completed or failed — copies, schema
runs (apply, undo) with their validation report, and verifications."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from ferry.data.copy import copy_data
from ferry.data.spec import parse_job
from ferry.data.transform import DataError
from ferry.errors import FerryError
from ferry.runs import RunRecord, read_runs
from ferry.schema import commands
from ferry.validate.data import verify_job
from tests.conftest import ProjectMaker, engine_for, new_database

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


def run_records(url: str) -> list[RunRecord]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return read_runs(conn)
    finally:
        engine.dispose()


def test_schema_runs_are_recorded_with_their_validation(maker: ProjectMaker) -> None:
    maker.write("V1__cameras.sql", "CREATE TABLE cameras (id INTEGER PRIMARY KEY);\n")
    maker.write("U1__cameras.sql", "DROP TABLE cameras;\n")
    maker.write("V2__bad.sql", "CREATE TABLE counts (id INTEGER PRIMARY KEY);\nBROKEN SQL;\n")
    project = maker.project()
    with pytest.raises(FerryError):
        commands.apply(project)
    maker.write("V2__bad.sql", "CREATE TABLE counts (id INTEGER PRIMARY KEY);\n")
    maker.write("U2__bad.sql", "DROP TABLE counts;\n")
    applied = commands.apply(project)
    nothing = commands.apply(project)  # nothing to apply: no record
    undone = commands.undo(project)

    records = {r.run_id: r for r in run_records(maker.url)}
    assert nothing.run_id not in records
    failed = [r for r in records.values() if r.status == "failed"]
    assert len(failed) == 1
    assert failed[0].type == "schema"
    assert "V2__bad.sql:2" in (failed[0].error or "")
    assert failed[0].summary["planned"] == ["1 cameras", "2 bad"]
    assert failed[0].summary["done"] == ["1 cameras"]

    ok = records[applied.run_id]
    assert (ok.type, ok.status, ok.name) == ("schema", "completed", "apply 2 bad")
    assert ok.summary["done"] == ["2 bad"]
    assert ok.summary["validation"]["categories"]["schema"]["status"] == "passed"
    back = records[undone.run_id]
    assert (back.status, back.name, back.summary["done"]) == ("completed", "undo 2 bad", ["2 bad"])


def test_verify_is_recorded_as_a_validation_run(tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, i) for i in range(1, 11)])
    target = tmp_path / "dst.db"
    job = tmp_path / "job.yaml"
    job.write_text(f"source: sqlite:///{source}\ntarget: sqlite:///{target}\n")
    spec = parse_job(job.read_text(), path=job)
    copied = copy_data(spec, spec_path=job)
    passed = verify_job(spec, spec_path=job)
    with sqlite3.connect(target) as conn:
        conn.execute("DELETE FROM t WHERE id = 3")
    failed = verify_job(spec, spec_path=job)

    records = run_records(f"sqlite:///{target}")
    checks = [r for r in records if r.type == "validation"]
    assert [(r.name, r.status) for r in checks] == [
        ("verify job", "failed"),
        ("verify job", "completed"),
    ]
    assert checks[0].summary["validation"] == failed.as_dict()
    assert checks[1].summary["validation"] == passed.as_dict()
    assert "validation" not in next(r for r in records if r.run_id == copied.run_id).summary


def test_verify_of_a_read_only_target_still_reports(tmp_path: Path) -> None:
    """A read replica takes no run record: verify still answers, and says it kept nothing."""
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, i) for i in range(1, 6)])
    target, drop = new_database("postgresql", tmp_path)
    try:
        job = tmp_path / "job.yaml"
        job.write_text(f"source: sqlite:///{source}\ntarget: {target}\n")
        spec = parse_job(job.read_text(), path=job)
        copy_data(spec, spec_path=job)
        name = make_url(target).database
        engine = engine_for(target)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        engine.dispose()

        report = verify_job(spec, spec_path=job)
        assert report.status == "passed"
        [warning] = report.categories["data"].warnings
        assert "not stored in the target's ferry_runs" in warning
        assert "read-only" in warning
    finally:
        drop()
