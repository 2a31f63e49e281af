"""`ferry drift` on every dialect: nothing after a clean apply, each change outside Ferry
named after one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from ferry.rollback.safe import RolledBack, safe_apply
from ferry.schema import commands
from ferry.schema.drift import drift
from ferry.schema.execute import StepResult
from tests.conftest import ProjectMaker, engine_for

pytestmark = pytest.mark.integration


def test_drift_names_changes_made_outside_ferry(maker: ProjectMaker) -> None:
    maker.write(
        "V1__cameras.sql",
        "CREATE TABLE cameras (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL);\n"
        "CREATE INDEX cameras_name ON cameras (name);\n",
    )
    maker.write(
        "V2__counts.sql",
        "CREATE TABLE counts (id INTEGER PRIMARY KEY, camera_id INTEGER NOT NULL,\n"
        "  n INTEGER, FOREIGN KEY (camera_id) REFERENCES cameras (id));\n",
    )
    maker.write(
        "R__busy.sql",
        "DROP VIEW IF EXISTS busy;\n"
        "CREATE VIEW busy AS SELECT camera_id, COUNT(*) AS readings FROM counts "
        "GROUP BY camera_id;\n",
    )
    project = maker.project()
    commands.apply(project)
    clean = drift(project)
    assert clean.differences == []

    engine = engine_for(maker.url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE cameras ADD COLUMN site VARCHAR(20)"))
        conn.execute(text("CREATE TABLE scratch_notes (id INTEGER PRIMARY KEY)"))
        conn.execute(text("CREATE INDEX counts_n ON counts (n)"))
        conn.execute(text("DROP VIEW busy"))
    engine.dispose()
    found = drift(project).differences
    assert "column `cameras.site` was added outside Ferry" in found
    assert "table `scratch_notes` exists but no applied migration creates it" in found
    assert "index ('n',) on `counts` was added outside Ferry" in found
    assert "view `busy` is missing: the applied migrations create it" in found
    assert len(found) == 4, found


def test_apply_checks_drift_and_keeps_the_snapshot_current(
    maker: ProjectMaker, tmp_path: Path
) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    maker.write("V2__z.sql", "CREATE TABLE z (id INTEGER PRIMARY KEY);\n")
    project = maker.project()
    first = commands.apply(project)
    assert first.validation is not None
    assert first.validation.categories["schema"].warnings == []
    assert drift(project).method.startswith("snapshot of run")

    engine = engine_for(maker.url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE z ADD COLUMN site VARCHAR(20)"))
    engine.dispose()
    outside = "column `z.site` was added outside Ferry"
    maker.write("V3__b.sql", "CREATE TABLE b (id INTEGER PRIMARY KEY);\n")
    second = commands.apply(project)
    assert second.validation is not None
    schema = second.validation.categories["schema"]
    assert schema.status == "passed"
    assert schema.warnings == [f"drift: {outside}"]  # b came from a migration: no drift
    assert drift(project).differences == [outside]  # the snapshot knows b, not z.site
    assert drift(project, replay=True).differences == [outside]

    # safe mode: the drift found before the run is a precondition warning
    maker.write("V4__a.sql", "ALTER TABLE a ADD COLUMN n INTEGER;\n")
    third = safe_apply(project, None, backup_root=tmp_path / "backups")
    assert third.preconditions is not None
    assert f"drift before the run: {outside}" in third.preconditions.warnings
    assert third.validation is not None
    assert third.validation.categories["schema"].warnings == [f"drift: {outside}"]
    assert drift(project).differences == [outside]


@pytest.mark.parametrize("setting", ["warn", "fail"])
def test_safe_apply_names_a_change_made_outside_ferry_during_the_run(
    maker: ProjectMaker, tmp_path: Path, setting: str
) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    maker.write("V2__z.sql", "CREATE TABLE z (id INTEGER PRIMARY KEY);\n")
    project = maker.project(extra=f'[checks]\nschema_drift = "{setting}"')
    commands.apply(project)
    maker.write("V3__a.sql", "ALTER TABLE a ADD COLUMN n INTEGER;\n")

    def meddle(result: StepResult) -> None:
        # someone else alters `z` while the run holds the lock; no migration names `z`
        engine = engine_for(maker.url)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE z ADD COLUMN late INTEGER"))
        engine.dispose()

    message = "changed outside Ferry during the run: column `z.late` was added outside Ferry"
    if setting == "fail":
        with pytest.raises(RolledBack, match="changed outside Ferry during the run"):
            safe_apply(project, None, backup_root=tmp_path / "backups", on_result=meddle)
        assert [line.state for line in commands.status(project).lines][-1] == "pending"
    else:
        report = safe_apply(project, None, backup_root=tmp_path / "backups", on_result=meddle)
        assert report.validation is not None
        assert report.validation.categories["schema"].warnings == [message]
        assert report.validation.status == "passed"


def test_cli_apply_reports_drift_as_a_warning(
    maker: ProjectMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    from ferry.cli.app import main

    def run(*args: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exited:
            main(["-c", str(maker.root), *args])
        code = exited.value.code
        return (code if isinstance(code, int) else int(code is not None)), capsys.readouterr().out

    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    maker.project()
    assert run("apply")[0] == 0
    engine = engine_for(maker.url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    maker.write("V2__b.sql", "CREATE TABLE b (id INTEGER PRIMARY KEY);\n")
    code, out = run("apply")
    assert code == 0
    assert "warning: schema: drift: table `notes` exists but no applied migration" in out
    maker.write("V3__c.sql", "CREATE TABLE c (id INTEGER PRIMARY KEY);\n")
    code, out = run("apply", "--json")
    assert code == 0
    schema = json.loads(out)["validation"]["categories"]["schema"]
    assert schema["status"] == "passed"
    assert schema["details"]["drift"] == [
        "table `notes` exists but no applied migration creates it"
    ]
    code, out = run("drift")
    assert code == 12
    assert "compared with the snapshot of run" in " ".join(out.split())
