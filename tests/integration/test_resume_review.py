"""Review of checkpoints, resume and deferral: a `ferry copy` killed (SIGKILL) or stopped
(SIGTERM) at chosen moments, then run again, across dialect pairs, key kinds and load
strategies; and the indexes, foreign keys and triggers of existing target tables set aside
for a load and put back exactly, whatever stopped it.

Moments that polling alone could miss are pinned with locks: the test holds a lock that the
copy's next DDL statement waits for, sees it waiting in the server's activity view, and
stops the process there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from ferry.data.transform import DataError
from tests.conftest import engine_for
from tests.integration.test_copy import make_pair
from tests.integration.test_copy_modes import query
from tests.integration.test_copy_resume import (
    _cat,
    _copy_command,
    _execute,
    _kill_when_done,
    _series,
    children,
    make_db,
)

pytestmark = pytest.mark.integration

__all__ = ["children", "make_db"]  # fixtures, used by name

PG, MY, LITE = "postgresql", "mysql", "sqlite"
SHORT = {PG: "pg", MY: "mariadb", LITE: "sqlite"}
ROWS = 120_000
BATCH = 3_000
PARENTS = 20
BAD_EVERY = 997  # rows whose email the job's rule rejects
REJECTED = ROWS // BAD_EVERY
WAIT = 60.0  # generous bound on waiting for a moment the copy must reach


# ---------------------------------------------------------------------------- sources


def _key_columns(kind: str, dialect: str) -> tuple[str, list[str]]:
    """Column definitions of a table key of `kind`, and the key's column names."""
    if kind == "int":
        return "id INTEGER NOT NULL", ["id"]
    if kind == "str":
        return "k VARCHAR(20) NOT NULL", ["k"]
    if kind == "uuid":
        return ("k UUID NOT NULL" if dialect in (PG, MY) else "k CHAR(36) NOT NULL"), ["k"]
    return "a INTEGER NOT NULL, b INTEGER NOT NULL", ["a", "b"]


def _key_values(kind: str, dialect: str) -> str:
    """SELECT expressions of the key of row n."""
    if kind == "int":
        return "n"
    if kind == "str":
        return _cat(dialect, "'k'", "n")
    if kind == "uuid":
        if dialect == PG:
            return "md5(n::text)::uuid"
        # a valid version-4 UUID made of MD5(n)
        return (
            "CONCAT(SUBSTR(MD5(n), 1, 8), '-', SUBSTR(MD5(n), 9, 4), '-4', "
            "SUBSTR(MD5(n), 14, 3), '-a', SUBSTR(MD5(n), 18, 3), '-', SUBSTR(MD5(n), 21, 12))"
        )
    div = "n DIV 100" if dialect == MY else "n / 100"
    return f"{div}, n % 100"


def _items_ddl(kind: str, dialect: str, *, fk: bool) -> str:
    columns, key = _key_columns(kind, dialect)
    ref = " REFERENCES parents (id) ON DELETE CASCADE" if fk else ""
    return (
        f"CREATE TABLE items ({columns}, parent_id INTEGER NOT NULL{ref}, "
        "email VARCHAR(60), amount INTEGER NOT NULL, updated_at TIMESTAMP NULL, "
        f"PRIMARY KEY ({', '.join(key)}))"
    )


def _fill(dialect: str, url: str, kind: str) -> None:
    """`parents` and `items` (ROWS rows; every BAD_EVERY-th has an invalid email)."""
    bad = _cat(dialect, "'bad'", "n")
    good = _cat(dialect, "'u'", "n", "'@example.org'")
    name = _cat(dialect, "'p'", "n")
    stamp = {
        PG: "TIMESTAMP '2024-01-01 00:00:00' + n * INTERVAL '1 second'",
        MY: "TIMESTAMP '2024-01-01 00:00:00' + INTERVAL n SECOND",
        LITE: "datetime('2024-01-01 00:00:00', '+' || n || ' seconds')",
    }[dialect]
    _execute(
        url,
        "CREATE TABLE parents (id INTEGER PRIMARY KEY, name VARCHAR(30) NOT NULL)",
        f"INSERT INTO parents SELECT n, {name} FROM {_series(dialect, PARENTS)}",
        _items_ddl(kind, dialect, fk=True),
        f"INSERT INTO items SELECT {_key_values(kind, dialect)}, n % {PARENTS} + 1, "
        f"CASE WHEN n % {BAD_EVERY} = 0 THEN {bad} ELSE {good} END, n % 1000, {stamp} "
        f"FROM {_series(dialect, ROWS)}",
    )


