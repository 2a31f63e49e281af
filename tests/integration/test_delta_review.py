"""Delta sync edge cases: commits that land out of log-id order, rows a rule rejects or a
filter drops after an update, keys that do not survive a JSON round trip as they are
(timestamps, long decimals, case-insensitive text), foreign keys between delta tables,
`--stop` after the job changed, and two syncs at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ferry.data import delta
from ferry.data.delta import SyncReport
from tests.conftest import engine_for
from tests.integration.test_copy import Pair, make_pair
from tests.integration.test_sync import (
    JOB,
    LITE,
    MY,
    PG,
    copy_with_capture,
    mapped_source,
    pair_id,
    query,
    source_has_log,
    source_triggers,
    sync,
    target_accounts,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=[(PG, PG), (MY, PG), (PG, MY)], ids=pair_id)
def server_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with make_pair(request.param, tmp_path) as made:
        yield made


# ------------------------------------------------------------- out-of-order commit


def test_change_committed_after_a_later_id_is_not_lost(server_pair: Pair) -> None:
    """Log ids are handed out when a row is written, not when its transaction commits: a
    sync that runs between the two must not step over the older, still open change."""
    pair = server_pair
    copy_with_capture(pair)
    engine = engine_for(pair.source)
    try:
        with engine.connect() as slow:
            slow.execute(text("INSERT INTO accounts VALUES (6, 'slow', 'A')"))  # smaller id
            pair.source_sql("INSERT INTO accounts VALUES (7, 'fast', 'A')")  # commits first
            sync(pair)
            slow.commit()
    finally:
        engine.dispose()

    sync(pair)

    assert target_accounts(pair) == mapped_source(pair)
    assert (6, "slow", "active") in target_accounts(pair)


# ----------------------------------------------------------- rejects and row filters


@pytest.mark.parametrize("dialects", [(PG, PG), (LITE, LITE)], ids=pair_id)
def test_update_to_a_rejected_value_removes_the_stale_row(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """A full copy would not hold a row its value map rejects; neither may the sync."""
    with make_pair(dialects, tmp_path) as pair:
        copy_with_capture(pair)
        pair.source_sql("UPDATE accounts SET status = 'X' WHERE id = 1")  # unmapped now

        report = sync(pair)

        assert report.rejected == 1
        assert target_accounts(pair) == mapped_source(pair)
        assert 1 not in [r[0] for r in target_accounts(pair)]

        pair.source_sql("UPDATE accounts SET status = 'A' WHERE id = 1")  # mapped again
        sync(pair)

        assert target_accounts(pair) == mapped_source(pair)
        assert (1, "alice", "active") in target_accounts(pair)


# ------------------------------------------------------------------- typed keys

EVENTS = """
tables:
  events:
    mode: delta
  marks:
    mode: delta
"""


@pytest.mark.parametrize("dialects", [(PG, PG), (MY, PG)], ids=pair_id)
def test_update_of_a_timestamp_keyed_parent_keeps_it_and_its_children(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """An updated row the source still has is no delete: its key read back as a timestamp
    must match the logged key however the database spelled it in JSON."""
    with make_pair(dialects, tmp_path) as pair:
        stamp = "DATETIME(6)" if pair.source_dialect == MY else "TIMESTAMP"
        pair.source_sql(f"CREATE TABLE events (at {stamp} PRIMARY KEY, name VARCHAR(20))")
        pair.source_sql(
            f"CREATE TABLE marks (id INTEGER PRIMARY KEY, event_at {stamp} NOT NULL "
            "REFERENCES events (at))"
        )
        pair.source_sql("INSERT INTO events VALUES ('2024-03-01 10:00:00.123456', 'launch')")
        pair.source_sql("INSERT INTO marks VALUES (1, '2024-03-01 10:00:00.123456')")
        pair.copy(EVENTS)

        pair.source_sql("UPDATE events SET name = 'liftoff'")
        report = sync(pair, EVENTS)

        assert report.deleted == 0
        assert report.upserted == 1
        assert [r[1] for r in pair.rows("events")] == ["liftoff"]
        assert [r[0] for r in pair.rows("marks")] == [1]


PRICES = """
tables:
  prices:
    mode: delta
