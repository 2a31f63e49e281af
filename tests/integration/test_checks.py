"""Application and performance checks: `ferry check`, and safe mode rolling back a run that
breaks an application query."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.config.project import ChecksSettings, QueryCheck
from ferry.db.target import open_url
from ferry.rollback.safe import RolledBack, safe_apply
from ferry.schema import commands
from ferry.validate.queries import check_queries
from tests.conftest import ProjectMaker

pytestmark = pytest.mark.integration

CHECKS = """
[checks]
runs = 3

[[checks.application]]
name = "camera by name"
sql = "SELECT id FROM cameras WHERE name = :name"
params = {name = "north"}

[[checks.performance]]
name = "all cameras"
sql = "SELECT COUNT(*) FROM cameras"
"""


def test_safe_mode_rolls_back_a_run_that_breaks_an_application_query(
    maker: ProjectMaker, tmp_path: Path
) -> None:
    maker.write(
        "V1__cameras.sql",
        "CREATE TABLE cameras (id INTEGER PRIMARY KEY, "
        "name VARCHAR(20));\nINSERT INTO cameras VALUES (1, 'north');\n",
    )
    project = maker.project(extra="", targets=None)
    (maker.root / "ferry.toml").write_text((maker.root / "ferry.toml").read_text() + CHECKS)
    from ferry.config.project import load_project

    project = load_project(maker.root / "ferry.toml")
    commands.apply(project)
    target = open_url("t", maker.url)
    report = check_queries(target, project.config.checks)
    target.dispose()
    assert report.status == "passed"
    assert "all cameras" in report.categories["performance"].details

    maker.write("V2__rename.sql", "ALTER TABLE cameras RENAME COLUMN name TO label;\n")
    with pytest.raises(RolledBack, match=r"(?s)application query `camera by name` fails"):
        safe_apply(project, None, backup_root=tmp_path / "backups")
    assert [line.state for line in commands.status(project).lines] == ["applied", "pending"]
    target = open_url("t", maker.url)
    assert check_queries(target, project.config.checks).status == "passed"
    target.dispose()


def test_check_reports_a_failing_application_query(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    target = open_url("t", url)
    checks = ChecksSettings(application=[QueryCheck(name="gone", sql="SELECT * FROM nope")])
    report = check_queries(target, checks)
    target.dispose()
    assert report.status == "failed"
    assert report.categories["application"].errors[0].startswith("application query `gone` fails")
