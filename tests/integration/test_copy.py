"""`ferry copy` end to end: every mapping and cleaning rule, schema translation, chunking,
error limits, load rejects, resume and restart, and bad job specs.

Each test builds its source tables with plain SQL in a fresh database and copies them into
another fresh database (empty, so Ferry creates the tables, or holding tables whose columns
have other names). Every assertion is exact: the target rows, the ferry_rejects rows (with the
source's original values) and the report's balance read = written + rejected + filtered +
deduped, table by table.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, inspect, select, text
from sqlalchemy import types as sat

from ferry.data.copy import CopyReport, copy_data
from ferry.data.spec import parse_job
from ferry.data.state import Counts
from ferry.data.transform import DataError
from ferry.errors import ConfigError
from ferry.validate.data import verify_job
from tests.conftest import engine_for, new_database

pytestmark = pytest.mark.integration

PG, MY, LITE = "postgresql", "mysql", "sqlite"
#: (source, target) dialect pairs.
PAIRS = [(MY, PG), (PG, PG), (LITE, PG), (PG, MY), (LITE, LITE)]
#: A cheaper set for rules whose behaviour does not depend on the databases much.
FEW_PAIRS = [(MY, PG), (PG, MY), (LITE, LITE)]


def _pair_id(pair: tuple[str, str]) -> str:
    short = {PG: "pg", MY: "mariadb", LITE: "sqlite"}
    return f"{short[pair[0]]}-to-{short[pair[1]]}"


@dataclass
class Pair:
    """A fresh source and a fresh target database, and a job spec folder."""

    source_dialect: str
    target_dialect: str
    source: str
    target: str
    folder: Path

    def source_sql(self, sql: str, rows: list[dict[str, Any]] | None = None) -> None:
        _run(self.source, sql, rows)

    def target_sql(self, sql: str, rows: list[dict[str, Any]] | None = None) -> None:
        _run(self.target, sql, rows)

    def spec_text(self, body: str) -> str:
        head = f'source: "{self.source}"\ntarget: "{self.target}"\n'
        return head + textwrap.dedent(body)

    def copy(self, body: str, *, restart: bool = False) -> CopyReport:
        path = self.folder / "job.yaml"
        report = copy_data(
            parse_job(self.spec_text(body), path=path), spec_path=path, restart=restart
        )
        assert_balanced(report)
        return report

    def rows(self, table: str, *columns: str) -> list[tuple[Any, ...]]:
        """Target rows (typed by the reflected table), ordered by the first column."""
        return _rows(self.target, table, columns)

    def rejects(self) -> list[tuple[str, Any, str, str, dict[str, Any]]]:
        """ferry_rejects rows: (table, source key, rule, error, original row), key order."""
        engine = engine_for(self.target)
        try:
            with engine.connect() as conn:
                found = conn.execute(
                    text("SELECT table_name, source_key, rule, error, row_data FROM ferry_rejects")
                ).all()
        finally:
            engine.dispose()
        out = [(t, json.loads(k) if k else None, r, e, json.loads(d)) for t, k, r, e, d in found]
        return sorted(out, key=lambda r: (r[0], r[1] or []))

    def target_tables(self) -> set[str]:
        engine = engine_for(self.target)
        try:
            return set(inspect(engine).get_table_names())
        finally:
            engine.dispose()


def _run(url: str, sql: str, rows: list[dict[str, Any]] | None = None) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            if rows is None:
                conn.execute(text(sql))
            elif rows:
                conn.execute(text(sql), rows)
    finally:
        engine.dispose()


def _rows(url: str, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    engine = engine_for(url)
    try:
        reflected = Table(table, MetaData(), autoload_with=engine)
        wanted = [reflected.c[c] for c in columns] if columns else list(reflected.c)
        with engine.connect() as conn:
            found = conn.execute(select(*wanted).order_by(wanted[0])).all()
        return [tuple(r) for r in found]
    finally:
        engine.dispose()


def assert_balanced(report: CopyReport) -> None:
    for table in report.tables:
        c = table.counts
        assert c.read == c.written + c.rejected + c.filtered + c.deduped, table


def counts_of(report: CopyReport) -> dict[str, Counts]:
    return {t.source: t.counts for t in report.tables}


@contextmanager
def make_pair(dialects: tuple[str, str], folder: Path) -> Iterator[Pair]:
    """Fresh source and target databases of the given dialects, dropped afterwards."""
    source_dialect, target_dialect = dialects
    folder.mkdir(parents=True, exist_ok=True)
    source, drop_source = new_database(source_dialect, folder)
    try:
        target, drop_target = new_database(target_dialect, folder)
        try:
            yield Pair(source_dialect, target_dialect, source, target, folder)
        finally:
            drop_target()
    finally:
        drop_source()


@pytest.fixture(params=PAIRS, ids=_pair_id)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with make_pair(request.param, tmp_path) as made:
        yield made


@pytest.fixture(params=FEW_PAIRS, ids=_pair_id)
def few(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with make_pair(request.param, tmp_path) as made:
        yield made


def timestamp_type(dialect: str) -> str:
    return "DATETIME" if dialect == MY else "TIMESTAMP"


# --------------------------------------------------------------------- camera counting

USERS = [
    # chunk 1 (ids 1-3)
    (1, "alice", "alice@example.com", "A"),
    (2, "bob", "bob@example.com", "I"),
    (3, "carol", "not-an-email", "A"),  # rejected: bad e-mail
    # chunk 2 (ids 4-6)
    (4, "alice", "alice@example.com", "S"),  # duplicate of 1 (another chunk)
    (5, "dave", "dave@example.com", None),  # NULL status -> inactive
    (6, "erin", "erin@example.com", "X"),  # rejected: unmapped status
    # chunk 3 (ids 7-9)
    (7, "bob", "bob@example.com", "A"),  # duplicate of 2 (another chunk)
    (8, "frank", None, "A"),  # a NULL e-mail is not invalid
    (9, "gina", "gina@example.com", "I"),
]
CAMERAS = [
    (1, "Entrance", "North", "Y"),
    (2, "Lobby", None, "N"),
    (3, "Dock", "South", "Y"),
]
ANALYTICS = [
    (1, 1, 5, datetime(2024, 3, 4, 8, 15)),
    (2, 1, -1, datetime(2024, 3, 4, 9, 0)),  # left out by the row filter
    (3, 2, 7, datetime(2024, 3, 4, 23, 59, 59)),
    (4, 3, 0, datetime(2024, 3, 5, 0, 0)),
    (5, 3, 12, datetime(2024, 3, 5, 1, 30)),
]


def make_legacy(pair: Pair, *, extra_tables: bool = True) -> None:
    ts = timestamp_type(pair.source_dialect)
    pair.source_sql(
        "CREATE TABLE users (user_id INTEGER PRIMARY KEY, user_name VARCHAR(50) NOT NULL, "
        "email_address VARCHAR(100), account_status CHAR(1))"
    )
    pair.source_sql(
        "CREATE TABLE cameras (camera_id INTEGER PRIMARY KEY, camera_name VARCHAR(50) NOT NULL, "
        "camera_location VARCHAR(100), is_active CHAR(1) NOT NULL)"
    )
    pair.source_sql(
        "CREATE TABLE analytics (id INTEGER PRIMARY KEY, camera_id INTEGER NOT NULL, "
        f"count INTEGER NOT NULL, timestamp {ts} NOT NULL, "
        "FOREIGN KEY (camera_id) REFERENCES cameras (camera_id))"
    )
    pair.source_sql(
        "INSERT INTO users VALUES (:a, :b, :c, :d)",
        [dict(zip("abcd", r, strict=True)) for r in USERS],
    )
    pair.source_sql(
        "INSERT INTO cameras VALUES (:a, :b, :c, :d)",
        [dict(zip("abcd", r, strict=True)) for r in CAMERAS],
    )
    pair.source_sql(
        "INSERT INTO analytics VALUES (:a, :b, :c, :d)",
        [dict(zip("abcd", r, strict=True)) for r in ANALYTICS],
    )
    if extra_tables:
        for name in ("temp_import", "backup_users", "log_events"):
            pair.source_sql(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)")
            pair.source_sql(f"INSERT INTO {name} VALUES (1)")


LEGACY_JOB = """
tables:
  users:
    columns: {user_id: id, user_name: username, email_address: email, account_status: status}
    values:
      status: {map: {A: active, I: inactive, S: suspended}, unmapped: reject}
    nulls: {status: inactive}
    validate: {email: email}
    dedupe: {on: [username, email], keep: first}
  cameras:
    columns: [camera_id, camera_name, is_active]
    values:
      is_active: {map: {Y: true, N: false}}
  analytics:
    to: readings
    columns: {id: id, camera_id: camera_id, count: count, timestamp: recorded_at}
    where: "count >= 0"
    types: {id: bigint}
    derive: {hour: "HOUR(recorded_at)"}