def _existing_target(dialect: str, url: str, kind: str) -> None:
    """The target's own tables: a secondary index, a foreign key ON DELETE CASCADE and (on
    PostgreSQL) a trigger, which the copy sets aside and must put back."""
    _execute(
        url,
        "CREATE TABLE parents (id INTEGER PRIMARY KEY, name VARCHAR(30) NOT NULL)",
        "CREATE INDEX parents_name_ix ON parents (name)",
        _items_ddl(kind, dialect, fk=True),
        "CREATE INDEX items_amount_ix ON items (amount, parent_id)",
    )
    if dialect == PG:
        _execute(
            url,
            "CREATE FUNCTION keep_row() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RETURN NEW; END $$",
            "CREATE TRIGGER items_keep BEFORE INSERT ON items FOR EACH ROW "
            "EXECUTE FUNCTION keep_row()",
        )


def _snapshot(dialect: str, url: str, tables: tuple[str, ...]) -> dict[str, Any]:
    """What a user would check after the copy: every index (name, uniqueness, columns,
    order), foreign key (columns, target, rules) and trigger (enabled state) of `tables`."""
    names = ", ".join(f"'{t}'" for t in tables)
    if dialect == PG:
        return {
            "indexes": query(
                url,
                "SELECT tablename, indexname, indexdef FROM pg_indexes "
                f"WHERE schemaname = current_schema() AND tablename IN ({names}) ORDER BY 1, 2",
            ),
            "constraints": query(
                url,
                "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid), c.convalidated "
                "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
                f"WHERE t.relname IN ({names}) ORDER BY 1, 2",
            ),
            "triggers": query(
                url,
                "SELECT t.relname, g.tgname, g.tgenabled, pg_get_triggerdef(g.oid) "
                "FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid "
                f"WHERE t.relname IN ({names}) AND NOT g.tgisinternal ORDER BY 1, 2",
            ),
        }
    if dialect == MY:
        return {
            "indexes": query(
                url,
                "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, "
                "COLLATION, SUB_PART, INDEX_TYPE, INDEX_COMMENT FROM information_schema.STATISTICS "
                f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({names}) ORDER BY 1, 2, 3",
            ),
            "constraints": query(
                url,
                "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, "
                "k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE "
                "FROM information_schema.KEY_COLUMN_USAGE k "
                "JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
                "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA "
                "AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
                f"WHERE k.TABLE_SCHEMA = DATABASE() AND k.TABLE_NAME IN ({names}) "
                "ORDER BY 1, 2, k.ORDINAL_POSITION",
            ),
            "triggers": query(
                url,
                "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_STATEMENT "
                "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1",
            ),
        }
    return {
        "schema": query(
            url,
            f"SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name IN ({names}) "
            "ORDER BY 2",
        )
    }


def _key_text(value: Any) -> str:
    return str(value).lower()


def _items(url: str, key: list[str]) -> list[tuple[Any, ...]]:
    rows = query(url, f"SELECT {', '.join(key)}, parent_id, email, amount FROM items")
    return sorted((*(_key_text(v) for v in r[: len(key)]), *r[len(key) :]) for r in rows)


def _deferred_left(url: str) -> list[tuple[Any, ...]]:
    try:
        return query(url, "SELECT table_name, kind, name FROM ferry_deferred")
    except sa_exc.DBAPIError:  # never created: nothing was set aside
        return []


