"""`ferry drift` on every dialect: nothing after a clean apply, each change outside Ferry
named after one."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ferry.schema import commands
from ferry.schema.drift import drift
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