load: {batch_size: 3}
"""


def test_camera_counting_legacy_copy(pair: Pair) -> None:
    make_legacy(pair)

    report = pair.copy(LEGACY_JOB)

    assert report.status == "completed"
    counts = counts_of(report)
    assert set(counts) == {"users", "cameras", "analytics"}  # temp_*, backup_*, log_* left out
    assert counts["users"] == Counts(read=9, written=5, rejected=2, filtered=0, deduped=2)
    assert counts["cameras"] == Counts(read=3, written=3)
    assert counts["analytics"] == Counts(read=4, written=4)
    assert {t.source: t.target for t in report.tables}["analytics"] == "readings"
    assert {t.source: t.chunks for t in report.tables}["users"] == 3

    assert pair.target_tables() >= {"users", "cameras", "readings"}
    assert not pair.target_tables() & {"analytics", "temp_import", "backup_users", "log_events"}
    assert pair.rows("users", "id", "username", "email", "status") == [
        (1, "alice", "alice@example.com", "active"),
        (2, "bob", "bob@example.com", "inactive"),
        (5, "dave", "dave@example.com", "inactive"),
        (8, "frank", None, "active"),
        (9, "gina", "gina@example.com", "inactive"),
    ]
    assert pair.rows("cameras") == [(1, "Entrance", True), (2, "Lobby", False), (3, "Dock", True)]
    assert pair.rows("readings", "id", "camera_id", "count", "recorded_at", "hour") == [
        (1, 1, 5, datetime(2024, 3, 4, 8, 15), 8),
        (3, 2, 7, datetime(2024, 3, 4, 23, 59, 59), 23),
        (4, 3, 0, datetime(2024, 3, 5, 0, 0), 0),
        (5, 3, 12, datetime(2024, 3, 5, 1, 30), 1),
    ]
    engine = engine_for(pair.target)
    try:
        id_type = Table("readings", MetaData(), autoload_with=engine).c.id.type
    finally:
        engine.dispose()
    assert isinstance(id_type, sat.BigInteger)  # types: {id: bigint}

    assert pair.rejects() == [
        (
            "users",
            [3],
            "validate:email:email",
            "`email` value 'not-an-email' is not a valid email",
            {
                "user_id": 3,
                "user_name": "carol",
                "email_address": "not-an-email",
                "account_status": "A",
            },
        ),
        (
            "users",
            [6],
            "value_map:status",
            "value 'X' of `status` is not in the value map",
            {
                "user_id": 6,
                "user_name": "erin",
                "email_address": "erin@example.com",
                "account_status": "X",
            },
        ),
    ]


def test_existing_target_tables_with_renamed_columns(few: Pair) -> None:
    pair = few
    make_legacy(pair, extra_tables=False)
    pair.target_sql(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username VARCHAR(100) NOT NULL, "
        "email VARCHAR(255), status VARCHAR(20) NOT NULL DEFAULT 'inactive', note VARCHAR(10))"
    )
    pair.target_sql(
        "CREATE TABLE cameras (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, "
        "location VARCHAR(200), is_active BOOLEAN NOT NULL)"
    )
    pair.target_sql(
        "CREATE TABLE analytics (id BIGINT PRIMARY KEY, camera_id INTEGER NOT NULL, "
        f"count INTEGER NOT NULL, recorded_at {timestamp_type(pair.target_dialect)} NOT NULL, "
        "FOREIGN KEY (camera_id) REFERENCES cameras (id))"
    )

    report = pair.copy(
        """
        tables:
          users:
            columns: {user_id: id, user_name: username, email_address: email,
                      account_status: status}
            values:
              status: {map: {A: active, I: inactive, S: suspended}, unmapped: "null"}
            nulls: {status: inactive}
            validate: {email: {rule: email, on_fail: "null"}}
            dedupe: {on: [username, email], keep: last}
          cameras:
            columns: {camera_id: id, camera_name: name, camera_location: location,
                      is_active: is_active}
            values:
              is_active: {map: {Y: true, N: false}}
          analytics:
            columns: {id: id, camera_id: camera_id, count: count, timestamp: recorded_at}
        load: {batch_size: 3}
        """
    )

    counts = counts_of(report)
    assert counts["users"] == Counts(read=9, written=7, deduped=2)
    assert counts["cameras"] == Counts(read=3, written=3)
    assert counts["analytics"] == Counts(read=5, written=5)
    assert not any(t.created for t in report.tables)
    # keep: last keeps the highest key of each (username, email); the unmapped X becomes NULL
    # and then the NULL rule's default; the bad address becomes NULL.
    assert pair.rows("users", "id", "username", "email", "status", "note") == [
        (3, "carol", None, "active", None),
        (4, "alice", "alice@example.com", "suspended", None),
        (5, "dave", "dave@example.com", "inactive", None),
        (6, "erin", "erin@example.com", "inactive", None),
        (7, "bob", "bob@example.com", "active", None),
        (8, "frank", None, "active", None),
        (9, "gina", "gina@example.com", "inactive", None),
    ]
    assert pair.rows("cameras") == [
        (1, "Entrance", "North", True),
        (2, "Lobby", None, False),
        (3, "Dock", "South", True),
    ]
    assert [r[:3] for r in pair.rows("analytics")] == [
        (1, 1, 5),
        (2, 1, -1),
        (3, 2, 7),
        (4, 3, 0),
        (5, 3, 12),
    ]
    assert pair.rejects() == []


# ----------------------------------------------------------------- rule by rule


def _people(pair: Pair, rows: list[tuple[Any, ...]]) -> None:
    pair.source_sql(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, kind VARCHAR(10), tier INTEGER, "
        "a VARCHAR(20), b VARCHAR(20), c INTEGER, d VARCHAR(20))"
    )
    pair.source_sql(
        "INSERT INTO people VALUES (:id, :kind, :tier, :a, :b, :c, :d)",
        [dict(zip(["id", "kind", "tier", "a", "b", "c", "d"], r, strict=True)) for r in rows],
    )


def test_value_maps_unmapped_keep_and_null(few: Pair) -> None:
    _people(
        few,
        [
            (1, "a", 1, None, None, None, None),
            (2, "b", 2, None, None, None, None),
            (3, "unknown", 3, None, None, None, None),
            (4, None, None, None, None, None, None),
        ],
    )
    report = few.copy(
        """
        tables:
          people:
            columns: [id, kind, tier]
            values:
              kind: {map: {a: alpha, b: beta}, unmapped: keep}
              tier: {map: {1: gold, 2: silver}, unmapped: "null"}
        load: {batch_size: 2}
        """
    )
    assert counts_of(report)["people"] == Counts(read=4, written=4)
    assert few.rows("people") == [
        (1, "alpha", "gold"),
        (2, "beta", "silver"),
        (3, "unknown", None),
        (4, None, None),
    ]


def test_value_map_with_an_unquoted_yaml_null(lite: Pair) -> None:
    """`unmapped: null` unquoted is YAML's null: it means "null" or is refused, never a crash."""
    _people(lite, [(1, "a", None, None, None, None, None), (2, "q", None, None, None, None, None)])
    body = "tables:\n  people:\n    columns: [id, kind]\n    values:\n"
    body += "      kind: {map: {a: alpha}, unmapped: null}\n"
    try:
        lite.copy(body)
    except ConfigError as error:
        assert "tables.people.values.kind" in str(error)  # noqa: PT017
        return
    assert lite.rows("people") == [(1, "alpha"), (2, None)]