"""


def test_long_decimal_key_survives_the_log(tmp_path: Path) -> None:
    with make_pair((PG, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE prices (amount NUMERIC(22, 2) PRIMARY KEY, name TEXT)")
        pair.source_sql("INSERT INTO prices VALUES (12345678901234567890.12, 'big')")
        pair.copy(PRICES)

        pair.source_sql("UPDATE prices SET name = 'bigger'")
        sync(pair, PRICES)

        assert pair.rows("prices") == [(Decimal("12345678901234567890.12"), "bigger")]


CODES = """
tables:
  codes:
    mode: delta
"""


def test_key_changing_only_its_case_on_mariadb(tmp_path: Path) -> None:
    """MariaDB compares text keys without case by default; PostgreSQL does not."""
    with make_pair((MY, PG), tmp_path) as pair:
        pair.source_sql(
            "CREATE TABLE codes (code VARCHAR(10) PRIMARY KEY, name VARCHAR(20)) "
            "COLLATE utf8mb4_general_ci"
        )
        pair.source_sql("INSERT INTO codes VALUES ('abc', 'first')")
        pair.copy(CODES)

        pair.source_sql("UPDATE codes SET code = 'ABC' WHERE code = 'abc'")
        sync(pair, CODES)

        assert pair.rows("codes") == [("ABC", "first")]


# ------------------------------------------------------------------ foreign keys

FAMILY = """
tables:
  kids:
    mode: delta
  parents:
    mode: delta
"""


def make_family(pair: Pair) -> None:
    pair.source_sql("CREATE TABLE parents (id INTEGER PRIMARY KEY, name VARCHAR(20))")
    pair.source_sql(
        "CREATE TABLE kids (id INTEGER PRIMARY KEY, "
        "parent_id INTEGER NOT NULL REFERENCES parents (id))"
    )
    pair.source_sql("INSERT INTO parents VALUES (1, 'one'), (2, 'two')")
    pair.source_sql("INSERT INTO kids VALUES (10, 1), (20, 2)")
    pair.copy(FAMILY)


def test_foreign_keys_hold_when_a_batch_spans_parent_and_child(server_pair: Pair) -> None:
    pair = server_pair
    make_family(pair)
    # kids appear first in the log, but their new parent arrives later in it
    pair.source_sql("UPDATE kids SET parent_id = 2 WHERE id = 10")
    pair.source_sql("INSERT INTO parents VALUES (3, 'three')")
    pair.source_sql("UPDATE kids SET parent_id = 3 WHERE id = 10")
    # parents appear first in the log, but a kid must go before its parent may
    pair.source_sql("UPDATE parents SET name = 'uno' WHERE id = 1")
    pair.source_sql("DELETE FROM kids WHERE id = 20")
    pair.source_sql("DELETE FROM parents WHERE id = 2")

    sync(pair, FAMILY)

    assert pair.rows("parents") == [(1, "uno"), (3, "three")]
    assert pair.rows("kids") == [(10, 3)]


# ------------------------------------------------------------------------- stop


@pytest.mark.parametrize("dialects", [(PG, PG), (MY, PG), (LITE, LITE)], ids=pair_id)
def test_stop_after_a_table_left_the_job_leaves_the_source_writable(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """`--stop` drops the log; a capture trigger it leaves behind would make every write
    to its table fail."""
    both = JOB.replace("  notes:\n", "  notes:\n    mode: delta\n")
    with make_pair(dialects, tmp_path) as pair:
        copy_with_capture_of(pair, both)

        sync(pair, JOB, stop=True)  # notes is no longer a delta table of the job

        assert source_triggers(pair) == []
        assert not source_has_log(pair)
        pair.source_sql("INSERT INTO notes VALUES (2, 'still writable')")


def copy_with_capture_of(pair: Pair, body: str) -> None:
    from tests.integration.test_sync import make_source

    make_source(pair)
    assert pair.copy(body).status == "completed"


def test_stop_when_capture_was_never_installed(tmp_path: Path) -> None:
    with make_pair((PG, PG), tmp_path) as pair:
        from tests.integration.test_sync import make_source

        make_source(pair)
        assert sync(pair, stop=True).applied_entries == 0
        assert source_triggers(pair) == []


# ------------------------------------------------------------------ two at once


def test_two_syncs_at_once_end_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync that read a row, then lost the race to a second sync that read the row's
    newer state, must not write its older state over the newer one."""
    with make_pair((PG, PG), tmp_path) as pair:
        copy_with_capture(pair)
        pair.source_sql("UPDATE accounts SET name = 'v1' WHERE id = 1")
        read_once = threading.Event()
        go = threading.Event()
        original = delta.source_rows

        def slow_rows(*args: Any, **kwargs: Any) -> Any:
            rows = original(*args, **kwargs)
            if threading.current_thread().name == "first" and not read_once.is_set():
                read_once.set()
                go.wait(timeout=20)
            return rows

        monkeypatch.setattr(delta, "source_rows", slow_rows)
        results: list[SyncReport | BaseException] = []

        def run() -> None:
            try:
                results.append(sync(pair))
            except BaseException as error:
                results.append(error)

        first = threading.Thread(target=run, name="first")
        first.start()
        assert read_once.wait(timeout=20)
        pair.source_sql("UPDATE accounts SET name = 'v2' WHERE id = 1")
        second = threading.Thread(target=run, name="second")
        second.start()
        time.sleep(1.5)
        go.set()
        first.join(timeout=30)
        second.join(timeout=30)

        assert not [r for r in results if isinstance(r, BaseException)], results
        assert query(pair.source, "SELECT name FROM accounts WHERE id = 1") == [("v2",)]
        assert (1, "v2", "active") in target_accounts(pair)
        assert target_accounts(pair) == mapped_source(pair)


