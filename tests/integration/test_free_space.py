"""The free-space precondition: a run that would not fit on the database's disk stops before
it changes anything; unknown free space is a warning, not a failure."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from ferry.data.spec import parse_job
from ferry.db.adapter import Adapter
from ferry.db.target import open_url
from ferry.errors import InsufficientSpace
from ferry.rollback.backup import list_backups
from ferry.rollback.safe import safe_apply
from ferry.rollback.safe_copy import safe_copy
from ferry.schema import commands
from tests.conftest import ProjectMaker, engine_for, new_database

pytestmark = pytest.mark.integration


def _tiny_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    # The disk cannot be filled in a test: the adapter reports 10 bytes free instead.
    monkeypatch.setattr(Adapter, "free_bytes", lambda self, conn, url: 10)


def test_the_database_can_tell_its_free_space(db_url: str) -> None:
    target = open_url("t", db_url)
    try:
        with target.connect() as conn:
            free = target.adapter.free_bytes(conn, target.url)
    finally:
        target.dispose()
    assert free is not None
    assert free > 0


def test_safe_apply_stops_when_the_disk_is_too_small(
    maker: ProjectMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY, n INTEGER);\n")
    project = maker.project()
    commands.apply(project)
    maker.write("V2__n.sql", "ALTER TABLE a ADD COLUMN m INTEGER;\n")

    plan = commands.plan(project)
    assert plan.preconditions is not None
    assert plan.preconditions.space is not None
    assert plan.preconditions.space.enough  # the real disk has room

    _tiny_disk(monkeypatch)
    with pytest.raises(InsufficientSpace, match=r"target `t` has 10 bytes free") as raised:
        safe_apply(project, None, backup_root=tmp_path / "backups")
    assert raised.value.free == 10
    assert raised.value.needed > 10
    assert "free disk space" in str(raised.value)
    assert [line.state for line in commands.status(project).lines] == ["applied", "pending"]
    assert list_backups(tmp_path / "backups") == []  # stopped before the backup


def test_unknown_free_space_is_a_warning(
    maker: ProjectMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    project = maker.project()
    monkeypatch.setattr(Adapter, "free_bytes", lambda self, conn, url: None)
    plan = commands.plan(project)
    assert plan.preconditions is not None
    assert plan.preconditions.errors == []
    assert any("free disk space" in w for w in plan.preconditions.warnings)
    report = safe_apply(project, None, backup_root=tmp_path / "backups")
    assert len(report.results) == 1


@pytest.mark.parametrize("target_dialect", ["sqlite", "postgresql", "mysql"])
def test_safe_copy_stops_when_the_disk_is_too_small(
    tmp_path: Path, target_dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, i) for i in range(1, 101)])
    target, drop = new_database(target_dialect, tmp_path)
    try:
        job = tmp_path / "job.yaml"
        spec: Any = parse_job(f"source: sqlite:///{source}\ntarget: {target}\n", path=job)
        _tiny_disk(monkeypatch)
        with pytest.raises(InsufficientSpace, match="copying 1 tables"):
            safe_copy(spec, spec_path=job, backup_root=tmp_path / "backups")
        engine = engine_for(target)
        assert inspect(engine).get_table_names() == []  # nothing was written
        engine.dispose()
        monkeypatch.undo()
        report, proof = safe_copy(spec, spec_path=job, backup_root=tmp_path / "backups")
        assert report.tables[0].counts.written == 100
        assert proof.status == "passed"
    finally:
        drop()
