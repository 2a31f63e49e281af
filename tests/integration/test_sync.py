"""Delta capture: `ferry copy` installs capture triggers on the source for `mode: delta`
tables and copies the rows; `ferry sync` replays later inserts, updates (a changed primary
key too) and deletes on the target, as mapped; `--follow` keeps replaying; `--stop` removes
the triggers and the log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from ferry.data.copy import CopyReport
from ferry.data.delta import SyncReport, sync_job
from ferry.data.spec import parse_job
from ferry.errors import ConfigError
from tests.conftest import engine_for
from tests.integration.test_copy import Pair, make_pair

pytestmark = pytest.mark.integration

PG, MY, LITE = "postgresql", "mysql", "sqlite"
SHORT = {PG: "pg", MY: "mariadb", LITE: "sqlite"}
ROOT = Path(__file__).resolve().parents[2]


def pair_id(pair: tuple[str, str]) -> str:
    return f"{SHORT[pair[0]]}-to-{SHORT[pair[1]]}"


DELTA_PAIRS = [(PG, PG), (MY, PG), (LITE, LITE), (PG, MY)]

JOB = """
tables:
  accounts:
    mode: delta
    columns: {id: account_id, name: full_name, status: state}
    values:
      state: {map: {A: active, I: inactive}}
  notes:
load: {batch_size: 3}
"""
STATES = {"A": "active", "I": "inactive"}
ACCOUNTS = [
    (1, "alice", "A"),
    (2, "bob", "I"),
    (3, "carol", "A"),
    (4, "dave", "A"),
    (5, "erin", "I"),
]


@pytest.fixture(params=DELTA_PAIRS, ids=pair_id)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with make_pair(request.param, tmp_path) as made:
        yield made


def query(url: str, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params or {}).all()]
    finally:
        engine.dispose()


def make_source(pair: Pair) -> None:
    pair.source_sql(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, "
        "status CHAR(1) NOT NULL)"
    )
    pair.source_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR(40))")
    pair.source_sql(
        "INSERT INTO accounts VALUES (:i, :n, :s)",
        [{"i": i, "n": n, "s": s} for i, n, s in ACCOUNTS],
    )
    pair.source_sql("INSERT INTO notes VALUES (1, 'hello')")


def job_path(pair: Pair, body: str = JOB) -> Path:
    path = pair.folder / "job.yaml"
    path.write_text(pair.spec_text(body), encoding="utf-8")
    return path


def sync(pair: Pair, body: str = JOB, **options: Any) -> SyncReport:
    path = job_path(pair, body)
    return sync_job(
        parse_job(path.read_text(encoding="utf-8"), path=path), spec_path=path, **options
    )


def mapped_source(pair: Pair) -> list[tuple[Any, ...]]:
    """The source's accounts as the job maps them (rows with unmapped states left out)."""
    rows = query(pair.source, "SELECT id, name, status FROM accounts ORDER BY id")
    return [(i, n, STATES[s]) for i, n, s in rows if s in STATES]


def target_accounts(pair: Pair) -> list[tuple[Any, ...]]:
    return pair.rows("accounts", "account_id", "full_name", "state")


def source_triggers(pair: Pair) -> list[str]:
    """Names of the source's triggers on `accounts` and `notes`."""
    if pair.source_dialect == PG:
        sql = (
            "SELECT g.tgname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
            "WHERE NOT g.tgisinternal AND c.relname IN ('accounts', 'notes') ORDER BY 1"
        )
    elif pair.source_dialect == MY:
        sql = (
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1"
        )
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY 1"
    return [r[0] for r in query(pair.source, sql)]


def capture_function(pair: Pair) -> list[str]:
    return [
        r[0] for r in query(pair.source, "SELECT proname FROM pg_proc WHERE proname LIKE 'ferry%'")
    ]


def source_has_log(pair: Pair) -> bool:
    engine = engine_for(pair.source)
    try:
        return inspect(engine).has_table("ferry_delta_log")
    finally:
        engine.dispose()


def expected_triggers(pair: Pair) -> list[str]:
    if pair.source_dialect == PG:
        return ["ferry_delta_accounts", "ferry_delta_accounts_t"]
    return ["ferry_delta_accounts_d", "ferry_delta_accounts_i", "ferry_delta_accounts_u"]