def test_null_rules_preserve_default_remove(few: Pair) -> None:
    _people(
        few,
        [
            (1, "k", None, None, "b1", None, None),
            (2, "k", None, "a2", None, 5, "d2"),  # NULL in b: removed (filtered)
            (3, "k", None, None, "b3", 7, None),
            (4, "k", None, "a4", None, None, None),  # NULL in b: removed (filtered)
        ],
    )
    report = few.copy(
        """
        tables:
          people:
            columns: [id, a, b, c, d]
            nulls:
              a: preserve
              b: remove
              c: 0
              d: {action: default, value: "n/a"}
        load: {batch_size: 2}
        """
    )
    assert counts_of(report)["people"] == Counts(read=4, written=2, filtered=2)
    assert few.rows("people") == [(1, None, "b1", 0, "n/a"), (3, None, "b3", 7, "n/a")]
    assert few.rejects() == []


def test_validation_rules_reject_and_null(few: Pair) -> None:
    few.source_sql(
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, email VARCHAR(50), phone VARCHAR(30), "
        "born VARCHAR(30), amount VARCHAR(20))"
    )
    rows = [
        (1, "ok@example.com", "+1 650-253-0000", "2024-02-29", "12.50"),
        (2, "nope@", "+1 650-253-0000", "2024-01-01", "1e3"),  # email -> NULL
        (3, "x@example.com", "12", "2024-01-01", "7"),  # bad phone: rejected
        (4, "y@example.com", None, "2023-02-29", "8"),  # no such day: rejected
        (5, "z@example.com", "(650) 253-0000", "2024-12-31 23:59:59", "abc"),  # amount -> NULL
        (6, None, None, None, None),
    ]
    few.source_sql(
        "INSERT INTO contacts VALUES (:a, :b, :c, :d, :e)",
        [dict(zip("abcde", r, strict=True)) for r in rows],
    )
    report = few.copy(
        """
        tables:
          contacts:
            validate:
              email: {rule: email, on_fail: "null"}
              phone: {rule: phone, region: US}
              born: date
              amount: {rule: numeric, on_fail: "null"}
        load: {batch_size: 4}
        """
    )
    assert counts_of(report)["contacts"] == Counts(read=6, written=4, rejected=2)
    assert few.rows("contacts") == [
        (1, "ok@example.com", "+1 650-253-0000", "2024-02-29", "12.50"),
        (2, None, "+1 650-253-0000", "2024-01-01", "1e3"),
        (5, "z@example.com", "(650) 253-0000", "2024-12-31 23:59:59", None),
        (6, None, None, None, None),
    ]
    assert few.rejects() == [
        (
            "contacts",
            [3],
            "validate:phone:phone",
            "`phone` value '12' is not a valid phone",
            {"id": 3, "email": "x@example.com", "phone": "12", "born": "2024-01-01", "amount": "7"},
        ),
        (
            "contacts",
            [4],
            "validate:born:date",
            "`born` value '2023-02-29' is not a valid date",
            {"id": 4, "email": "y@example.com", "phone": None, "born": "2023-02-29", "amount": "8"},
        ),
    ]


