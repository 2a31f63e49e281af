"""`ferry quickstart`: the camera-counting demo on SQLite, with no server."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import ferry
from ferry.config.project import load_project
from ferry.data.copy import CopyReport, copy_data
from ferry.data.spec import load_job
from ferry.errors import ConfigError
from ferry.quickstart.legacy import LegacySummary, build_legacy_database
from ferry.schema import commands
from ferry.schema.execute import StepResult
from ferry.schema.history import HistoryRow
from ferry.validate.data import verify_job
from ferry.validate.report import ValidationReport

PROJECT_TOML = """\
# The camera-counting demo: a legacy database and the migrations of the new schema.
[migrations]
folders = ["migrations"]
strategy = "versioned"

[targets.new]
url = "sqlite:///new.db"

[targets.legacy]
url = "sqlite:///legacy.db"
"""


def example_project() -> Path:
    """The example project's folder: packaged in a wheel, or in the source tree."""
    packaged = Path(ferry.__file__).parent / "quickstart" / "example_project"
    if packaged.is_dir():
        return packaged
    return Path(ferry.__file__).resolve().parents[2] / "examples" / "camera-counting"


@dataclass
class QuickstartResult:
    folder: Path
    legacy: LegacySummary
    applied: list[StepResult]
    history: list[HistoryRow]
    copy: CopyReport | None = None
    validation: ValidationReport | None = None


def _refuse_foreign(folder: Path) -> None:
    """The demo's folder must be new, empty, or an earlier demo's (its ferry.toml says so):
    `ferry quickstart .` in a real project would delete its migrations."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(
            f"{folder} is a file, not a folder",
            hint="name a new folder: `ferry quickstart quickstart-demo`",
        )
    found = sorted(p.name for p in folder.iterdir())
    toml = folder / "ferry.toml"
    ours = toml.is_file() and toml.read_text(encoding="utf-8").startswith(
        PROJECT_TOML.splitlines()[0]
    )
    if found and not ours:
        shown = ", ".join(found[:6]) + (", ..." if len(found) > 6 else "")
        raise ConfigError(
            f"{folder.resolve()} is not empty and holds no earlier quickstart ({shown}); the "
            "quickstart writes ferry.toml, migrations/, legacy.db, new.db and copy.yaml "
            "there, replacing what is in their place, so it left the folder alone",
            hint="run it in an empty or new folder: `ferry quickstart quickstart-demo`",
        )


def run_quickstart(folder: Path) -> QuickstartResult:
    """Build the legacy database, migrate a new SQLite database to the new schema, then copy
    the legacy data into it with the example job's mappings and cleaning rules, and prove the
    copy row by row.

    Running it again starts over in the same folder; a folder that holds anything else is
    refused, since the demo replaces its ferry.toml, migrations/ and databases.
    """
    _refuse_foreign(folder)
    folder.mkdir(parents=True, exist_ok=True)
    legacy = build_legacy_database(folder / "legacy.db")
    migrations = folder / "migrations"
    if migrations.exists():
        shutil.rmtree(migrations)
    shutil.copytree(example_project() / "migrations", migrations)
    (folder / "new.db").unlink(missing_ok=True)
    (folder / "ferry.toml").write_text(PROJECT_TOML, encoding="utf-8")
    shutil.copy(example_project() / "copy.yaml", folder / "copy.yaml")
    project = load_project(folder / "ferry.toml")
    report = commands.apply(project, "new")
    job = folder / "copy.yaml"
    copied = copy_data(load_job(job), spec_path=job, project=project)
    proof = verify_job(load_job(job), spec_path=job, project=project)
    return QuickstartResult(
        folder, legacy, report.results, commands.history(project, "new"), copied, proof
    )