def copy_with_capture(pair: Pair) -> CopyReport:
    make_source(pair)
    report = pair.copy(JOB)
    assert report.status == "completed"
    assert sorted(report.delta_triggers) == expected_triggers(pair)
    assert source_triggers(pair) == expected_triggers(pair)  # none on `notes`
    assert source_has_log(pair)
    # Ferry's own capture triggers are not something for a person to translate.
    assert not [n for n in report.needs_translation if "ferry" in n]
    assert target_accounts(pair) == mapped_source(pair)
    assert pair.rows("notes") == [(1, "hello")]
    return report


# ------------------------------------------------------------------------ copy and sync


def test_sync_replays_inserts_updates_and_deletes(pair: Pair) -> None:
    copy_with_capture(pair)
    assert sync(pair).applied_entries == 0  # nothing changed since the copy

    pair.source_sql("INSERT INTO accounts VALUES (6, 'frank', 'A'), (7, 'gina', 'I')")
    pair.source_sql("UPDATE accounts SET name = 'bobby' WHERE id = 2")
    pair.source_sql("UPDATE accounts SET status = 'I' WHERE id = 3")
    pair.source_sql("UPDATE accounts SET id = 40, name = 'david' WHERE id = 4")  # a new key
    pair.source_sql("DELETE FROM accounts WHERE id = 5")
    pair.source_sql("INSERT INTO accounts VALUES (8, 'temp', 'A')")
    pair.source_sql("DELETE FROM accounts WHERE id = 8")  # never reaches the target
    pair.source_sql("UPDATE accounts SET name = 'franky' WHERE id = 6")
    pair.source_sql("INSERT INTO accounts VALUES (9, 'ivan', 'X')")  # unmapped: rejected
    pair.source_sql("UPDATE notes SET body = 'changed'")  # not a delta table

    report = sync(pair)

    # I6, I7, U2, U3, D4 + U40, D5, I8, D8, U6, I9
    assert report.applied_entries == 11
    assert report.upserted == 5  # 2, 3, 6, 7, 40
    assert report.deleted == 2  # 4, 5 (8 never arrived)
    assert report.rejected == 1
    assert report.last_id >= 11
    assert target_accounts(pair) == mapped_source(pair)
    assert target_accounts(pair) == [
        (1, "alice", "active"),
        (2, "bobby", "inactive"),
        (3, "carol", "inactive"),
        (6, "franky", "active"),
        (7, "gina", "inactive"),
        (40, "david", "active"),
    ]
    assert pair.rows("notes") == [(1, "hello")]
    assert [(t, k, r) for t, k, r, _, _ in pair.rejects()] == [("accounts", [9], "value_map:state")]

    again = sync(pair)

    assert (again.applied_entries, again.upserted, again.deleted) == (0, 0, 0)
    assert again.last_id == report.last_id
    assert target_accounts(pair) == mapped_source(pair)

    stopped = sync(pair, stop=True)

    assert stopped.applied_entries == 0
    assert source_triggers(pair) == []
    assert not source_has_log(pair)
    if pair.source_dialect == PG:
        assert capture_function(pair) == []
    # A change after the stop is not captured: no trigger fires, no log holds it.
    pair.source_sql("INSERT INTO accounts VALUES (10, 'late', 'A')")
    assert source_triggers(pair) == []
    assert not source_has_log(pair)
    assert (10, "late", "active") not in target_accounts(pair)


# ------------------------------------------------------------------------------ follow