def test_validation_fail_stops_with_data_error(few: Pair) -> None:
    _people(few, [(i, "k", None, f"a{i}@example.com", None, None, None) for i in range(1, 7)])
    few.source_sql("UPDATE people SET a = 'broken' WHERE id = 5")
    with pytest.raises(DataError, match=r"table `people`.*column `a` fails the `email` rule"):
        few.copy(
            """
            tables:
              people:
                columns: [id, a]
                validate: {a: {rule: email, on_fail: fail}}
            load: {batch_size: 3, workers: 1}
            """
        )
    # The first chunk committed before the failing one; nothing of the failing chunk.
    assert few.rows("people") == [(i, f"a{i}@example.com") for i in (1, 2, 3)]
    assert few.rejects() == []


def test_dedupe_keep_last_across_batches(few: Pair) -> None:
    _people(
        few,
        [
            (1, "x", 1, None, None, None, None),
            (2, "y", 1, None, None, None, None),
            (3, "x", 2, None, None, None, None),
            (4, "z", 1, None, None, None, None),
            (5, "y", 3, None, None, None, None),
            (6, "x", 4, None, None, None, None),
            (7, "w", 1, None, None, None, None),
        ],
    )
    report = few.copy(
        """
        tables:
          people:
            columns: [id, kind, tier]
            dedupe: {on: [kind], keep: last}
        load: {batch_size: 2}
        """
    )
    assert counts_of(report)["people"] == Counts(read=7, written=4, deduped=3)
    assert report.tables[0].chunks >= 3  # duplicates meet across chunks
    assert few.rows("people") == [(4, "z", 1), (5, "y", 3), (6, "x", 4), (7, "w", 1)]


def test_include_exclude_and_named_tables(tmp_path: Path) -> None:
    with make_pair((LITE, LITE), tmp_path) as pair:
        for name in ("users", "users_old", "cameras", "temp_x", "log_events", "audit"):
            pair.source_sql(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)")
            pair.source_sql(f"INSERT INTO {name} VALUES (1)")

        report = pair.copy(
            """
            include: ["user*", "cam*", "temp_*", "log_*"]
            exclude: ["*_old", "temp_*"]
            """
        )
        # `exclude` replaces the default exclusions, so log_* is copied now.
        assert sorted(t.source for t in report.tables) == ["cameras", "log_events", "users"]
        assert pair.target_tables() >= {"cameras", "log_events", "users"}
        assert not pair.target_tables() & {"users_old", "temp_x", "audit"}

        # The defaults leave out temp_*, backup_*, log_*; a table named under `tables` is
        # copied all the same.
        pair.target = f"sqlite:///{tmp_path / 'second.db'}"
        report = pair.copy("tables:\n  temp_x:\n")
        assert sorted(t.source for t in report.tables) == [
            "audit",
            "cameras",
            "temp_x",
            "users",
            "users_old",
        ]
        assert "log_events" not in pair.target_tables()