def _runs(url: str) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1]))
        for r in query(url, "SELECT run_id, status FROM ferry_runs ORDER BY started_at")
    ]


def _write_job(path: Path, source: str, target: str, tables: str, load: str = "") -> Path:
    path.write_text(
        f"source: {json.dumps(source)}\ntarget: {json.dumps(target)}\ntables:\n{tables}"
        f"load:\n  batch_size: {BATCH}\n  workers: 2\n{load}",
        encoding="utf-8",
    )
    return path


def _rerun(job: Path, tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        _copy_command(job), cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _start(job: Path, tmp_path: Path, children: list[subprocess.Popen[bytes]]) -> Any:
    with (tmp_path / "run.err").open("wb") as err:
        child = subprocess.Popen(
            _copy_command(job), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err
        )
    children.append(child)
    return child


def _wait_for(
    check: Callable[[], bool], child: subprocess.Popen[bytes], what: str, tmp_path: Path
) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if child.poll() is not None:
            stderr = (tmp_path / "run.err").read_text(encoding="utf-8", errors="replace")
            pytest.fail(f"the copy ended (exit {child.returncode}) before {what}: {stderr}")
        if time.monotonic() > deadline:
            pytest.fail(f"the copy did not reach {what} within {WAIT} s")
        time.sleep(0.002)


def _probe(url: str, sql: str) -> list[tuple[Any, ...]]:
    """A query on tables the copy may not have made yet (none: nothing found)."""
    try:
        return query(url, sql)
    except sa_exc.DBAPIError:
        return []


def _kill_after_run_record(
    job: Path, target: str, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    child = _start(job, tmp_path, children)
    _wait_for(
        lambda: bool(_probe(target, "SELECT run_id FROM ferry_runs")),
        child,
        "writing its run record",
        tmp_path,
    )
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)


def _waiting_on_lock(url: str, like: str) -> list[int]:
    """Backends of the test database waiting for a lock in a statement matching `like`."""
    if url.startswith("postgresql"):
        sql = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            f"AND wait_event_type = 'Lock' AND query LIKE '{like}'"
        )
    else:
        sql = (
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
            f"AND STATE LIKE 'Waiting for%lock' AND INFO LIKE '{like}'"
        )
    return [int(r[0]) for r in query(url, sql)]


def _end_backends(url: str, pids: list[int]) -> None:
    """The server side of a killed client: ended, so its waiting statement never runs."""
    for pid in pids:
        sql = (
            f"SELECT pg_terminate_backend({pid})" if url.startswith("postgresql") else f"KILL {pid}"
        )
        with contextlib.suppress(sa_exc.DBAPIError):  # gone already
            _execute(url, sql)


# ---------------------------------------------------------------------------- resume


KILLS = [
    # (source, target, key kind, strategy, existing target tables, kill at)
    pytest.param(MY, PG, "int", "bulk", True, "mid", id="mariadb-pg-int-bulk-existing-mid"),
    pytest.param(MY, PG, "composite", "bulk", False, "start", id="mariadb-pg-composite-start"),
    pytest.param(PG, PG, "str", "upsert", True, "mid", id="pg-pg-str-upsert-existing-mid"),
    pytest.param(PG, PG, "uuid", "bulk", False, "record", id="pg-pg-uuid-bulk-run-record"),
    pytest.param(LITE, PG, "int", "upsert", False, "mid", id="sqlite-pg-int-upsert-mid"),
    pytest.param(MY, MY, "uuid", "upsert", False, "mid", id="mariadb-mariadb-uuid-upsert-mid"),
    pytest.param(PG, MY, "composite", "upsert", True, "mid", id="pg-mariadb-composite-existing"),
    pytest.param(PG, MY, "str", "bulk", False, "start", id="pg-mariadb-str-bulk-start"),
    pytest.param(PG, LITE, "int", "bulk", True, "mid", id="pg-sqlite-int-bulk-existing-mid"),
]


