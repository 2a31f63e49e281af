"""`ferry copy --mode dry_run` changes nothing; `--mode safe` proves the copy, and on any
failure puts the target back exactly as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ferry.config.project import load_project
from ferry.data.spec import parse_job
from ferry.db.bookkeeping import FERRY_TABLES
from ferry.db.target import open_url
from ferry.rollback.backup import list_backups
from ferry.rollback.safe import RolledBack
from ferry.rollback.safe_copy import copy_plan, safe_copy
from ferry.runs import read_runs
from tests.conftest import engine_for, new_database

pytestmark = pytest.mark.integration


def _source(tmp_path: Path) -> Path:
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE cams (id INTEGER PRIMARY KEY, active TEXT)")
        conn.executemany(
            "INSERT INTO cams VALUES (?, ?)",
            [(i, "Y" if i % 2 else "N") for i in range(1, 41)] + [(41, "?")],
        )
    return path


#: A table of the target's own that no copy may touch.
KEEP_ME = ("CREATE TABLE keep_me (id INTEGER PRIMARY KEY)", "INSERT INTO keep_me VALUES (1)")


def _execute(url: str, *statements: str) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _job_template(source: Path, target: str) -> str:
    """The job copying `cams`, with `{limit}` left for errors.max_errors."""
    return (
        f"source: sqlite:///{source}\ntarget: {target}\n"
        "tables:\n  cams:\n    values: {{active: {{map: {{Y: true, N: false}}}}}}\n"
        "errors: {{max_errors: {limit}}}\n"
    )


def _tables(url: str) -> set[str]:
    from sqlalchemy import inspect

    engine = engine_for(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("target_dialect", ["sqlite", "postgresql", "mysql"])
def test_safe_copy_restores_the_target_on_failure(tmp_path: Path, target_dialect: str) -> None:
    source = _source(tmp_path)
    target, drop = new_database(target_dialect, tmp_path)
    try:
        _execute(target, *KEEP_ME)
        before = _tables(target)
        job = tmp_path / "job.yaml"
        text = _job_template(source, target)
        planned = copy_plan(parse_job(text.format(limit=0), path=job), spec_path=job)
        assert "CREATE TABLE cams" in planned
        assert _tables(target) == before  # the dry run changed nothing

        with pytest.raises(RolledBack, match=r"undone by drop created tables \(dropped cams\)"):
            safe_copy(
                parse_job(text.format(limit=0), path=job),
                spec_path=job,
                backup_root=tmp_path / "backups",
            )
        assert _tables(target) - FERRY_TABLES == before  # the rollback is recorded in ferry_runs

        report, proof = safe_copy(
            parse_job(text.format(limit=5), path=job),
            spec_path=job,
            backup_root=tmp_path / "backups",
        )
        assert report.tables[0].counts.written == 40
        assert proof.status == "passed"
        assert "cams" in _tables(target)
    finally:
        drop()


def _rows(url: str, table: str) -> list[tuple[object, ...]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1")]
    finally:
        engine.dispose()


@pytest.mark.parametrize("target_dialect", ["sqlite", "postgresql", "mysql"])
def test_safe_copy_backs_up_only_the_tables_it_touches(tmp_path: Path, target_dialect: str) -> None:
    source = _source(tmp_path)
    target, drop = new_database(target_dialect, tmp_path)
    try:
        _execute(
            target,
            *KEEP_ME,
            "CREATE TABLE cams (id INTEGER PRIMARY KEY, active BOOLEAN)",
            "INSERT INTO cams VALUES (100, NULL)",
        )
        job = tmp_path / "job.yaml"
        text = _job_template(source, target)
        # cams held a row: only the backup can take the copy's rows out again
        with pytest.raises(RolledBack, match="undone by restore backup"):
            safe_copy(
                parse_job(text.format(limit=0), path=job),
                spec_path=job,
                backup_root=tmp_path / "backups",
            )
        assert _rows(target, "cams") == [(100, None)]
        [backup] = list_backups(tmp_path / "backups")
        assert "cams" in backup.tables
        assert "keep_me" not in backup.tables  # not touched by the job: not backed up
        assert backup.run_id is not None
        # the restore proved itself against the manifest; the record names the strategy
        target_ = open_url("t", target)
        with target_.connect() as conn:
            [record] = [r for r in read_runs(conn) if r.type == "rollback"]
        target_.dispose()
        assert record.summary["strategy"] == "restore backup"
        assert record.summary["of"] == backup.run_id

        engine = engine_for(target)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM cams")  # so that the copy proves equal
        engine.dispose()
        config = tmp_path / "ferry.toml"
        config.write_text(
            f'[backups]\nscope = "database"\n[targets.t]\nurl = "{target}"\n', encoding="utf-8"
        )
        report, _ = safe_copy(
            parse_job(text.format(limit=5), path=job),
            spec_path=job,
            backup_root=tmp_path / "backups",
            project=load_project(config),
        )
        [newest] = [b for b in list_backups(tmp_path / "backups") if b.run_id == report.run_id]
        assert {"cams", "keep_me"} <= set(newest.tables)
        # The proof is stored with the copy's run record.
        target_ = open_url("t", target)
        with target_.connect() as conn:
            [copied] = [r for r in read_runs(conn) if r.run_id == report.run_id]
        target_.dispose()
        assert copied.status == "completed"
        assert copied.summary["validation"]["status"] == "passed"
        assert copied.summary["validation"]["categories"]["data"]["details"]["cams"]["missing"] == 0
    finally:
        drop()


def test_cli_safe_copy_keeps_backups_where_the_project_says(tmp_path: Path) -> None:
    import subprocess
    import sys

    source = _source(tmp_path)
    target = tmp_path / "dst.db"
    job = tmp_path / "job.yaml"
    job.write_text(
        f"source: sqlite:///{source}\ntarget: sqlite:///{target}\n"
        "tables:\n  cams:\n    values: {active: {map: {Y: true, N: false}}}\n"
        "errors: {max_errors: 5}\n",
        encoding="utf-8",
    )
    (tmp_path / "ferry.toml").write_text(
        f'[backups]\nlocation = "vault"\n[targets.dev]\nurl = "sqlite:///{target}"\n',
        encoding="utf-8",
    )
    command = ["-m", "ferry", "--config", "ferry.toml", "copy", "job.yaml", "--mode", "safe"]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(list_backups(tmp_path / "vault")) == 1
    assert not (tmp_path / "backups").exists()
