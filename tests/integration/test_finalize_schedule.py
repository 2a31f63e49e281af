"""Building keys after a copy: a table's keys start as soon as its own data is complete, while
other tables still load; foreign keys are added NOT VALID and then validated, and one that
orphans refuse is dropped again and named; only the heaviest build keeps the server's
parallel workers, and the settings that tune a build stay in its own transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, text

from ferry.data import copy as copy_module
from ferry.data.copy import copy_data
from ferry.data.finalize import KeyBuilder, Step
from ferry.data.spec import parse_job
from ferry.db.target import Target, open_url
from tests.conftest import engine_for, new_database

pytestmark = pytest.mark.integration

SETTING = "max_parallel_maintenance_workers"


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Target]:
    url, drop = new_database("postgresql", tmp_path)
    target = open_url("t", url)
    with target.connect() as conn:
        # whatever the server's own default, new sessions here start with 2
        name = conn.execute(text("SELECT current_database()")).scalar()
        conn.execute(text(f'ALTER DATABASE "{name}" SET {SETTING} = 2'))
        conn.execute(text("CREATE TABLE seen (n serial, step text, workers text)"))
        conn.commit()
    target.dispose()
    target = open_url("t", url)
    yield target
    target.dispose()
    drop()


def _builder(target: Target, warnings: list[str]) -> KeyBuilder:
    return KeyBuilder(target, [], workers=2, warn=warnings.append, weights={})


def _seen(target: Target) -> list[tuple[str, str]]:
    with target.connect() as conn:
        rows = conn.execute(text("SELECT step, workers FROM seen ORDER BY n")).all()
        conn.commit()
    return [(str(step), str(workers)) for step, workers in rows]


def _probe(name: str, setting: str = SETTING) -> Step:
    sql = f"INSERT INTO seen (step, workers) SELECT '{name}', current_setting('{setting}')"
    return Step("seen", name, (sql,))


def test_a_build_held_back_has_no_parallel_workers_and_the_setting_ends_with_it(
    pg: Target,
) -> None:
    warnings: list[str] = []
    builder = _builder(pg, warnings)
    builder._run(_probe("held"), serial=True)
    builder._run(_probe("heaviest"))
    builder.finish()
    assert not warnings
    assert _seen(pg) == [("held", "0"), ("heaviest", "2")]
    # SET LOCAL ended with each step's transaction: pooled connections are as before.
    for _ in range(3):
        with pg.connect() as conn:
            assert str(conn.execute(text(f"SHOW {SETTING}")).scalar()) == "2"
            conn.commit()


def test_a_setting_the_server_refuses_does_not_stop_the_build(
    pg: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    builder = _builder(pg, warnings)
    monkeypatch.setattr(
        builder.adapter, "serial_index_build_sql", ("SET LOCAL ferry_no_such.setting_x = ",)
    )
    builder._run(_probe("held"), serial=True)
    builder.finish()
    assert not warnings
    assert [step for step, _ in _seen(pg)] == ["held"]


def test_steps_commit_unflushed_and_the_setting_stays_in_their_transaction(pg: Target) -> None:
    builder = _builder(pg, [])
    builder._run(_probe("a", "synchronous_commit"))
    builder.finish()
    assert _seen(pg) == [("a", "off")]
    with pg.connect() as conn:
        assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
        conn.commit()


def test_a_foreign_key_that_fails_its_check_is_dropped_and_named(pg: Target) -> None:
    with pg.connect() as conn:
        conn.execute(text("CREATE TABLE parent (id int PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE child (id int PRIMARY KEY, parent_id int)"))
        conn.execute(text("INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1), (2, 9)"))
        conn.commit()
    warnings: list[str] = []
    builder = _builder(pg, warnings)
    meta = MetaData()
    Table("parent", meta, autoload_with=pg.engine)
    child = Table("child", meta, autoload_with=pg.engine)
    step = builder._foreign_key(
        child, "child_parent_id_fkey", ["parent_id"], "parent", ["id"], exists=False, weight=0
    )
    assert step is not None
    assert step.sql[0].endswith("NOT VALID")
    builder._run(step)
    builder.finish()
    assert len(warnings) == 1
    assert "foreign key child_parent_id_fkey on `child` was not created" in warnings[0]
    with pg.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM pg_constraint WHERE contype = 'f'"))
        assert left.scalar() == 0
        conn.commit()


def test_a_foreign_key_a_stopped_run_left_not_valid_is_validated(pg: Target) -> None:
    with pg.connect() as conn:
        conn.execute(text("CREATE TABLE parent (id int PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE child (id int PRIMARY KEY, parent_id int)"))
        conn.execute(text("INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1)"))
        conn.execute(
            text(
                "ALTER TABLE child ADD CONSTRAINT child_parent_id_fkey FOREIGN KEY (parent_id) "
                "REFERENCES parent (id) NOT VALID"
            )
        )
        conn.commit()
    warnings: list[str] = []
    builder = _builder(pg, warnings)
    meta = MetaData()
    child = Table("child", meta, autoload_with=pg.engine)
    step = builder._foreign_key(
        child, "child_parent_id_fkey", ["parent_id"], "parent", ["id"], exists=True, weight=0
    )
    assert step is not None
    builder._run(step)
    builder.finish()
    assert not warnings
    with pg.connect() as conn:
        valid = conn.execute(text("SELECT convalidated FROM pg_constraint WHERE contype = 'f'"))
        assert valid.scalar() is True
        conn.commit()


# --- through a copy ---


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    source, drop_source = new_database("postgresql", tmp_path)
    target, drop_target = new_database("postgresql", tmp_path)
    yield source, target
    drop_target()
    drop_source()


def _sql(url: str, *statements: str) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _scalar(url: str, query: str) -> Any:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar()
    finally:
        engine.dispose()


def test_per_table_keys_start_while_another_table_still_loads(
    pair: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = pair
    _sql(
        source,
        "CREATE TABLE cameras (camera_id int PRIMARY KEY, name text NOT NULL)",
        "CREATE TABLE counts (id bigint PRIMARY KEY, camera_id int NOT NULL "
        "REFERENCES cameras (camera_id), count int NOT NULL)",
        "CREATE INDEX counts_camera ON counts (camera_id)",
        "CREATE TABLE late (id int PRIMARY KEY, camera_id int REFERENCES cameras (camera_id))",
        "INSERT INTO cameras SELECT g, 'cam ' || g FROM generate_series(1, 20) g",
        "INSERT INTO counts SELECT g, 1 + g % 20, g % 7 FROM generate_series(1, 5000) g",
        "INSERT INTO late SELECT g, 1 + g % 20 FROM generate_series(1, 100) g",
    )
    # `late` cannot finish loading until the keys of `counts` exist in the target.
    keyed = threading.Event()
    original = copy_module._Job.run_chunk

    def run_chunk(self: Any, plan: Any, transformer: Any, chunk: Any) -> None:
        if plan.name == "late":
            assert keyed.wait(20), "the keys of `counts` did not start during the load"
        original(self, plan, transformer, chunk)

    def watch() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                found = _scalar(
                    target,
                    "SELECT count(*) FROM pg_constraint WHERE conrelid = 'counts'::regclass "
                    "AND contype IN ('p', 'f') AND convalidated",
                )
            except Exception:  # the table is not there yet
                found = 0
            if found == 2:
                keyed.set()
                return
            time.sleep(0.02)

    monkeypatch.setattr(copy_module._Job, "run_chunk", run_chunk)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    job = tmp_path / "job.yaml"
    spec = parse_job(
        f'source: "{source}"\ntarget: "{target}"\nload: {{workers: 2, keys: per_table}}\n', path=job
    )
    report = copy_data(spec, spec_path=job)
    watcher.join()
    assert report.status == "completed"
    assert not report.warnings
    assert keyed.is_set()
    constraints = _scalar(
        target,
        "SELECT string_agg(c, ' ' ORDER BY c) FROM (SELECT conrelid::regclass::text || ':' || "
        "contype::text || ':' || convalidated::text AS c FROM pg_constraint "
        "WHERE conrelid::regclass::text IN ('cameras', 'counts', 'late')) s",
    )
    assert constraints == ("cameras:p:true counts:f:true counts:p:true late:f:true late:p:true")
    assert _scalar(target, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'counts%'") == 2