@pytest.mark.parametrize(("src", "dst", "kind", "strategy", "existing", "moment"), KILLS)
def test_killed_copy_ends_with_exactly_the_source_rows(
    src: str,
    dst: str,
    kind: str,
    strategy: str,
    existing: bool,
    moment: str,
    tmp_path: Path,
    make_db: Callable[[str], str],
    children: list[subprocess.Popen[bytes]],
) -> None:
    """SIGKILL at a moment (run record just written, chunk plan just saved, half the chunks
    done), then the same command: the source's rows once each, each reject once, keys and
    set-aside objects as they were, the report balanced over both runs."""
    source, target = make_db(src), make_db(dst)
    _fill(src, source, kind)
    if existing:
        _existing_target(dst, target, kind)
    before = _snapshot(dst, target, ("parents", "items")) if existing else None
    job = _write_job(
        tmp_path / "job.yaml",
        source,
        target,
        "  parents:\n  items:\n    validate: {email: email}\n",
        f"  strategy: {strategy}\n",
    )

    if moment == "record":
        _kill_after_run_record(job, target, tmp_path, children)
    else:
        _kill_when_done(job, target, "items", 0.3 if moment == "mid" else 0.0, tmp_path, children)
    report = _rerun(job, tmp_path)

    _, key = _key_columns(kind, src)
    expected = [r for r in _items(source, key) if not str(r[len(key) + 1]).startswith("bad")]
    assert len(expected) == ROWS - REJECTED
    assert _items(target, key) == expected
    rejects = query(target, "SELECT source_key FROM ferry_rejects WHERE table_name = 'items'")
    assert len(rejects) == REJECTED, "a rejected row is recorded twice or not at all"
    assert len({r[0] for r in rejects}) == REJECTED
    assert report["status"] == "completed"
    assert report["balanced"] is True
    items = next(t for t in report["tables"] if t["table"] == "items")
    assert (items["read"], items["written"], items["rejected"]) == (
        ROWS,
        ROWS - REJECTED,
        REJECTED,
    )
    assert _deferred_left(target) == []
    if before is not None:
        after = _snapshot(dst, target, ("parents", "items"))
        assert after == before, json.dumps([after, before], indent=1, default=str)
    assert not [w for w in report["warnings"] if "not created" in w or "restored" in w]
    assert _runs(target)[-1] == (report["run_id"], "completed")
    statuses = query(target, "SELECT DISTINCT status FROM migration_checkpoints WHERE chunk >= 0")
    assert statuses == [("done",)]


# ---------------------------------------------------------------------------- deferral


def _small_existing(source: str, target: str, rows: int = 50_000) -> None:
    """A PostgreSQL source `parents` and `items`, and an existing target `items` with a
    secondary index and a foreign key ON DELETE CASCADE to `parents`."""
    note = _cat(PG, "'n'", "n")
    _execute(
        source,
        "CREATE TABLE parents (id INTEGER PRIMARY KEY, name VARCHAR(30) NOT NULL)",
        "INSERT INTO parents VALUES (1, 'p1')",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, note VARCHAR(30))",
        f"INSERT INTO items SELECT n, 1, {note} FROM {_series(PG, rows)}",
    )
    _execute(
        target,
        "CREATE TABLE parents (id INTEGER PRIMARY KEY, name VARCHAR(30) NOT NULL)",
        "CREATE INDEX parents_name_ix ON parents (name)",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, "
        "note VARCHAR(30), CONSTRAINT items_parent_fk FOREIGN KEY (parent_id) "
        "REFERENCES parents (id) ON DELETE CASCADE)",
        "CREATE INDEX items_note_ix ON items (note)",
    )


