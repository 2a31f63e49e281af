"""Tests for the quickstart's legacy demo database and the camera-counting example migrations."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from ferry.quickstart.legacy import LegacySummary, build_legacy_database, is_bad_email

MIGRATIONS = Path(__file__).resolve().parents[2] / "examples" / "camera-counting" / "migrations"

BAD_EMAIL_SQL = (
    "SELECT COUNT(*) FROM users WHERE instr(email_address, '@') = 0"
    " OR substr(email_address, instr(email_address, '@') + 1) NOT LIKE '%_._%'"
)
DUPLICATE_SQL = (
    "SELECT COUNT(*) FROM users u WHERE EXISTS ("
    " SELECT 1 FROM users p WHERE p.user_name = u.user_name"
    " AND p.email_address = u.email_address AND p.user_id < u.user_id)"
)


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path)) as conn:
        yield conn


def scalar(conn: sqlite3.Connection, sql: str) -> object:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with connect(path) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("users", "cameras", "analytics")
        }


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacySummary:
    return build_legacy_database(tmp_path_factory.mktemp("legacy") / "legacy.db")


# --- legacy database ------------------------------------------------------------------------


def test_schema_has_exactly_the_legacy_tables_and_columns(legacy: LegacySummary) -> None:
    with connect(legacy.path) as conn:
        tables = sorted(
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        )
        assert tables == ["analytics", "cameras", "users"]
        shapes = {
            table: [(r[1], r[2], r[5]) for r in conn.execute(f"PRAGMA table_info({table})")]
            for table in tables
        }
    assert shapes == {
        "users": [
            ("user_id", "INTEGER", 1),
            ("user_name", "TEXT", 0),
            ("email_address", "TEXT", 0),
            ("account_status", "TEXT", 0),
        ],
        "cameras": [
            ("camera_id", "INTEGER", 1),
            ("camera_name", "TEXT", 0),
            ("camera_location", "TEXT", 0),
            ("is_active", "TEXT", 0),
        ],
        "analytics": [
            ("id", "INTEGER", 1),
            ("camera_id", "INTEGER", 0),
            ("count", "INTEGER", 0),
            ("timestamp", "TEXT", 0),
        ],
    }


def test_row_counts_match_defaults_and_summary(legacy: LegacySummary) -> None:
    assert (legacy.users, legacy.cameras, legacy.analytics) == (500, 40, 5000)
    with connect(legacy.path) as conn:
        assert scalar(conn, "SELECT COUNT(*) FROM users") == 500
        assert scalar(conn, "SELECT COUNT(*) FROM cameras") == 40
        assert scalar(conn, "SELECT COUNT(*) FROM analytics") == 5000


def test_custom_sizes(tmp_path: Path) -> None:
    summary = build_legacy_database(tmp_path / "s.db", users=50, cameras=3, analytics=120)
    with connect(summary.path) as conn:
        assert scalar(conn, "SELECT COUNT(*) FROM users") == summary.users == 50
        assert scalar(conn, "SELECT COUNT(*) FROM cameras") == summary.cameras == 3
        assert scalar(conn, "SELECT COUNT(*) FROM analytics") == summary.analytics == 120


def test_empty_database(tmp_path: Path) -> None:
    summary = build_legacy_database(tmp_path / "e.db", users=0, cameras=0, analytics=0)
    assert summary == LegacySummary(tmp_path / "e.db", 0, 0, 0, 0, 0, 0)
    assert all(rows == [] for rows in dump(summary.path).values())


@pytest.mark.parametrize(
    "kwargs",
    [{"users": -1}, {"cameras": -1}, {"analytics": -1}, {"cameras": 0, "analytics": 1}],
)
def test_rejects_impossible_sizes(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"must be >= 0|at least one camera"):
        build_legacy_database(tmp_path / "x.db", **kwargs)


def test_values_are_in_the_documented_domains(legacy: LegacySummary) -> None:
    with connect(legacy.path) as conn:
        statuses = {r[0] for r in conn.execute("SELECT DISTINCT account_status FROM users")}
        assert statuses == {"A", "I", "S", None}
        flags = {r[0] for r in conn.execute("SELECT DISTINCT is_active FROM cameras")}
        assert flags == {"Y", "N"}
        low, high = conn.execute("SELECT MIN(count), MAX(count) FROM analytics").fetchone()
        assert 0 <= low <= high <= 200
        assert scalar(conn, "SELECT COUNT(*) FROM analytics WHERE count IS NULL") == 0
        orphans = (
            "SELECT COUNT(*) FROM analytics a "
            "WHERE NOT EXISTS (SELECT 1 FROM cameras c WHERE c.camera_id = a.camera_id)"
        )
        assert scalar(conn, orphans) == 0
        stamps = [r[0] for r in conn.execute("SELECT timestamp FROM analytics")]
        days = {
            r[0] for r in conn.execute("SELECT DISTINCT substr(timestamp, 1, 10) FROM analytics")
        }
        locations = {r[0] for r in conn.execute("SELECT camera_location FROM cameras")}
    pattern = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
    assert all(isinstance(s, str) and pattern.fullmatch(s) for s in stamps)
    assert 2 <= len(days) <= 7
    assert {"Entrance North", "Parking Level 2"} <= locations


def test_dirty_counts_match_sql(legacy: LegacySummary) -> None:
    with connect(legacy.path) as conn:
        duplicates = scalar(conn, DUPLICATE_SQL)
        distinct_pairs = scalar(
            conn, "SELECT COUNT(*) FROM (SELECT DISTINCT user_name, email_address FROM users)"
        )
        bad = scalar(conn, BAD_EMAIL_SQL)
        nulls = scalar(conn, "SELECT COUNT(*) FROM users WHERE account_status IS NULL")
        null_emails = scalar(conn, "SELECT COUNT(*) FROM users WHERE email_address IS NULL")
    assert null_emails == 0
    assert duplicates == legacy.duplicate_users == legacy.users - int(str(distinct_pairs))
    assert bad == legacy.bad_emails
    assert nulls == legacy.null_statuses


def test_dirty_rows_are_roughly_the_documented_share(legacy: LegacySummary) -> None:
    assert 0.02 * legacy.users <= legacy.duplicate_users <= 0.04 * legacy.users
    assert 0.03 * legacy.users <= legacy.bad_emails <= 0.06 * legacy.users
    assert 0.04 * legacy.users <= legacy.null_statuses <= 0.06 * legacy.users


@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_dirty_counts_match_sql_for_other_seeds(tmp_path: Path, seed: int) -> None:
    summary = build_legacy_database(tmp_path / "s.db", users=300, analytics=10, seed=seed)
    with connect(summary.path) as conn:
        assert scalar(conn, DUPLICATE_SQL) == summary.duplicate_users > 0
        assert scalar(conn, BAD_EMAIL_SQL) == summary.bad_emails > 0
        nulls = scalar(conn, "SELECT COUNT(*) FROM users WHERE account_status IS NULL")
        assert nulls == summary.null_statuses > 0


def test_same_seed_is_deterministic(tmp_path: Path) -> None:
    first = build_legacy_database(tmp_path / "a.db", seed=11)
    second = build_legacy_database(tmp_path / "b.db", seed=11)
    assert dump(first.path) == dump(second.path)
    assert {**vars(first), "path": None} == {**vars(second), "path": None}


def test_different_seed_differs(tmp_path: Path) -> None:
    first = build_legacy_database(tmp_path / "a.db", seed=1)
    second = build_legacy_database(tmp_path / "b.db", seed=2)
    assert dump(first.path) != dump(second.path)


def test_overwrites_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    path.write_bytes(b"not a database at all")
    build_legacy_database(path, users=20, cameras=2, analytics=30)
    summary = build_legacy_database(path, users=10, cameras=1, analytics=5)
    with connect(path) as conn:
        assert scalar(conn, "SELECT COUNT(*) FROM users") == summary.users == 10
        assert scalar(conn, "SELECT COUNT(*) FROM analytics") == 5


def test_is_fast(tmp_path: Path) -> None:
    started = time.perf_counter()
    build_legacy_database(tmp_path / "fast.db")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("email", "bad"),
    [
        ("jane.doe@example.com", False),
        ("jane.doe@mail.example.net", False),
        ("jane.doe", True),
        ("jane.doe@", True),
        ("jane.doe@localhost", True),
        ("jane.doe@.com", True),
        ("jane.doe@example.", True),
        (None, False),
    ],
)
def test_is_bad_email_agrees_with_sql(email: str | None, bad: bool) -> None:
    assert is_bad_email(email) is bad
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE users (email_address TEXT)")
        conn.execute("INSERT INTO users VALUES (?)", (email,))
        assert scalar(conn, BAD_EMAIL_SQL) == int(bad)


# --- example migrations ---------------------------------------------------------------------


def apply(conn: sqlite3.Connection, script: Path) -> None:
    for statement in script.read_text(encoding="utf-8").split(";"):
        if statement.strip():
            conn.execute(statement)


def test_example_migration_files_are_complete() -> None:
    names = sorted(p.name for p in MIGRATIONS.glob("*.sql"))
    assert names == [
        "R__camera_activity_view.sql",
        "U1__create_users.sql",
        "U2__create_cameras.sql",
        "U3__create_analytics.sql",
        "U4__add_hourly_counts.sql",
        "V1__create_users.sql",
        "V2__create_cameras.sql",
        "V3__create_analytics.sql",
        "V4__add_hourly_counts.sql",
    ]
    for path in MIGRATIONS.glob("*.sql"):
        assert path.read_text(encoding="utf-8").startswith("-- "), path.name


def test_example_migrations_apply_on_sqlite() -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        for version in range(1, 5):
            (script,) = MIGRATIONS.glob(f"V{version}__*.sql")
            apply(conn, script)
        apply(conn, MIGRATIONS / "R__camera_activity_view.sql")
        apply(conn, MIGRATIONS / "R__camera_activity_view.sql")  # repeatable: reruns cleanly

        objects = set(
            conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        )
        assert objects == {
            ("table", "users"),
            ("table", "cameras"),
            ("table", "analytics"),
            ("table", "hourly_counts"),
            ("index", "idx_users_email"),
            ("index", "idx_analytics_camera_time"),
            ("view", "camera_activity"),
        }

        conn.execute("INSERT INTO users (id, username) VALUES (1, 'ops')")
        conn.execute("INSERT INTO cameras (id, name, owner_id) VALUES (1, 'CAM-001', 1)")
        conn.execute("INSERT INTO cameras (id, name) VALUES (2, 'CAM-002')")
        conn.executemany(
            "INSERT INTO analytics VALUES (?, 1, ?, '2024-03-04 10:00:00')", [(1, 5), (2, 7)]
        )
        assert conn.execute("SELECT status FROM users").fetchall() == [("inactive",)]
        assert conn.execute("SELECT is_active FROM cameras WHERE id = 2").fetchall() == [(1,)]
        activity = conn.execute("SELECT * FROM camera_activity ORDER BY camera_id").fetchall()
        assert activity == [(1, "CAM-001", 2, 12), (2, "CAM-002", 0, None)]
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO analytics VALUES (3, 99, 1, '2024-03-04 10:00:00')")


def test_example_undo_migrations_empty_the_database() -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        for version in range(1, 5):
            (script,) = MIGRATIONS.glob(f"V{version}__*.sql")
            apply(conn, script)
        apply(conn, MIGRATIONS / "R__camera_activity_view.sql")
        for version in range(4, 0, -1):
            (script,) = MIGRATIONS.glob(f"U{version}__*.sql")
            assert script.name[2:] == next(MIGRATIONS.glob(f"V{version}__*.sql")).name[2:]
            apply(conn, script)
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
