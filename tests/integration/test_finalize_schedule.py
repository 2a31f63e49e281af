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
from ferry.data.tables import ForeignKeySpec
from ferry.db.target import Target, open_url
from tests.conftest import engine_for, new_database
from tests.integration.test_copy_resume import _execute

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


PARENT_KEY = ForeignKeySpec("child_parent_id_fkey", ["parent_id"], "parent", ["id"])


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
    step = builder._foreign_key(child, PARENT_KEY, exists=False, weight=0)
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
    step = builder._foreign_key(child, PARENT_KEY, exists=True, weight=0)
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


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(query)).all()]
    finally:
        engine.dispose()


def _scalar(url: str, query: str) -> Any:
    return _rows(url, query)[0][0]


def test_per_table_keys_start_while_another_table_still_loads(
    pair: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = pair
    _execute(
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


def _spec(pair: tuple[str, str], job: Path, load: str = "") -> Any:
    source, target = pair
    return parse_job(f'source: "{source}"\ntarget: "{target}"\n{load}', path=job)


def test_a_resumed_copy_builds_the_primary_key(
    pair: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On the rerun the target table exists, read back without the key the first run never
    # got to build: the key comes from the table as designed.
    source, target = pair
    _execute(
        source,
        "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)",
        "INSERT INTO items SELECT g, g FROM generate_series(1, 5000) g",
    )
    job = tmp_path / "job.yaml"
    spec = _spec(pair, job, "load: {workers: 1, batch_size: 1000}\n")
    original = copy_module._Job.run_chunk
    calls = [0]

    def third_fails(self: Any, plan: Any, transformer: Any, chunk: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("killed")
        original(self, plan, transformer, chunk)

    monkeypatch.setattr(copy_module._Job, "run_chunk", third_fails)
    with pytest.raises(RuntimeError):
        copy_data(spec, spec_path=job)
    monkeypatch.setattr(copy_module._Job, "run_chunk", original)
    report = copy_data(spec, spec_path=job)
    assert report.status == "completed"
    assert not report.warnings
    assert _rows(target, "SELECT count(*) FROM items") == [(5000,)]
    assert _rows(
        target,
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'items'::regclass AND contype = 'p'",
    ) == [(1,)]


def test_foreign_keys_in_both_directions_are_all_built(
    pair: tuple[str, str], tmp_path: Path
) -> None:
    source, target = pair
    statements = []
    for i in range(3):
        statements += [
            f"CREATE TABLE a{i} (id int PRIMARY KEY, b_id int)",
            f"CREATE TABLE b{i} (id int PRIMARY KEY, a_id int REFERENCES a{i} (id))",
            f"ALTER TABLE a{i} ADD FOREIGN KEY (b_id) REFERENCES b{i} (id)",
            f"INSERT INTO b{i} SELECT g, NULL FROM generate_series(1, 2000) g",
            f"INSERT INTO a{i} SELECT g, g FROM generate_series(1, 2000) g",
            f"UPDATE b{i} SET a_id = id",
        ]
    _execute(source, *statements)
    job = tmp_path / "job.yaml"
    report = copy_data(_spec(pair, job, "load: {workers: 4}\n"), spec_path=job)
    assert not report.warnings
    valid = "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated"
    assert _rows(target, valid) == [(6,)]


def test_a_failed_key_builder_start_still_restores_what_was_set_aside(
    pair: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = pair
    _execute(
        source,
        "CREATE TABLE items (id int PRIMARY KEY, v int)",
        "INSERT INTO items SELECT g, g FROM generate_series(1, 100) g",
        "CREATE TABLE fresh (id int PRIMARY KEY)",
    )
    _execute(
        target,
        "CREATE TABLE items (id int PRIMARY KEY, v int)",
        "CREATE INDEX items_v ON items (v)",
    )

    def fails(self: Any, plans: Any, report: Any) -> None:
        raise RuntimeError("catalog read failed")

    monkeypatch.setattr(copy_module._Job, "key_builder", fails)
    job = tmp_path / "job.yaml"
    with pytest.raises(RuntimeError, match="catalog read failed"):
        copy_data(_spec(pair, job, "load: {keys: per_table}\n"), spec_path=job)
    assert _rows(target, "SELECT indexname FROM pg_indexes WHERE indexname = 'items_v'") == [
        ("items_v",)
    ]


def test_a_key_step_lost_to_a_connection_error_fails_the_copy_and_the_rerun_builds_it(
    pair: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import exc as sa_exc

    from ferry.db.postgresql import PostgresAdapter
    from ferry.errors import FerryError

    source, target = pair
    _execute(
        source,
        "CREATE TABLE p (id int PRIMARY KEY)",
        "CREATE TABLE c (id int PRIMARY KEY, p_id int REFERENCES p (id))",
        "INSERT INTO p VALUES (1)",
        "INSERT INTO c VALUES (1, 1)",
    )
    original = PostgresAdapter.reset_identity

    def lost(self: Any, conn: Any, table: Any) -> None:
        if table.name == "p":
            raise sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        original(self, conn, table)

    monkeypatch.setattr(PostgresAdapter, "reset_identity", lost)
    job = tmp_path / "job.yaml"
    with pytest.raises(FerryError, match=r"building the keys .* failed.*server closed"):
        copy_data(_spec(pair, job), spec_path=job)
    monkeypatch.setattr(PostgresAdapter, "reset_identity", original)
    report = copy_data(_spec(pair, job), spec_path=job)
    assert report.status == "completed"
    assert _rows(target, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == [(1,)]
    keys = "SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND conrelid::regclass::text IN "
    assert _rows(target, keys + "('p', 'c')") == [(2,)]