@pytest.mark.parametrize("dialects", [(PG, MY), (LITE, LITE)], ids=pair_id)
def test_follow_replays_changes_made_while_it_runs(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    with make_pair(dialects, tmp_path) as pair:
        copy_with_capture(pair)
        path = job_path(pair)
        spec = parse_job(path.read_text(encoding="utf-8"), path=path)
        results: list[SyncReport] = []
        errors: list[BaseException] = []
        rounds: list[int] = []

        def follow() -> None:
            try:
                results.append(
                    sync_job(
                        spec,
                        spec_path=path,
                        follow=True,
                        interval=0.2,
                        max_seconds=2,
                        on_round=lambda r: rounds.append(r.applied_entries),
                    )
                )
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=follow)
        started = time.monotonic()
        thread.start()
        for n in range(5):
            pair.source_sql(
                "INSERT INTO accounts VALUES (:i, :n, 'A')", [{"i": 100 + n, "n": f"new{n}"}]
            )
            pair.source_sql(
                "UPDATE accounts SET name = :n WHERE id = :i", [{"i": n + 1, "n": f"renamed{n}"}]
            )
            if n % 2:
                pair.source_sql("DELETE FROM accounts WHERE id = :i", [{"i": 100 + n - 1}])
            time.sleep(0.15)
        thread.join(timeout=15)

        assert not thread.is_alive()
        assert errors == []
        elapsed = time.monotonic() - started
        assert 2 <= elapsed < 10
        (report,) = results
        assert len(rounds) >= 2  # changes arrived over several polls
        assert report.rounds > len(rounds)
        # --max-seconds ends the follow even while changes keep coming: on a slow machine
        # the last writes can land after it, and the next sync replays them.
        rest = sync(pair)
        assert report.applied_entries + rest.applied_entries == 12  # 5 in, 5 up, 2 del
        assert target_accounts(pair) == mapped_source(pair)
        assert len(target_accounts(pair)) == 8


# --------------------------------------------------------------------------------- CLI


def test_cli_sync_prints_json(tmp_path: Path) -> None:
    with make_pair((LITE, LITE), tmp_path) as pair:
        copy_with_capture(pair)
        pair.source_sql("UPDATE accounts SET name = 'al' WHERE id = 1")
        pair.source_sql("DELETE FROM accounts WHERE id = 2")
        path = job_path(pair)

        def run(*args: str) -> dict[str, Any]:
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
            done = subprocess.run(
                [sys.executable, "-m", "ferry", "sync", str(path), *args, "--json"],
                capture_output=True,
                text=True,
                cwd=pair.folder,
                env=env,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            return dict(json.loads(done.stdout))

        out = run()

        assert out["job"] == "job"
        assert out["applied_entries"] == 2
        assert (out["upserted"], out["deleted"], out["rejected"]) == (1, 1, 0)
        assert out["stopped_capture"] is False
        assert target_accounts(pair) == mapped_source(pair)

        stopped = run("--stop")

        assert stopped["stopped_capture"] is True
        assert source_triggers(pair) == []
        assert not source_has_log(pair)


# --------------------------------------------------------------------------- bad input


def test_sync_without_delta_tables_is_a_config_error(tmp_path: Path) -> None:
    with make_pair((LITE, LITE), tmp_path) as pair:
        make_source(pair)
        pair.copy("tables:\n  accounts:\n")
        with pytest.raises(ConfigError, match=r"no table of this job has `mode: delta`") as info:
            sync(pair, "tables:\n  accounts:\n")
        assert info.value.key == "tables"
        assert source_triggers(pair) == []
        assert not source_has_log(pair)


def test_sync_before_the_copy_is_a_config_error(tmp_path: Path) -> None:
    with make_pair((LITE, LITE), tmp_path) as pair:
        make_source(pair)
        with pytest.raises(ConfigError, match=r"target has no table for accounts") as info:
            sync(pair)
        assert "ferry copy" in str(info.value)


# ------------------------------------------------------------------------- row filters


@pytest.mark.parametrize("dialects", [(LITE, LITE), (MY, PG)], ids=pair_id)
def test_sync_honours_the_row_filter(dialects: tuple[str, str], tmp_path: Path) -> None:
    """A filtered delta table stays filtered: sync brings in no row the copy would leave
    out, and takes out a row that no longer passes."""
    body = JOB.replace("    mode: delta\n", "    mode: delta\n    where: \"status = 'A'\"\n")
    with make_pair(dialects, tmp_path) as pair:
        make_source(pair)
        pair.copy(body)
        active = [(i, n, "active") for i, n, s in ACCOUNTS if s == "A"]
        assert target_accounts(pair) == active

        pair.source_sql("UPDATE accounts SET name = 'bobby' WHERE id = 2")  # still inactive
        pair.source_sql("UPDATE accounts SET status = 'I' WHERE id = 3")  # no longer passes
        pair.source_sql("INSERT INTO accounts VALUES (6, 'frank', 'I'), (7, 'gina', 'A')")

        sync(pair, body)

        assert target_accounts(pair) == [
            (1, "alice", "active"),
            (4, "dave", "active"),
            (7, "gina", "active"),
        ]