# --------------------------------------------------------------- schema translation


def _schema_source(pair: Pair) -> None:
    d = pair.source_dialect
    auto = {
        MY: "INTEGER AUTO_INCREMENT PRIMARY KEY",
        PG: "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        LITE: "INTEGER PRIMARY KEY AUTOINCREMENT",
    }[d]
    flag = "TINYINT(1)" if d == MY else "BOOLEAN"
    pair.source_sql(
        f"CREATE TABLE parent (id {auto}, code VARCHAR(20) NOT NULL, "
        "name VARCHAR(50) NOT NULL DEFAULT 'unnamed', qty INTEGER DEFAULT 0, "
        f"flag {flag} NOT NULL, CONSTRAINT parent_code_uq UNIQUE (code))"
    )
    pair.source_sql("CREATE INDEX parent_name_ix ON parent (name)")
    pair.source_sql(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, "
        "note VARCHAR(100), CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) "
        "REFERENCES parent (id))"
    )
    pair.source_sql("CREATE VIEW parent_names AS SELECT id, name FROM parent")
    pair.source_sql(
        "INSERT INTO parent (id, code, name, qty, flag) VALUES (:i, :c, :n, :q, :f)",
        [
            {"i": 1, "c": "p1", "n": "one", "q": 3, "f": True},
            {"i": 2, "c": "p2", "n": "two", "q": None, "f": False},
            {"i": 5, "c": "p5", "n": "five", "q": 0, "f": True},
        ],
    )
    pair.source_sql(
        "INSERT INTO child VALUES (:i, :p, :n)",
        [{"i": i, "p": p, "n": f"c{i}"} for i, p in [(1, 1), (2, 1), (3, 5), (4, 2)]],
    )


def test_schema_translation_when_ferry_creates_tables(pair: Pair) -> None:
    _schema_source(pair)

    report = pair.copy("load: {batch_size: 2}\n")

    # The view translates (sqlglot) and is created on the target, over the copied rows.
    assert report.views_created == ["parent_names"]
    assert report.needs_translation == []
    assert sorted(pair.rows("parent_names")) == sorted(pair.rows("parent", "id", "name"))
    assert {t.source: t.created for t in report.tables} == {"parent": True, "child": True}
    assert pair.rows("parent") == [
        (1, "p1", "one", 3, True),
        (2, "p2", "two", None, False),
        (5, "p5", "five", 0, True),
    ]
    assert pair.rows("child") == [(1, 1, "c1"), (2, 1, "c2"), (3, 5, "c3"), (4, 2, "c4")]

    engine = engine_for(pair.target)
    try:
        insp = inspect(engine)
        assert insp.get_pk_constraint("parent")["constrained_columns"] == ["id"]
        assert insp.get_pk_constraint("child")["constrained_columns"] == ["id"]
        indexes = {tuple(i["column_names"]): bool(i["unique"]) for i in insp.get_indexes("parent")}
        uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("parent")}
        assert indexes.get(("code",)) is True or ("code",) in uniques
        assert indexes.get(("name",)) is False
        columns = {c["name"]: c for c in insp.get_columns("parent")}
        assert columns["code"]["nullable"] is False
        assert columns["name"]["nullable"] is False
        assert columns["qty"]["nullable"] is True
        assert columns["flag"]["nullable"] is False
        if pair.target_dialect == PG:
            assert isinstance(columns["flag"]["type"], sat.Boolean)
        # The key keeps generating values, after the largest id copied.
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO parent (code, name, qty, flag) VALUES ('p6', 'six', 1, TRUE)")
            )
            new_id = conn.execute(text("SELECT id FROM parent WHERE code = 'p6'")).scalar_one()
        assert new_id == 6
        fks = insp.get_foreign_keys("child")
        assert [
            (f["constrained_columns"], f["referred_table"], f["referred_columns"]) for f in fks
        ] == [(["parent_id"], "parent", ["id"])]
        assert report.warnings == []
    finally:
        engine.dispose()
    # The foreign key holds: an orphan child is refused.
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        pair.target_sql("INSERT INTO child VALUES (99, 42, 'orphan')")


def test_column_defaults_come_along(few: Pair) -> None:
    _schema_source(few)
    few.copy("tables: {parent: }\n")
    # A row that leaves the columns out gets the source's defaults.
    few.target_sql("INSERT INTO parent (id, code, flag) VALUES (7, 'p7', FALSE)")
    assert few.rows("parent", "id", "name", "qty")[-1] == (7, "unnamed", 0)


# --------------------------------------------------------------------------- chunking


