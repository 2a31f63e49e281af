"""Building keys after a copy: the heaviest step starts first and is the only one left the
server's parallel workers; the setting that holds the others back stays in their own
transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from ferry.data.finalize import Step, _run
from ferry.db.target import Target, open_url
from tests.conftest import new_database

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


def _step(name: str, weight: int) -> Step:
    sql = f"INSERT INTO seen (step, workers) SELECT '{name}', current_setting('{SETTING}')"
    return Step("seen", name, sql, weight)


def _seen(target: Target) -> list[tuple[str, str]]:
    with target.connect() as conn:
        rows = conn.execute(text("SELECT step, workers FROM seen ORDER BY n")).all()
        conn.commit()
    return [(str(step), str(workers)) for step, workers in rows]


def test_only_the_heaviest_keeps_the_servers_workers(pg: Target) -> None:
    default = "2"
    steps = [_step("light", 1), _step("heavy", 100), _step("middle", 10)]
    warnings: list[str] = []
    _run(pg, steps, 2, warnings.append, serial_sql=pg.adapter.serial_index_build_sql)
    assert not warnings
    assert dict(_seen(pg)) == {"heavy": default, "middle": "0", "light": "0"}
    # SET LOCAL ended with each step's transaction: pooled connections are as before.
    for _ in range(3):
        with pg.connect() as conn:
            assert str(conn.execute(text(f"SHOW {SETTING}")).scalar()) == default
            conn.commit()


def test_heaviest_first_and_one_worker_holds_nothing_back(pg: Target) -> None:
    steps = [_step("light", 1), _step("heavy", 100), _step("middle", 10)]
    _run(pg, steps, 1, lambda _: None, serial_sql=pg.adapter.serial_index_build_sql)
    seen = _seen(pg)
    assert [step for step, _ in seen] == ["heavy", "middle", "light"]
    assert "0" not in {workers for _, workers in seen}


def test_a_setting_the_server_refuses_does_not_stop_the_build(pg: Target) -> None:
    steps = [_step("heavy", 100), _step("light", 1)]
    warnings: list[str] = []
    _run(pg, steps, 2, warnings.append, serial_sql=("SET LOCAL ferry_no_such.setting_x = ",))
    assert not warnings
    assert sorted(step for step, _ in _seen(pg)) == ["heavy", "light"]


def test_steps_commit_unflushed_and_the_setting_stays_in_their_transaction(pg: Target) -> None:
    steps = [
        Step(
            "seen",
            "a",
            "INSERT INTO seen (step, workers) SELECT 'a', current_setting('synchronous_commit')",
            1,
        ),
    ]
    _run(pg, steps, 1, lambda _: None, settings=pg.adapter.unflushed_commit_sql)
    assert _seen(pg) == [("a", "off")]
    with pg.connect() as conn:
        assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
        conn.commit()
