"""Production mode: a migration that cannot get its lock gives up after the statement lock
timeout and is retried with backoff, instead of queueing behind a long transaction (and
making everyone else queue behind it)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from ferry.config.project import load_project
from ferry.rollback.safe import safe_apply
from ferry.schema import commands
from tests.conftest import ProjectMaker, engine_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_lock_timeout_then_retry_succeeds(maker: ProjectMaker, tmp_path: Path) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    maker.project(extra="statement_lock_timeout = 1\nlock_retries = 4")
    project = load_project(maker.root / "ferry.toml")
    commands.apply(project)
    maker.write("V2__b.sql", "ALTER TABLE a ADD COLUMN n INTEGER;\n")

    engine = engine_for(maker.url)
    holder = engine.connect()
    holder.execute(text("SELECT * FROM a"))  # an open transaction that read `a`
    release = threading.Timer(1.5, holder.rollback)
    release.start()
    started = time.monotonic()
    try:
        report = safe_apply(project, None, backup_root=tmp_path / "backups", production=True)
    finally:
        release.join()
        holder.close()
        engine.dispose()
    waited = time.monotonic() - started
    assert [str(r.step.script.version) for r in report.results] == ["2"]
    # At least one timed-out attempt (1 s) and one backoff (1 s) before it went through.
    assert waited >= 1.5
    assert [line.state for line in commands.status(project).lines] == ["applied", "applied"]