def test_chunking_integer_string_and_composite_keys(pair: Pair) -> None:
    pair.source_sql("CREATE TABLE ints (id INTEGER PRIMARY KEY, v VARCHAR(10))")
    pair.source_sql("CREATE TABLE strs (code VARCHAR(20) PRIMARY KEY, v INTEGER)")
    pair.source_sql(
        "CREATE TABLE pairs (a INTEGER NOT NULL, b VARCHAR(10) NOT NULL, v INTEGER, "
        "PRIMARY KEY (a, b))"
    )
    int_ids = [1, 2, 3, 7, 8, 50, 51, 52, 99, 1000, 1001]  # gaps: uneven chunks
    pair.source_sql("INSERT INTO ints VALUES (:i, :v)", [{"i": i, "v": f"v{i}"} for i in int_ids])
    codes = ["a", "ab", "b", "ba", "c", "d1", "d2", "e", "f", "g0", "zz"]
    pair.source_sql(
        "INSERT INTO strs VALUES (:c, :v)", [{"c": c, "v": n} for n, c in enumerate(codes)]
    )
    composite = [(a, b) for a in (1, 2, 3) for b in ("x", "y", "z", "zz")]
    pair.source_sql(
        "INSERT INTO pairs VALUES (:a, :b, :v)",
        [{"a": a, "b": b, "v": n} for n, (a, b) in enumerate(composite)],
    )

    report = pair.copy("load: {batch_size: 3, workers: 3}\n")

    chunks = {t.source: t.chunks for t in report.tables}
    assert chunks["strs"] >= 4
    assert chunks["pairs"] >= 4
    assert chunks["ints"] >= 2
    counts = counts_of(report)
    assert counts["ints"] == Counts(read=11, written=11)
    assert counts["strs"] == Counts(read=11, written=11)
    assert counts["pairs"] == Counts(read=12, written=12)
    assert pair.rows("ints") == [(i, f"v{i}") for i in int_ids]
    assert pair.rows("strs") == sorted((c, n) for n, c in enumerate(codes))
    got = sorted(pair.rows("pairs", "v", "a", "b"))
    assert got == [(n, a, b) for n, (a, b) in enumerate(composite)]