def _hold_lock(url: str, table: str, mode: str) -> Any:
    """An open transaction holding a lock on `table` (PostgreSQL: a LOCK TABLE mode;
    MariaDB: a read of the table, whose metadata lock DDL waits for)."""
    engine = engine_for(url)
    conn = engine.connect()
    if url.startswith("postgresql"):
        conn.execute(text(f"LOCK TABLE {table} IN {mode} MODE"))
    else:
        conn.execute(text(f"SELECT COUNT(*) FROM {table}"))
    conn.info["engine"] = engine
    return conn


def _release(conn: Any) -> None:
    engine = conn.info["engine"]
    conn.rollback()
    conn.close()
    engine.dispose()


@pytest.mark.parametrize("dst", [PG, MY], ids=SHORT.get)
def test_killed_between_recording_and_dropping_an_index_restores_it_cleanly(
    dst: str,
    tmp_path: Path,
    make_db: Callable[[str], str],
    children: list[subprocess.Popen[bytes]],
) -> None:
    """The copy records `parents_name_ix` in ferry_deferred, then waits to drop it (the test
    holds the table) and is killed: the index never went. The rerun used to fail to
    "restore" it on every run ('already exists'), its row in ferry_deferred forever."""
    source, target = make_db(PG), make_db(dst)
    _small_existing(source, target, rows=1_000)
    before = _snapshot(dst, target, ("parents", "items"))
    job = _write_job(tmp_path / "job.yaml", source, target, "  parents:\n  items:\n")
    held = _hold_lock(target, "parents", "ACCESS SHARE")
    try:
        child = _start(job, tmp_path, children)
        _wait_for(
            lambda: bool(_waiting_on_lock(target, "DROP INDEX%")),
            child,
            "dropping the first index",
            tmp_path,
        )
        waiting = _waiting_on_lock(target, "DROP INDEX%")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        _end_backends(target, waiting)
    finally:
        _release(held)
    assert _deferred_left(target) == [("parents", "index", "parents_name_ix")]
    assert _snapshot(dst, target, ("parents", "items")) == before  # nothing was dropped

    for _ in range(2):
        report = _rerun(job, tmp_path)
        assert report["warnings"] == []
        assert [d["error"] for d in report["deferred"]] == [None] * len(report["deferred"])
        assert _deferred_left(target) == []
        assert _snapshot(dst, target, ("parents", "items")) == before
    assert query(target, "SELECT COUNT(*) FROM items") == [(1_000,)]


def test_sigterm_while_restoring_still_restores_everything(
    tmp_path: Path, make_db: Callable[[str], str], children: list[subprocess.Popen[bytes]]
) -> None:
    """SIGTERM is to unwind a copy as Ctrl-C does, restoring what it set aside. Arriving
    while the first index was being rebuilt, it used to cut the rebuild short: the index
    and the foreign key stayed dropped, the run ended `failed`."""
    source, target = make_db(PG), make_db(PG)
    _small_existing(source, target, rows=100_000)
    before = _snapshot(PG, target, ("parents", "items"))
    job = _write_job(tmp_path / "job.yaml", source, target, "  parents:\n  items:\n")
    child = _start(job, tmp_path, children)
    _wait_for(
        lambda: (
            len(_probe(target, "SELECT name FROM ferry_deferred")) == 3
            and _probe(target, "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'items_note_ix'")
            == [(0,)]
        ),
        child,
        "setting aside the indexes and the foreign key",
        tmp_path,
    )
    # The load's COPY shares this lock; the rebuild's CREATE INDEX waits for it.
    held = _hold_lock(target, "items", "ROW EXCLUSIVE")
    try:
        _wait_for(
            lambda: bool(_waiting_on_lock(target, "CREATE INDEX%")),
            child,
            "rebuilding the index",
            tmp_path,
        )
        os.kill(child.pid, signal.SIGTERM)
        time.sleep(0.5)  # not an assertion: lets the signal land while the rebuild waits
    finally:
        _release(held)
    child.wait(timeout=120)
    assert child.returncode == 128 + signal.SIGTERM
    assert _deferred_left(target) == []
    assert _snapshot(PG, target, ("parents", "items")) == before
    assert [status for _, status in _runs(target)] == ["failed"]


