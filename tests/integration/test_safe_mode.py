"""Safe mode: a run failing halfway leaves the database exactly as it was, on every
dialect (on MariaDB the statements that ran before the failure are undone too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from ferry.rollback.safe import RolledBack, safe_apply
from ferry.schema import commands
from tests.conftest import ProjectMaker, engine_for
from tests.integration.test_runs import run_records

pytestmark = pytest.mark.integration


def _snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows, but the run records: those of the failed run and of its rollback
    are kept on purpose."""
    engine = engine_for(url)
    try:
        names = sorted(set(inspect(engine).get_table_names()) - {"ferry_runs"})
        with engine.connect() as conn:
            return {
                name: sorted(
                    (
                        tuple(str(v) for v in row)
                        for row in conn.execute(text(f"SELECT * FROM {name}"))
                    ),
                )
                for name in names
            }
    finally:
        engine.dispose()


def test_failure_in_safe_mode_restores_the_database(maker: ProjectMaker, tmp_path: Path) -> None:
    maker.write(
        "V1__cameras.sql",
        "CREATE TABLE cameras (id INTEGER PRIMARY KEY, name VARCHAR(20));\n"
        "INSERT INTO cameras VALUES (1, 'north');\n",
    )
    project = maker.project()
    commands.apply(project)
    before = _snapshot(maker.url)

    maker.write(
        "V2__counts.sql",
        "CREATE TABLE counts (id INTEGER PRIMARY KEY, n INTEGER);\n"
        "INSERT INTO cameras VALUES (2, 'south');\n",
    )
    maker.write(
        "V3__broken.sql",
        "CREATE TABLE extra (id INTEGER PRIMARY KEY);\n"
        "INSERT INTO cameras VALUES (3, 'east');\n"
        "INSERT INTO no_such_table VALUES (1);\n",
    )
    backups = tmp_path / "backups"
    with pytest.raises(RolledBack, match=r"(?s)V3__broken\.sql:3.*restored from backup"):
        safe_apply(project, None, backup_root=backups)
    assert _snapshot(maker.url) == before
    assert [line.state for line in commands.status(project).lines] == [
        "applied",
        "pending",
        "pending",
    ]
    # The run and its automatic rollback are on record: why, how, how long.
    runs = run_records(maker.url)
    failed = [r for r in runs if r.type == "schema" and r.status == "rolled_back"]
    assert len(failed) == 1
    assert failed[0].name == "apply 2 counts .. 3 broken"
    assert "V3__broken.sql:3" in (failed[0].error or "")
    assert failed[0].summary["done"] == ["2 counts"]
    rollback = [r for r in runs if r.type == "rollback"]
    assert len(rollback) == 1
    assert rollback[0].summary["of"] == failed[0].run_id
    assert rollback[0].summary["strategy"] == "restore backup"
    assert rollback[0].summary["reason"].startswith("automatic (safe mode): ")
    assert rollback[0].summary["seconds"] > 0

    maker.write("V3__broken.sql", "CREATE TABLE extra (id INTEGER PRIMARY KEY);\n")
    report = safe_apply(project, None, backup_root=backups)
    assert [str(r.step.script.version) for r in report.results] == ["2", "3"]
    after = _snapshot(maker.url)
    assert {"counts", "extra"} <= set(after)
    assert len(after["cameras"]) == 2


def test_run_over_its_time_limit_is_rolled_back(maker: ProjectMaker, tmp_path: Path) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    project = maker.project()
    commands.apply(project)
    maker.write("V2__slow.py", "import time\n\n\ndef upgrade(ctx):\n    time.sleep(1.2)\n")
    maker.write("V3__c.sql", "CREATE TABLE c (id INTEGER PRIMARY KEY);\n")
    before = _snapshot(maker.url)
    with pytest.raises(RolledBack, match=r"(?s)longer than its 1 s limit.*restored"):
        safe_apply(project, None, backup_root=tmp_path / "backups", timeout=1)
    assert _snapshot(maker.url) == before
