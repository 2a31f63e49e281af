"""`ferry lint` and the risk in `ferry plan`, through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ferry.cli.app import main

pytestmark = pytest.mark.integration


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    return code, capsys.readouterr().out


def _project(tmp_path: Path) -> Path:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "ferry.toml").write_text(
        '[migrations]\nfolders = ["migrations"]\n\n[targets.dev]\nurl = "sqlite:///dev.db"\n'
    )
    (tmp_path / "migrations" / "V1__cameras.sql").write_text(
        "CREATE TABLE cameras (id INTEGER PRIMARY KEY, name VARCHAR(50));\n"
        "INSERT INTO cameras VALUES (1, 'a');\n"
    )
    (tmp_path / "migrations" / "U1__cameras.sql").write_text("DROP TABLE cameras;\n")
    return tmp_path


def test_lint_rates_pending_migrations_and_gates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    assert _run(["-c", str(project), "apply"], capsys)[0] == 0
    (project / "migrations" / "V2__drop.sql").write_text(
        "-- clean up\nDELETE FROM cameras;\nDROP TABLE cameras;\n"
    )
    code, out = _run(["-c", str(project), "lint", "--json"], capsys)
    assert code == 8
    found = json.loads(out)
    assert found["overall"] == "high"
    rules = {(f["rule"], f["line"]) for f in found["findings"]}
    assert ("delete-without-where", 2) in rules
    assert ("drop-table", 3) in rules
    assert _run(["-c", str(project), "lint", "--fail-on", "never"], capsys)[0] == 0
    # Silenced per statement, the remaining risk is only the missing undo script.
    (project / "migrations" / "V2__drop.sql").write_text(
        "-- ferry:allow delete-without-where\nDELETE FROM cameras;\n"
        "-- ferry:allow drop-table\nDROP TABLE cameras;\n"
    )
    code, out = _run(["-c", str(project), "plan", "--json"], capsys)
    assert code == 0
    plan = json.loads(out)
    assert [f["rule"] for f in plan["risk"]["findings"]] == ["no-undo"]
    assert plan["risk"]["overall"] == "medium"