def test_sigterm_while_setting_aside_puts_back_what_went(
    tmp_path: Path, make_db: Callable[[str], str], children: list[subprocess.Popen[bytes]]
) -> None:
    """Stopped between two drops (the second waits for a lock), the copy used to leave the
    first index dropped until some later run of the job."""
    source, target = make_db(PG), make_db(PG)
    _small_existing(source, target, rows=1_000)
    before = _snapshot(PG, target, ("parents", "items"))
    job = _write_job(tmp_path / "job.yaml", source, target, "  parents:\n  items:\n")
    held = _hold_lock(target, "items", "ACCESS SHARE")
    try:
        child = _start(job, tmp_path, children)
        _wait_for(
            lambda: bool(_waiting_on_lock(target, "DROP INDEX%items_note_ix%")),
            child,
            "dropping the second index",
            tmp_path,
        )
        assert _deferred_left(target)[0] == ("parents", "index", "parents_name_ix")
        os.kill(child.pid, signal.SIGTERM)
        child.wait(timeout=120)
    finally:
        _release(held)
    assert child.returncode == 128 + signal.SIGTERM
    assert _deferred_left(target) == []
    assert _snapshot(PG, target, ("parents", "items")) == before
    assert [status for _, status in _runs(target)] == ["failed"]


def test_an_index_the_database_will_not_drop_stays_and_the_copy_runs(tmp_path: Path) -> None:
    """The index behind an exclusion constraint cannot be dropped on its own: the copy used
    to fail with a raw driver error (no copy possible into such a table), leaving a stale
    row in ferry_deferred."""
    with make_pair((PG, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE rooms (id INTEGER PRIMARY KEY, spot box, note VARCHAR(9))")
        pair.source_sql(
            "INSERT INTO rooms VALUES (1, box(point(0,0), point(1,1)), 'a'), "
            "(2, box(point(2,2), point(3,3)), 'b')"
        )
        pair.target_sql(
            "CREATE TABLE rooms (id INTEGER PRIMARY KEY, spot box, note VARCHAR(9), "
            "CONSTRAINT rooms_apart EXCLUDE USING gist (spot WITH &&))"
        )
        pair.target_sql("CREATE INDEX rooms_note_ix ON rooms (note)")
        before = _snapshot(PG, pair.target, ("rooms",))
        with pytest.warns(Warning, match="box"):  # SQLAlchemy does not know `box`
            report = pair.copy("tables:\n  rooms:\n")
        assert report.status == "completed"
        assert [(d.name, d.error) for d in report.deferred] == [("rooms_note_ix", None)]
        assert _snapshot(PG, pair.target, ("rooms",)) == before
        assert _deferred_left(pair.target) == []


def test_trigger_enabled_states_come_back_as_they_were(tmp_path: Path) -> None:
    with make_pair((PG, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(9))")
        pair.source_sql("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        pair.target_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(9))")
        pair.target_sql(
            "CREATE FUNCTION keep_row() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RETURN NEW; END $$"
        )
        for name in ("t_on", "t_off", "t_always", "t_replica"):
            pair.target_sql(
                f"CREATE TRIGGER {name} BEFORE INSERT ON items FOR EACH ROW "
                "EXECUTE FUNCTION keep_row()"
            )
        pair.target_sql("ALTER TABLE items DISABLE TRIGGER t_off")
        pair.target_sql("ALTER TABLE items ENABLE ALWAYS TRIGGER t_always")
        pair.target_sql("ALTER TABLE items ENABLE REPLICA TRIGGER t_replica")
        before = _snapshot(PG, pair.target, ("items",))

        pair.copy("tables:\n  items:\n")

        assert _snapshot(PG, pair.target, ("items",)) == before


def test_mariadb_descending_index_comes_back_descending(tmp_path: Path) -> None:
    with make_pair((PG, MY), tmp_path) as pair:
        pair.source_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(9))")
        pair.source_sql("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        pair.target_sql(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(9), "
            "INDEX items_note_ix (note DESC, id) COMMENT 'newest first')"
        )
        before = _snapshot(MY, pair.target, ("items",))

        pair.copy("tables:\n  items:\n")

        assert _snapshot(MY, pair.target, ("items",)) == before


def test_pg_triggers_with_names_that_need_quoting_are_set_aside_and_back(
    tmp_path: Path,
) -> None:
    """Each trigger is switched off by name for the load (it does not fire on the loaded
    rows) and back on afterwards, whatever its name."""
    with make_pair((PG, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(9))")
        pair.source_sql("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        pair.target_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(9))")
        pair.target_sql(
            "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.note := upper(NEW.note); RETURN NEW; END $$"
        )
        for name in ('"Shout"', '"shout loud"', '"ALWAYS shout"'):
            pair.target_sql(
                f"CREATE TRIGGER {name} BEFORE INSERT ON items FOR EACH ROW "
                "EXECUTE FUNCTION shout()"
            )
        pair.target_sql('ALTER TABLE items ENABLE ALWAYS TRIGGER "ALWAYS shout"')
        before = _snapshot(PG, pair.target, ("items",))

        report = pair.copy("tables:\n  items:\n")

        assert report.status == "completed"
        assert sorted((d.kind, d.name, d.error) for d in report.deferred) == [
            ("trigger", "ALWAYS shout", None),
            ("trigger", "Shout", None),
            ("trigger", "shout loud", None),
        ]
        assert _snapshot(PG, pair.target, ("items",)) == before
        assert _deferred_left(pair.target) == []
        assert pair.rows("items", "id", "note") == [(1, "a"), (2, "b")]
        pair.target_sql("INSERT INTO items VALUES (3, 'c')")
        assert pair.rows("items", "id", "note")[-1] == (3, "C")


def test_mariadb_prefix_fulltext_and_quoted_indexes_come_back_as_they_were(
    tmp_path: Path,
) -> None:
    with make_pair((PG, MY), tmp_path) as pair:
        pair.source_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(90))")
        pair.source_sql("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        pair.target_sql(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(90), "
            "INDEX items_note_prefix_ix (note(5), id DESC) COMMENT 'it''s a \\\\ prefix', "
            "INDEX `odd ``name`` ix` (id, note), "
            "FULLTEXT INDEX items_note_ft (note))"
        )
        before = _snapshot(MY, pair.target, ("items",))

        report = pair.copy("tables:\n  items:\n")

        assert report.status == "completed"
        assert sorted((d.name, d.error) for d in report.deferred) == [
            ("items_note_prefix_ix", None),
            ("odd `name` ix", None),
        ]
        assert _snapshot(MY, pair.target, ("items",)) == before
        assert _deferred_left(pair.target) == []


@pytest.mark.filterwarnings("ignore:Unknown schema content")  # SQLAlchemy: IGNORED
def test_mariadb_ignored_index_comes_back_ignored(tmp_path: Path) -> None:
    """An index the user told the optimizer to ignore must not come back in use."""
    with make_pair((PG, MY), tmp_path) as pair:
        pair.source_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(9))")
        pair.source_sql("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        pair.target_sql(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(9), "
            "INDEX items_note_ix (note) IGNORED)"
        )
        ignored = (
            "SELECT INDEX_NAME, IGNORED FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items' ORDER BY 1"
        )
        before = query(pair.target, ignored)
        assert ("items_note_ix", "YES") in before

        report = pair.copy("tables:\n  items:\n")

        assert [(d.name, d.error) for d in report.deferred] == [("items_note_ix", None)]
        assert query(pair.target, ignored) == before


@pytest.mark.parametrize("dst", [PG, MY], ids=SHORT.get)
def test_a_row_that_fails_the_load_leaves_a_record_and_the_objects_back(
    dst: str, tmp_path: Path
) -> None:
    """A `fail` rule stops the run part-way: the set-aside objects are back, the run is
    recorded failed, and the partly written table's checkpoints say which chunks are in;
    the same command with the rule fixed completes it."""
    with make_pair((PG, dst), tmp_path) as pair:
        _small_existing(pair.source, pair.target, rows=2_000)
        pair.source_sql("UPDATE items SET note = 'not a mail' WHERE id = 1500")
        before = _snapshot(dst, pair.target, ("parents", "items"))
        body = (
            "tables:\n  parents:\n  items:\n    validate: {note: {rule: email, on_fail: %s}}\n"
            "load: {batch_size: 200, workers: 1}\n"
        )
        pair.source_sql("UPDATE items SET note = 'n@x.org' WHERE id <> 1500")
        with pytest.raises(DataError, match="row"):
            pair.copy(body % "fail")
        assert _snapshot(dst, pair.target, ("parents", "items")) == before
        assert _deferred_left(pair.target) == []
        assert [s for _, s in _runs(pair.target)] == ["failed"]
        loaded = query(pair.target, "SELECT COUNT(*) FROM items")[0][0]
        assert 0 < loaded < 2_000
        done = query(
            pair.target,
            "SELECT SUM(rows_written) FROM migration_checkpoints "
            "WHERE table_name = 'items' AND chunk >= 0 AND status = 'done'",
        )
        assert done == [(loaded,)]  # the record says exactly what the table holds

        report = pair.copy(body % "reject")
        assert report.status == "completed"
        assert query(pair.target, "SELECT COUNT(*) FROM items") == [(1_999,)]
        assert _snapshot(dst, pair.target, ("parents", "items")) == before


def test_killed_while_building_keys_rerun_finishes_them_quietly(
    tmp_path: Path, make_db: Callable[[str], str], children: list[subprocess.Popen[bytes]]
) -> None:
    source, target = make_db(PG), make_db(PG)
    _fill(PG, source, "int")
    _execute(source, "CREATE INDEX items_amount_ix ON items (amount)")
    job = _write_job(tmp_path / "job.yaml", source, target, "  parents:\n  items:\n")
    child = _start(job, tmp_path, children)
    _wait_for(
        lambda: bool(_probe(target, "SELECT 1 FROM pg_tables WHERE tablename = 'items'")),
        child,
        "creating the table",
        tmp_path,
    )
    # The load and the index builds share this lock; making the index the primary key
    # waits for it. Taken as soon as the table exists, so the copy cannot get past it.
    held = _hold_lock(target, "items", "ACCESS SHARE")
    try:
        _wait_for(
            lambda: bool(_waiting_on_lock(target, "ALTER TABLE%")),
            child,
            "attaching the primary key",
            tmp_path,
        )
        waiting = _waiting_on_lock(target, "ALTER TABLE%")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        _end_backends(target, waiting)
    finally:
        _release(held)

    report = _rerun(job, tmp_path)

    assert report["warnings"] == []
    constraints = _snapshot(PG, target, ("items",))["constraints"]
    assert [(c[1], c[3]) for c in constraints] == [
        ("items_parent_id_fkey", True),
        ("items_pkey", True),
    ]
    assert query(target, "SELECT COUNT(*), COUNT(DISTINCT id) FROM items") == [(ROWS, ROWS)]


def test_a_killed_run_is_not_left_running_once_the_job_completes(
    tmp_path: Path, make_db: Callable[[str], str], children: list[subprocess.Popen[bytes]]
) -> None:
    source, target = make_db(PG), make_db(PG)
    _small_existing(source, target, rows=50_000)
    job = _write_job(tmp_path / "job.yaml", source, target, "  parents:\n  items:\n")
    _kill_when_done(job, target, "items", 0.3, tmp_path, children)
    killed = _runs(target)[0][0]

    report = _rerun(job, tmp_path)

    runs = dict(_runs(target))
    assert runs[report["run_id"]] == "completed"
    assert runs[killed] != "running", "`ferry runs` still shows the killed copy as running"
