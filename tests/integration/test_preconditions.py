"""Preconditions before a run: altered objects must exist; long transactions holding locks
on touched tables are named."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from ferry.errors import StrategyError
from ferry.rollback.safe import safe_apply
from ferry.schema import commands
from ferry.schema.commands import open_session
from ferry.schema.preconditions import check_preconditions
from tests.conftest import ProjectMaker, engine_for

pytestmark = pytest.mark.integration


def test_missing_table_is_an_error_and_nothing_changes(maker: ProjectMaker, tmp_path: Path) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    maker.write(
        "V2__b.sql",
        "ALTER TABLE a ADD COLUMN n INTEGER;\nALTER TABLE ghost ADD COLUMN n INTEGER;\n",
    )
    project = maker.project()
    plan = commands.plan(project)
    assert plan.preconditions is not None
    assert plan.preconditions.errors == [
        "V2__b.sql changes table `ghost`, which the target does not have and no earlier "
        "migration of the plan creates"
    ]
    with pytest.raises(StrategyError, match="preconditions fail"):
        safe_apply(project, None, backup_root=tmp_path / "backups")
    assert [line.state for line in commands.status(project).lines] == ["pending", "pending"]


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_long_transaction_on_a_touched_table_is_named(maker: ProjectMaker) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    project = maker.project()
    commands.apply(project)
    maker.write("V2__b.sql", "ALTER TABLE a ADD COLUMN n INTEGER;\n")
    holder = engine_for(maker.url)
    conn = holder.connect()
    try:
        conn.execute(text("SELECT * FROM a FOR UPDATE"))  # opens a transaction, locks a
        time.sleep(2.2)
        with open_session(project, None) as session:
            plan = commands.plan(project)
            found = check_preconditions(
                session.target,
                [p.step for p in plan.planned],
                {p.step.script.name: [s.sql for s in p.statements] for p in plan.planned},
                long_after=1,
            )
        assert "a" in found.tables
        assert found.errors == []
        assert len(found.warnings) == 1
        assert "open" in found.warnings[0]
    finally:
        conn.rollback()
        conn.close()
        holder.dispose()