def test_date_time_and_bytes_keys_are_read_by_the_fast_reader(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunk bounds come back from the checkpoint table as JSON text: a date compared as text
    # cannot be written as a literal, and every chunk then went through the driver's Python
    # rows (37 s instead of 4 s for 3.9 million rows). connectorx must read every chunk.
    from ferry.data import extract

    if pair.source_dialect in (MY, PG):

        def no_driver_rows(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a chunk was read through the driver, not connectorx")

        monkeypatch.setattr(extract, "_driver_rows", no_driver_rows)
    stamp = timestamp_type(pair.source_dialect)
    blob = {MY: "VARBINARY(16)", PG: "BYTEA", LITE: "BLOB"}[pair.source_dialect]
    pair.source_sql(
        "CREATE TABLE salaries (emp_no INTEGER NOT NULL, from_date DATE NOT NULL, "
        "salary INTEGER NOT NULL, PRIMARY KEY (emp_no, from_date))"
    )
    pair.source_sql(f"CREATE TABLE readings (taken_at {stamp} PRIMARY KEY, v INTEGER)")
    pair.source_sql(f"CREATE TABLE tokens (token {blob} NOT NULL PRIMARY KEY, v INTEGER)")
    salaries = [
        (e, f"20{y:02d}-0{m}-01", e * 100 + y) for e in (1, 2) for y in (1, 2, 3) for m in (1, 7)
    ]
    pair.source_sql(
        "INSERT INTO salaries VALUES (:e, :d, :s)",
        [{"e": e, "d": d, "s": s} for e, d, s in salaries],
    )
    readings = [datetime(2024, 1, 1, h, m, 30) for h in (0, 9, 23) for m in (0, 15, 59)]
    pair.source_sql(
        "INSERT INTO readings VALUES (:t, :v)", [{"t": t, "v": n} for n, t in enumerate(readings)]
    )
    tokens = [bytes([n, 255 - n, 0, 39]) for n in range(9)]  # a zero byte and a quote
    pair.source_sql(
        "INSERT INTO tokens VALUES (:t, :v)", [{"t": t, "v": n} for n, t in enumerate(tokens)]
    )

    report = pair.copy("load: {batch_size: 2, workers: 2}\n")

    assert {t.source: t.chunks >= 4 for t in report.tables} == dict.fromkeys(
        ("salaries", "readings", "tokens"), True
    )
    counts = counts_of(report)
    assert counts["salaries"] == Counts(read=12, written=12)
    assert counts["readings"] == Counts(read=9, written=9)
    assert counts["tokens"] == Counts(read=9, written=9)
    got = pair.rows("salaries", "emp_no", "from_date", "salary")
    assert sorted((e, str(d), s) for e, d, s in got) == sorted(salaries)
    assert pair.rows("readings", "v", "taken_at") == [(n, t) for n, t in enumerate(readings)]
    assert sorted(pair.rows("tokens", "v", "token")) == [(n, t) for n, t in enumerate(tokens)]


def test_long_text_in_an_indexed_column_reaches_mariadb(tmp_path: Path) -> None:
    # Only a primary key's unbounded text becomes VARCHAR(255) on MySQL; an indexed column
    # keeps every value (MariaDB indexes a prefix of it).
    with make_pair((PG, MY), tmp_path) as pair:
        pair.source_sql("CREATE TABLE docs (id INTEGER PRIMARY KEY, url TEXT NOT NULL)")
        pair.source_sql("CREATE INDEX docs_url ON docs (url)")
        urls = [f"https://example.org/{'x' * 300}{n}" for n in range(1, 11)]
        pair.source_sql(
            "INSERT INTO docs VALUES (:i, :u)", [{"i": n, "u": u} for n, u in enumerate(urls, 1)]
        )
        report = pair.copy("tables: {docs: }\n")
        assert counts_of(report)["docs"] == Counts(read=10, written=10)
        assert pair.rows("docs") == list(enumerate(urls, 1))


def test_a_table_connectorx_cannot_read_goes_to_the_driver_once_and_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # connectorx has no PostgreSQL interval: the first chunk learns it, the others go to the
    # driver at once, and the report says why.
    import connectorx

    from ferry.data import extract

    calls: list[str] = []
    original = connectorx.read_sql

    def counted(url: str, query: str, **options: Any) -> Any:
        calls.append(query)
        return original(url, query, **options)

    monkeypatch.setattr(extract.cx, "read_sql", counted)
    with make_pair((PG, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE shifts (id INTEGER PRIMARY KEY, length INTERVAL NOT NULL)")
        pair.source_sql(
            "INSERT INTO shifts SELECT g, g * INTERVAL '1 minute' FROM generate_series(1, 40) g"
        )
        report = pair.copy("tables: {shifts: }\nload: {batch_size: 10, workers: 2}\n")
        assert counts_of(report)["shifts"] == Counts(read=40, written=40)
        assert [t.chunks for t in report.tables] == [4]
        named = [w for w in report.warnings if "`shifts` is read through the database driver" in w]
        assert len(named) == 1
        assert "interval" in named[0]
        reads = [q for q in calls if "FROM shifts" in q and "length" in q]
        assert 1 <= len(reads) <= 2  # one per worker that raced to the first chunks, at most
        assert pair.rows("shifts")[-1] == (40, timedelta(minutes=40))


# ---------------------------------------------------------------------- error limits


def _scored(pair: Pair, total: int, bad_every: int) -> None:
    pair.source_sql("CREATE TABLE scores (id INTEGER PRIMARY KEY, email VARCHAR(40))")
    pair.source_sql(
        "INSERT INTO scores VALUES (:i, :e)",
        [
            {"i": i, "e": "bad" if i % bad_every == 0 else f"u{i}@example.com"}
            for i in range(1, total + 1)
        ],
    )


def _target_count(pair: Pair, table: str) -> int:
    engine = engine_for(pair.target)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


SCORES_JOB = """
tables:
  scores:
    validate: {{email: email}}
load: {{batch_size: {batch}, workers: 1}}
errors: {{{errors}}}
"""


def test_max_errors_aborts_and_a_rerun_resumes(few: Pair) -> None:
    _scored(few, total=12, bad_every=4)  # bad: 4, 8, 12; chunks of 3 ids
    with pytest.raises(DataError, match=r"2 rows rejected, more than errors\.max_errors = 1"):
        few.copy(SCORES_JOB.format(batch=3, errors="max_errors: 1"))
    # Chunks 1-3 and 4-6 load (one reject); 7-9 loads with the second reject, then the run stops.
    assert _target_count(few, "scores") == 7
    assert [r[1] for r in few.rejects()] == [[4], [8]]

    report = few.copy(SCORES_JOB.format(batch=3, errors="max_errors: 10"))

    assert [(t.source, t.chunks, t.chunks_resumed) for t in report.tables] == [("scores", 4, 3)]
    assert counts_of(report)["scores"] == Counts(read=12, written=9, rejected=3)
    assert few.rows("scores", "id") == [(i,) for i in range(1, 13) if i % 4]
    assert [r[1] for r in few.rejects()] == [[4], [8], [12]]


def test_max_error_rate_aborts_and_a_rerun_resumes(tmp_path: Path) -> None:
    with make_pair((MY, PG), tmp_path) as pair:
        _scored(pair, total=1500, bad_every=10)  # 10 % bad
        with pytest.raises(DataError, match=r"over errors\.max_error_rate = 5\.0%"):
            pair.copy(SCORES_JOB.format(batch=500, errors="max_error_rate: 0.05"))
        # The rate counts from 1000 rows read on: the second chunk stops the run.
        assert _target_count(pair, "scores") == 900
        assert _target_count(pair, "ferry_rejects") == 100

        report = pair.copy(SCORES_JOB.format(batch=500, errors="max_error_rate: 0.2"))

        assert [(t.source, t.chunks, t.chunks_resumed) for t in report.tables] == [("scores", 3, 2)]
        assert counts_of(report)["scores"] == Counts(read=1500, written=1350, rejected=150)
        assert _target_count(pair, "scores") == 1350
        assert _target_count(pair, "ferry_rejects") == 150


# ------------------------------------------------------------- rows refused at load


def test_rows_refused_by_the_database_go_to_rejects(pair: Pair) -> None:
    ts = timestamp_type(pair.source_dialect)
    pair.source_sql(
        f"CREATE TABLE readings (id INTEGER PRIMARY KEY, code VARCHAR(10), n INTEGER, at {ts})"
    )
    source_rows = [
        (1, "r1", 5),
        (2, "r2", -3),  # refused: CHECK (n >= 0)
        (3, "r3", 7),
        (4, "r1", 8),  # refused: unique code
        (5, "r5", 9),
        (6, "r6", 1),
    ]
    pair.source_sql(
        "INSERT INTO readings VALUES (:i, :c, :n, NULL)",
        [{"i": i, "c": c, "n": n} for i, c, n in source_rows],
    )
    pair.target_sql(
        "CREATE TABLE readings (id INTEGER PRIMARY KEY, code VARCHAR(10), n INTEGER, "
        f"at {timestamp_type(pair.target_dialect)} NULL, CONSTRAINT n_not_negative CHECK (n >= 0))"
    )
    pair.target_sql("CREATE UNIQUE INDEX readings_code_unique ON readings (code)")

    report = pair.copy("load: {batch_size: 6}\n")

    assert counts_of(report)["readings"] == Counts(read=6, written=4, rejected=2)
    assert pair.rows("readings", "id", "code", "n") == [
        (1, "r1", 5),
        (3, "r3", 7),
        (5, "r5", 9),
        (6, "r6", 1),
    ]
    found = pair.rejects()
    assert [(t, k, r, d) for t, k, r, _, d in found] == [
        ("readings", [2], "load", {"id": 2, "code": "r2", "n": -3, "at": None}),
        ("readings", [4], "load", {"id": 4, "code": "r1", "n": 8, "at": None}),
    ]
    check_error, unique_error = found[0][3], found[1][3]
    assert "n_not_negative" in check_error
    if pair.target_dialect == PG:
        assert check_error.startswith('new row for relation "readings" violates check constraint')
        assert unique_error.startswith("duplicate key value violates unique constraint")
    elif pair.target_dialect == MY:
        assert "Duplicate entry 'r1'" in unique_error
    else:
        assert "UNIQUE constraint failed: readings.code" in unique_error


# ------------------------------------------------------------ rerun and restart


def test_rerun_copies_nothing_and_restart_copies_again(few: Pair) -> None:
    pair = few
    make_legacy(pair, extra_tables=False)
    first = pair.copy(LEGACY_JOB)
    before = {name: pair.rows(name) for name in ("users", "cameras", "readings")}
    rejects_before = pair.rejects()

    again = pair.copy(LEGACY_JOB)

    assert counts_of(again) == counts_of(first)
    assert {t.source: t.chunks_resumed for t in again.tables} == {
        t.source: t.chunks for t in first.tables
    }
    assert {name: pair.rows(name) for name in ("users", "cameras", "readings")} == before
    assert pair.rejects() == rejects_before

    restarted = pair.copy(LEGACY_JOB, restart=True)

    assert counts_of(restarted) == counts_of(first)
    assert all(t.chunks_resumed == 0 for t in restarted.tables)
    assert {name: pair.rows(name) for name in ("users", "cameras", "readings")} == before
    assert pair.rejects() == rejects_before


# ------------------------------------------------------------------- bad job specs


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Pair]:
    with make_pair((LITE, LITE), tmp_path) as made:
        yield made


def test_unknown_table_names_the_key(lite: Pair) -> None:
    make_legacy(lite, extra_tables=False)
    with pytest.raises(ConfigError, match=r"key `tables\.nope`.*source has no table `nope`"):
        lite.copy("tables:\n  nope:\n")
    assert lite.target_tables() == set()


def test_unknown_source_column_names_the_key(lite: Pair) -> None:
    make_legacy(lite, extra_tables=False)
    with pytest.raises(ConfigError, match=r"key `tables\.users\.columns\.nick`"):
        lite.copy("tables:\n  users:\n    columns: {user_id: id, nick: name}\n")
    assert lite.target_tables() == set()


def test_mapping_to_a_column_the_target_lacks(lite: Pair) -> None:
    make_legacy(lite, extra_tables=False)
    lite.target_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, username VARCHAR(50))")
    with pytest.raises(ConfigError, match=r"key `tables\.users`.*has no column `email`"):
        lite.copy(
            "tables:\n  users:\n    columns: {user_id: id, user_name: username, "
            "email_address: email}\n"
        )
    assert lite.rows("users") == []


@pytest.mark.parametrize("dialect", [PG, MY, LITE])
def test_where_syntax_error_names_the_key(dialect: str, tmp_path: Path) -> None:
    with make_pair((dialect, LITE), tmp_path) as pair:
        make_legacy(pair, extra_tables=False)
        with pytest.raises(ConfigError, match=r"key `tables\.users\.where`"):
            pair.copy('tables:\n  users:\n    where: "user_id >>= ("\n')
        assert pair.target_tables() == set()


def test_unknown_yaml_key_is_a_config_error(tmp_path: Path) -> None:
    text_ = "source: sqlite:///a.db\ntarget: sqlite:///b.db\ntables:\n  users:\n    colums: [a]\n"
    with pytest.raises(ConfigError, match=r"key `tables\.users\.colums`.*unknown key"):
        parse_job(text_, path=tmp_path / "job.yaml")
    with pytest.raises(ConfigError, match=r"key `lod`"):
        parse_job("source: a\ntarget: b\nlod: {}\n", path=tmp_path / "job.yaml")


@pytest.mark.parametrize("dialect", [PG, MY, LITE])
def test_a_key_with_nulls_is_refused_before_anything_changes(dialect: str, tmp_path: Path) -> None:
    # No key range holds a row whose key is NULL: it would be silently left behind.
    with make_pair((dialect, LITE), tmp_path) as pair:
        pair.source_sql("CREATE TABLE readings (id INTEGER PRIMARY KEY, serial VARCHAR(10))")
        pair.source_sql("INSERT INTO readings VALUES (1, 'a'), (2, NULL), (3, 'c'), (4, NULL)")
        job = "tables:\n  readings:\n    key: [serial]\n"
        with pytest.raises(ConfigError, match=r"key `tables\.readings\.key`.*2 rows .*NULL"):
            pair.copy(job)
        assert pair.target_tables() == set()
        # Leaving those rows out is a way through, and then every other row arrives.
        report = pair.copy(job + "    where: serial IS NOT NULL\n")
        assert counts_of(report)["readings"] == Counts(read=2, written=2)


def test_a_key_with_no_order_is_refused_before_anything_changes(tmp_path: Path) -> None:
    """PostgreSQL's json has no order (MariaDB's JSON is text, which has one)."""
    with make_pair((PG, LITE), tmp_path) as pair:
        pair.source_sql("CREATE TABLE docs (id INTEGER PRIMARY KEY, body JSON)")
        pair.source_sql("""INSERT INTO docs VALUES (1, '{"a": 1}')""")
        job = "tables:\n  docs:\n    key: [body]\n"
        with pytest.raises(ConfigError, match=r"key `tables\.docs\.key`.*has no order"):
            pair.copy(job)
        assert pair.target_tables() == set()
        path = pair.folder / "job.yaml"
        path.write_text(pair.spec_text(job), encoding="utf-8")
        with pytest.raises(ConfigError, match=r"has no order"):
            verify_job(parse_job(path.read_text(encoding="utf-8"), path=path), spec_path=path)
