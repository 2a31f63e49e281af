"""`ferry copy --mode dry_run` changes nothing; `--mode safe` proves the copy, and on any
failure puts the target back exactly as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ferry.data.spec import parse_job
from ferry.rollback.safe import RolledBack
from ferry.rollback.safe_copy import copy_plan, safe_copy
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
        engine = engine_for(target)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE keep_me (id INTEGER PRIMARY KEY)")
            conn.exec_driver_sql("INSERT INTO keep_me VALUES (1)")
        engine.dispose()
        before = _tables(target)
        job = tmp_path / "job.yaml"
        text = (
            f"source: sqlite:///{source}\ntarget: {target}\n"
            "tables:\n  cams:\n    values: {{active: {{map: {{Y: true, N: false}}}}}}\n"
            "errors: {{max_errors: {limit}}}\n"
        )
        planned = copy_plan(parse_job(text.format(limit=0), path=job), spec_path=job)
        assert "CREATE TABLE cams" in planned
        assert _tables(target) == before  # the dry run changed nothing

        with pytest.raises(RolledBack, match="restored from backup"):
            safe_copy(
                parse_job(text.format(limit=0), path=job),
                spec_path=job,
                backup_root=tmp_path / "backups",
            )
        assert _tables(target) == before

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
