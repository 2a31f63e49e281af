"""`ferry rollback RUN_ID`: undo scripts when every migration of the run has one, the run's
backup otherwise, created tables dropped for a data run; each rollback recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from ferry.data.copy import copy_data
from ferry.data.spec import parse_job
from ferry.db.target import open_url
from ferry.rollback.backup import list_backups
from ferry.rollback.runs import RollbackError, rollback_run
from ferry.rollback.safe import safe_apply
from ferry.runs import read_runs
from ferry.schema import commands
from tests.conftest import ProjectMaker, engine_for, new_database


def _tables(url: str) -> set[str]:
    engine = engine_for(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


pytestmark = pytest.mark.integration


def test_rollback_by_undo_scripts_then_by_backup(maker: ProjectMaker, tmp_path: Path) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    maker.write("U1__a.sql", "DROP TABLE a;\n")
    maker.write("V2__b.sql", "CREATE TABLE b (id INTEGER PRIMARY KEY);\n")
    maker.write("U2__b.sql", "DROP TABLE b;\n")
    project = maker.project()
    first = commands.apply(project)
    report = rollback_run(project, first.run_id, backup_root=tmp_path / "backups")
    assert report.strategy == "undo scripts"
    assert {"a", "b"}.isdisjoint(_tables(maker.url))

    maker.write("V3__c.sql", "CREATE TABLE c (id INTEGER PRIMARY KEY);\n")  # no undo script
    second = safe_apply(project, None, backup_root=tmp_path / "backups")
    assert {"a", "b", "c"} <= _tables(maker.url)
    report = rollback_run(
        project, second.run_id, backup_root=tmp_path / "backups", reason="bad release"
    )
    assert report.strategy == "restore backup"
    assert {"a", "b", "c"}.isdisjoint(_tables(maker.url))
    assert [line.state for line in commands.status(project).lines] == ["pending"] * 3
    with pytest.raises(RollbackError, match="applied nothing"):
        rollback_run(project, second.run_id, backup_root=tmp_path / "backups")
    target = open_url("t", maker.url)
    with target.connect() as conn:
        records = [r for r in read_runs(conn) if r.type == "rollback"]
    target.dispose()
    assert [r.status for r in records] == ["failed", "completed", "completed"]
    assert records[1].summary["reason"] == "bad release"


def test_rollback_of_a_copy_drops_the_tables_it_created(tmp_path: Path) -> None:
    source, drop_source = new_database("sqlite", tmp_path)
    target, drop_target = new_database("postgresql", tmp_path)
    try:
        engine = engine_for(source)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER)")
            conn.exec_driver_sql("INSERT INTO items VALUES (1, 1), (2, 2)")
        engine.dispose()
        job = tmp_path / "job.yaml"
        report = copy_data(
            parse_job(f"source: {source}\ntarget: {target}\n", path=job), spec_path=job
        )
        assert "items" in _tables(target)
        (tmp_path / "ferry.toml").write_text(
            f'[migrations]\nfolders = ["m"]\n[targets.t]\nurl = "{target}"\n'
        )
        (tmp_path / "m").mkdir()
        from ferry.config.project import load_project

        undone = rollback_run(
            load_project(tmp_path / "ferry.toml"), report.run_id, backup_root=tmp_path / "backups"
        )
        assert undone.strategy == "drop created tables"
        assert "items" not in _tables(target)
    finally:
        drop_source()
        drop_target()


def _count(url: str, table: str) -> int:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("target_dialect", ["sqlite", "postgresql", "mysql"])
def test_rollback_of_a_copy_into_tables_that_were_empty_or_held_rows(
    tmp_path: Path, target_dialect: str
) -> None:
    source, drop_source = new_database("sqlite", tmp_path)
    target, drop_target = new_database(target_dialect, tmp_path)
    try:
        engine = engine_for(source)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER)")
            conn.exec_driver_sql("INSERT INTO items VALUES (1, 1), (2, 2), (3, 3)")
        engine.dispose()
        engine = engine_for(target)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER)")
        engine.dispose()
        (tmp_path / "ferry.toml").write_text(
            f'[migrations]\nfolders = ["m"]\n[targets.t]\nurl = "{target}"\n'
        )
        (tmp_path / "m").mkdir()
        from ferry.config.project import load_project

        project = load_project(tmp_path / "ferry.toml")
        job = tmp_path / "job.yaml"
        spec = parse_job(f"source: {source}\ntarget: {target}\n", path=job)
        report = copy_data(spec, spec_path=job)
        assert _count(target, "items") == 3

        undone = rollback_run(project, report.run_id, backup_root=tmp_path / "backups")
        assert undone.strategy == "empty loaded tables"
        assert undone.detail == ["emptied items (empty before the run)"]
        assert _count(target, "items") == 0
        target_ = open_url("t", target)
        with target_.connect() as conn:
            runs = {r.run_id: r for r in read_runs(conn)}
        target_.dispose()
        assert runs[report.run_id].status == "rolled_back"
        [record] = [r for r in runs.values() if r.type == "rollback"]
        assert record.summary["strategy"] == "empty loaded tables"
        assert record.summary["seconds"] >= 0

        # the checkpoints went with the rows: the copy runs again from the start
        again = copy_data(spec, spec_path=job)
        assert again.tables[0].counts.written == 3
        # now items held rows before the next copy: no backup, no safe strategy
        engine = engine_for(source)
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO items VALUES (4, 4)")
        engine.dispose()
        more = copy_data(spec, spec_path=job, restart=True)
        with pytest.raises(RollbackError, match=r"held rows before .*no safe strategy"):
            rollback_run(project, more.run_id, backup_root=tmp_path / "backups")
        assert _count(target, "items") == 4
    finally:
        drop_source()
        drop_target()


def test_safe_apply_backs_up_only_the_tables_the_plan_names(
    maker: ProjectMaker, tmp_path: Path
) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    maker.write("V2__z.sql", "CREATE TABLE z (id INTEGER PRIMARY KEY);\n")
    project = maker.project()
    commands.apply(project)
    maker.write("V3__a.sql", "ALTER TABLE a ADD COLUMN n INTEGER;\nINSERT INTO a VALUES (1, 2);\n")
    report = safe_apply(project, None, backup_root=tmp_path / "backups")
    [made] = list_backups(tmp_path / "backups")
    assert made.run_id == report.run_id
    assert "a" in made.tables
    assert "schema_migrations" in made.tables
    assert "z" not in made.tables
    undone = rollback_run(project, report.run_id, backup_root=tmp_path / "backups")
    assert undone.strategy == "restore backup"  # V3 has no undo script
    assert [line.state for line in commands.status(project).lines][-1] == "pending"

    everything = maker.project(extra='[backups]\nscope = "database"')
    run = safe_apply(everything, None, backup_root=tmp_path / "backups")
    [whole] = [b for b in list_backups(tmp_path / "backups") if b.run_id == run.run_id]
    assert {"a", "z"} <= set(whole.tables)