# ------------------------------------------------------------------ crash and rerun

PAIRS_KEY = """
tables:
  links:
    mode: delta
"""


@pytest.mark.parametrize("dialects", [(PG, MY), (MY, PG), (LITE, LITE)], ids=pair_id)
def test_crash_after_the_target_commit_then_rerun(
    dialects: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Composite keys, a key change, unicode and NULLs; the run dies after the target
    committed but before the log forgot the entries: the rerun ends exact."""
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql(
            "CREATE TABLE links (a INTEGER NOT NULL, b VARCHAR(10) NOT NULL, "
            "note VARCHAR(20), PRIMARY KEY (a, b))"
        )
        pair.source_sql("INSERT INTO links VALUES (1, 'x', 'one'), (1, 'y', NULL), (2, 'x', 'two')")
        pair.copy(PAIRS_KEY)
        pair.source_sql("UPDATE links SET b = 'z', note = 'überall' WHERE a = 1 AND b = 'x'")
        pair.source_sql("DELETE FROM links WHERE a = 2")
        pair.source_sql("INSERT INTO links VALUES (3, 'q', NULL)")

        def crash(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("killed")

        monkeypatch.setattr(delta, "_consume", crash)
        with pytest.raises(RuntimeError):
            sync(pair, PAIRS_KEY)
        monkeypatch.undo()
        pair.source_sql("UPDATE links SET note = 'later' WHERE a = 3")

        sync(pair, PAIRS_KEY)

        expected = [(1, "y", None), (1, "z", "überall"), (3, "q", "later")]
        assert sorted(pair.rows("links")) == expected
        assert sync(pair, PAIRS_KEY).applied_entries == 0


MEMBERS = """
tables:
  members:
    mode: delta
"""


@pytest.mark.parametrize("dialects", [(PG, PG), (MY, PG), (PG, MY)], ids=pair_id)
def test_new_row_takes_over_the_unique_value_of_a_deleted_one(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql(
            "CREATE TABLE members (id INTEGER PRIMARY KEY, email VARCHAR(40) NOT NULL UNIQUE)"
        )
        pair.source_sql("INSERT INTO members VALUES (1, 'a@example.com')")
        pair.copy(MEMBERS)
        pair.source_sql("DELETE FROM members WHERE id = 1")
        pair.source_sql("INSERT INTO members VALUES (2, 'a@example.com')")

        sync(pair, MEMBERS)

        assert pair.rows("members") == [(2, "a@example.com")]


# ------------------------------------------------------------------- awkward names

ODD = """
tables:
  odd table:
    mode: delta
"""


@pytest.mark.parametrize("dialects", [(PG, PG), (MY, PG), (LITE, LITE)], ids=pair_id)
def test_capture_of_a_table_and_key_with_quotes_and_spaces_in_their_names(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """The trigger bodies are SQL text: names are quoted there, and written as strings."""
    with make_pair(dialects, tmp_path) as pair:
        q = "`" if pair.source_dialect == MY else '"'
        table, key = f"{q}odd table{q}", f"{q}it's id{q}"
        pair.source_sql(f"CREATE TABLE {table} ({key} INTEGER PRIMARY KEY, v VARCHAR(10))")
        pair.source_sql(f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b')")
        assert pair.copy(ODD).status == "completed"

        pair.source_sql(f"UPDATE {table} SET v = 'a2' WHERE {key} = 1")
        pair.source_sql(f"UPDATE {table} SET {key} = 3 WHERE {key} = 2")
        pair.source_sql(f"INSERT INTO {table} VALUES (4, 'd')")
        sync(pair, ODD)

        assert pair.rows("odd table") == [(1, "a2"), (3, "b"), (4, "d")]
        sync(pair, ODD, stop=True)
        pair.source_sql(f"INSERT INTO {table} VALUES (5, 'e')")  # no trigger left behind


def test_truncate_on_a_postgresql_source_empties_the_target_table(tmp_path: Path) -> None:
    """TRUNCATE fires no row trigger: a statement trigger logs it, and the replay empties the
    target table, then writes the rows the source holds again."""
    with make_pair((PG, PG), tmp_path) as pair:
        copy_with_capture(pair)

        pair.source_sql("INSERT INTO accounts VALUES (6, 'before', 'A')")
        pair.source_sql("TRUNCATE accounts")
        pair.source_sql("INSERT INTO accounts VALUES (1, 'again', 'I'), (9, 'new', 'A')")
        report = sync(pair)

        assert target_accounts(pair) == [(1, "again", "inactive"), (9, "new", "active")]
        assert target_accounts(pair) == mapped_source(pair)
        assert report.deleted >= 1


@pytest.mark.parametrize("dialects", [(PG, PG), (MY, PG), (PG, MY)], ids=pair_id)
def test_a_row_replayed_again_keeps_one_reject(
    dialects: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the target committed replays the same entries: their rejects were
    written twice; and a row fixed later kept its old reject."""
    with make_pair(dialects, tmp_path) as pair:
        copy_with_capture(pair)
        pair.source_sql("UPDATE accounts SET status = 'X' WHERE id IN (1, 2)")  # unmapped

        def crash(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("killed")

        monkeypatch.setattr(delta, "_consume", crash)
        with pytest.raises(RuntimeError):
            sync(pair)
        monkeypatch.undo()
        sync(pair)

        assert sorted(r[1] for r in pair.rejects() if r[0] == "accounts") == [[1], [2]]
        pair.source_sql("UPDATE accounts SET status = 'A' WHERE id = 2")  # fixed at the source
        sync(pair)

        assert [r[1] for r in pair.rejects() if r[0] == "accounts"] == [[1]]
        assert target_accounts(pair) == mapped_source(pair)
