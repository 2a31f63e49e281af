"""Schema translation and type round-trips that went wrong: MySQL BIT and SET columns, TIME
values past a day, now() and boolean defaults, PostgreSQL's unbounded NUMERIC, INTERVAL and
arrays into MariaDB, referential actions of foreign keys, and ids that continue after a copy.

Each test builds its source with plain SQL, lets Ferry create the target table, and reads
the target back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ferry.data.copy_report import SourceReadError
from ferry.data.spec import parse_job
from ferry.data.state import Counts
from ferry.validate.data import verify_job
from tests.conftest import engine_for
from tests.integration.test_copy import LITE, MY, PG, Pair, _pair_id, counts_of, make_pair

pytestmark = pytest.mark.integration

JOB = "load: {batch_size: 2}\n"


@pytest.fixture
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with make_pair(request.param, tmp_path) as made:
        yield made


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return [tuple(r) for r in result.all()] if result.returns_rows else []
    finally:
        engine.dispose()


def rejects(pair: Pair) -> list[tuple[Any, ...]]:
    if "ferry_rejects" not in pair.target_tables():
        return []
    return query(pair.target, "SELECT rule, error FROM ferry_rejects")


# ------------------------------------------------------------------------ MariaDB sources


@pytest.mark.parametrize("pair", [(MY, PG)], indirect=True, ids=_pair_id)
def test_mysql_bit_columns_arrive_as_numbers(pair: Pair) -> None:
    # BIT values come out of MySQL as bytes; every row was rejected ("b'\x01' cannot be
    # converted to bool").
    pair.source_sql("CREATE TABLE flags (id INT PRIMARY KEY, b1 BIT(1), b8 BIT(8), b64 BIT(64))")
    pair.source_sql(
        "INSERT INTO flags VALUES (1, b'1', b'10000001', b'1' << 63 | 5), (2, b'0', 0, 0), "
        "(3, NULL, NULL, NULL), (4, 1, 255, 18446744073709551615)"
    )

    report = pair.copy(JOB)

    assert rejects(pair) == []
    assert counts_of(report) == {"flags": Counts(read=4, written=4)}
    assert pair.rows("flags") == [
        (1, True, 129, Decimal(2**63 + 5)),
        (2, False, 0, Decimal(0)),
        (3, None, None, None),
        (4, True, 255, Decimal(2**64 - 1)),
    ]


@pytest.mark.parametrize("pair", [(MY, PG)], indirect=True, ids=_pair_id)
def test_mysql_set_column_holds_every_member(pair: Pair) -> None:
    # A SET value joins its members with commas: the column was VARCHAR(255) whatever the
    # members, so a value of all of them was rejected as too long.
    a, b, c = "a" * 100, "b" * 100, "c" * 100
    pair.source_sql(f"CREATE TABLE tags (id INT PRIMARY KEY, s SET('{a}', '{b}', '{c}'))")
    pair.source_sql(f"INSERT INTO tags VALUES (1, '{a},{b},{c}'), (2, ''), (3, '{b}')")

    report = pair.copy(JOB)

    assert rejects(pair) == []
    assert counts_of(report) == {"tags": Counts(read=3, written=3)}
    assert pair.rows("tags") == [(1, f"{a},{b},{c}"), (2, ""), (3, b)]


@pytest.mark.parametrize("pair", [(MY, PG)], indirect=True, ids=_pair_id)
def test_mysql_time_beyond_a_day_is_not_wrapped(pair: Pair) -> None:
    # MySQL TIME spans -838:59:59 to 838:59:59. 838:59:59 arrived as 22:59:59 and -00:00:01
    # as 23:59:59 (SQLAlchemy keeps the duration modulo a day), silently.
    pair.source_sql("CREATE TABLE shifts (id INT PRIMARY KEY, t TIME(6))")
    pair.source_sql(
        "INSERT INTO shifts VALUES (1, '00:00:00'), (2, '23:59:59.999999'), (3, NULL), "
        "(4, '12:30:00.5')"
    )
    pair.source_sql("CREATE TABLE long_shifts (id INT PRIMARY KEY, t TIME)")
    pair.source_sql("INSERT INTO long_shifts VALUES (1, '10:00:00'), (2, '838:59:59')")

    with pytest.raises(SourceReadError, match=r"`t` holds 838:59:59") as caught:
        pair.copy("include: [long_shifts]\n" + JOB)
    assert "`where:`" in (caught.value.hint or "")  # not "run again to resume": that fails
    assert (2, time(22, 59, 59)) not in pair.rows("long_shifts")

    pair.copy("include: [shifts]\n" + JOB)
    assert pair.rows("shifts") == [
        (1, time(0, 0)),
        (2, time(23, 59, 59, 999999)),
        (3, None),
        (4, time(12, 30, 0, 500000)),
    ]


@pytest.mark.parametrize("pair", [(MY, PG)], indirect=True, ids=_pair_id)
def test_mysql_now_defaults_with_precision_and_on_update_are_kept(pair: Pair) -> None:
    # MariaDB reflects `current_timestamp(6)` and `current_timestamp() ON UPDATE
    # current_timestamp()`: both defaults were dropped, so the NOT NULL column refused an
    # INSERT that left it out.
    pair.source_sql(
        "CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(10), "
        "changed TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, "
        "created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
    )
    pair.source_sql("INSERT INTO events (name) VALUES ('a')")

    pair.copy(JOB)

    pair.target_sql("INSERT INTO events (name) VALUES ('b')")
    rows = pair.rows("events")
    assert [r[:2] for r in rows] == [(1, "a"), (2, "b")]
    assert all(isinstance(r[2], datetime) and isinstance(r[3], datetime) for r in rows)


# --------------------------------------------------------------------- PostgreSQL sources


@pytest.mark.parametrize("pair", [(PG, PG), (PG, MY)], indirect=True, ids=_pair_id)
def test_boolean_defaults_are_kept(pair: Pair) -> None:
    # PostgreSQL reflects a boolean default as `true`/`false`, which the literal pattern
    # did not know: the default was dropped.
    pair.source_sql(
        "CREATE TABLE prefs (id INT PRIMARY KEY, name VARCHAR(10), "
        "on_ BOOLEAN NOT NULL DEFAULT true, off_ BOOLEAN DEFAULT false)"
    )
    pair.source_sql("INSERT INTO prefs VALUES (1, 'a', false, true)")

    pair.copy(JOB)

    pair.target_sql("INSERT INTO prefs (id, name) VALUES (2, 'b')")
    assert [(i, bool(a), bool(b)) for i, _, a, b in pair.rows("prefs")] == [
        (1, False, True),
        (2, True, False),
    ]


@pytest.mark.parametrize("pair", [(PG, MY)], indirect=True, ids=_pair_id)
def test_unbounded_numeric_keeps_its_fractions_in_mariadb(pair: Pair) -> None:
    # NUMERIC without precision became MariaDB's DECIMAL, which is DECIMAL(10,0): 1.5 was
    # written as 2, silently.
    pair.source_sql("CREATE TABLE amounts (id INT PRIMARY KEY, n NUMERIC)")
    pair.source_sql(
        "INSERT INTO amounts VALUES (1, 1.5), (2, -0.0000000001), "
        "(3, 123456789012345678901234567.25), (4, NULL)"
    )

    report = pair.copy(JOB)

    assert rejects(pair) == []
    assert counts_of(report) == {"amounts": Counts(read=4, written=4)}
    assert pair.rows("amounts") == [
        (1, Decimal("1.5")),
        (2, Decimal("-0.0000000001")),
        (3, Decimal("123456789012345678901234567.25")),
        (4, None),
    ]


@pytest.mark.parametrize("pair", [(PG, PG), (PG, MY)], indirect=True, ids=_pair_id)
def test_unbounded_numeric_travels_exactly_and_verifies(pair: Pair) -> None:
    """NUMERIC without precision holds any number: connectorx refused every value whose
    scale was not 10 (the table fell back to the driver), and the copy took Arrow's
    decimal128(38, 10), rejecting 21 fraction digits; PostgreSQL's NaN failed the chunk."""
    pair.source_sql("CREATE TABLE amounts (id INT PRIMARY KEY, n NUMERIC)")
    values = ["0.333333333333333333333", "12345678901234567890123456789.5", "1.50", "-7"]
    pair.source_sql(
        "INSERT INTO amounts VALUES "
        + ", ".join(f"({i}, {v})" for i, v in enumerate(values, 1))
        + ", (5, NULL)"
    )
    if pair.target_dialect == PG:
        pair.source_sql("INSERT INTO amounts VALUES (6, 'NaN')")

    report = pair.copy(JOB)

    assert rejects(pair) == []
    assert not [w for w in report.warnings if "driver" in w]  # connectorx read it
    got = dict(pair.rows("amounts"))
    for i, v in enumerate(values, 1):
        assert got[i] == Decimal(v), (i, got[i])
    assert got[5] is None
    if pair.target_dialect == PG:
        assert got[6].is_nan()
    path = pair.folder / "job.yaml"
    path.write_text(pair.spec_text(JOB), encoding="utf-8")
    verified = verify_job(parse_job(path.read_text(encoding="utf-8"), path=path), spec_path=path)
    assert verified.status == "passed", verified.categories["data"].details


@pytest.mark.parametrize("pair", [(PG, PG)], indirect=True, ids=_pair_id)
def test_postgresql_infinity_stays_infinity(pair: Pair) -> None:
    """connectorx reads infinity as year 262142 (and -infinity as year -262144): written as
    it came, that date landed in the target, silently, and psycopg could not read it."""
    pair.source_sql("CREATE TABLE spans (id INT PRIMARY KEY, t TIMESTAMP, tz TIMESTAMPTZ, d DATE)")
    pair.source_sql(
        "INSERT INTO spans VALUES (1, 'infinity', 'infinity', 'infinity'), "
        "(2, '-infinity', '-infinity', '-infinity'), "
        "(3, '2024-05-01 12:00:00.5', '2024-05-01 12:00:00+02', '2024-05-01'), "
        "(4, NULL, NULL, NULL)"
    )
    sql = "SELECT id, t::text, tz::text, d::text FROM spans ORDER BY id"

    pair.copy(JOB)

    assert query(pair.target, "SET TIME ZONE 'UTC'; " + sql) == query(
        pair.source, "SET TIME ZONE 'UTC'; " + sql
    )
    assert query(pair.target, sql)[0] == (1, "infinity", "infinity", "infinity")
    path = pair.folder / "job.yaml"
    path.write_text(pair.spec_text(JOB), encoding="utf-8")
    verified = verify_job(parse_job(path.read_text(encoding="utf-8"), path=path), spec_path=path)
    assert verified.status == "passed", verified.categories["data"].details


@pytest.mark.parametrize("pair", [(PG, MY)], indirect=True, ids=_pair_id)
def test_interval_into_mariadb_is_a_duration(pair: Pair) -> None:
    # INTERVAL became MariaDB DATETIME: '1 day 02:03:04' read back as 2026-03-04 00:00 and
    # '-5 hours' was refused.
    pair.source_sql("CREATE TABLE waits (id INT PRIMARY KEY, w INTERVAL)")
    pair.source_sql(
        "INSERT INTO waits VALUES (1, '1 day 02:03:04.5'), (2, '-5 hours'), (3, NULL), "
        "(4, '00:00:00')"
    )

    report = pair.copy(JOB)

    assert rejects(pair) == []
    assert counts_of(report) == {"waits": Counts(read=4, written=4)}
    # As text: SQLAlchemy would read a TIME back modulo a day.
    assert query(pair.target, "SELECT id, CAST(w AS CHAR) FROM waits ORDER BY id") == [
        (1, "26:03:04.500000"),
        (2, "-05:00:00.000000"),
        (3, None),
        (4, "00:00:00.000000"),
    ]


@pytest.mark.parametrize("pair", [(PG, PG), (PG, MY)], indirect=True, ids=_pair_id)
def test_arrays_round_trip(pair: Pair) -> None:
    # PostgreSQL -> PostgreSQL rejected every array ("cannot be converted to string");
    # into MariaDB, CREATE TABLE failed (no ARRAY type) and nothing was copied.
    pair.source_sql("CREATE TABLE lists (id INT PRIMARY KEY, ints INT[], words TEXT[])")
    pair.source_sql(
        "INSERT INTO lists VALUES (1, ARRAY[1, 2, 3], ARRAY['a', 'b,c', '\"q\"', NULL]), "
        "(2, '{}', '{}'), (3, NULL, NULL)"
    )

    report = pair.copy(JOB)

    assert rejects(pair) == []
    assert counts_of(report) == {"lists": Counts(read=3, written=3)}
    if pair.target_dialect == PG:
        expected: list[tuple[Any, ...]] = [
            (1, [1, 2, 3], ["a", "b,c", '"q"', None]),
            (2, [], []),
            (3, None, None),
        ]
    else:  # PostgreSQL's text form of the array
        expected = [(1, "{1,2,3}", '{a,"b,c","\\"q\\"",NULL}'), (2, "{}", "{}"), (3, None, None)]
    assert pair.rows("lists") == expected


# ------------------------------------------------------------------------- foreign keys


@pytest.mark.parametrize("pair", [(MY, PG), (PG, MY), (LITE, PG)], indirect=True, ids=_pair_id)
def test_referential_actions_are_kept(pair: Pair) -> None:
    # ON DELETE CASCADE / SET NULL and ON UPDATE CASCADE of the source's foreign keys were
    # dropped: the created keys were plain NO ACTION ones.
    pair.source_sql("CREATE TABLE parent (id INT PRIMARY KEY, a INT NOT NULL, b INT NOT NULL)")
    pair.source_sql("CREATE UNIQUE INDEX parent_ab ON parent (a, b)")
    pair.source_sql(
        "CREATE TABLE child (id INT PRIMARY KEY, pa INT, pb INT, pid INT, "
        "CONSTRAINT child_ab FOREIGN KEY (pa, pb) REFERENCES parent (a, b) ON DELETE CASCADE, "
        "CONSTRAINT child_p FOREIGN KEY (pid) REFERENCES parent (id) "
        "ON DELETE SET NULL ON UPDATE CASCADE)"
    )
    # A table constraint: SQLAlchemy does not read SQLite's actions of a column's REFERENCES.
    pair.source_sql(
        "CREATE TABLE node (id INT PRIMARY KEY, up INT, "
        "FOREIGN KEY (up) REFERENCES node (id) ON DELETE CASCADE)"
    )
    pair.source_sql("INSERT INTO parent VALUES (1, 1, 1), (2, 2, 2)")
    pair.source_sql("INSERT INTO child VALUES (10, 1, 1, 2), (11, NULL, NULL, 1)")
    pair.source_sql("INSERT INTO node VALUES (1, NULL), (2, 1), (3, 2)")

    pair.copy(JOB)

    pair.target_sql("UPDATE parent SET id = 20 WHERE id = 2")
    pair.target_sql("DELETE FROM parent WHERE id = 1")
    pair.target_sql("DELETE FROM node WHERE id = 1")
    # Child 10 followed parent 2 to id 20, then went with parent 1 (a, b) = (1, 1); child 11
    # lost its parent 1; deleting the root node took its descendants.
    assert pair.rows("child") == [(11, None, None, None)]
    assert pair.rows("node") == []


# --------------------------------------------------------------------------- identities


@pytest.mark.parametrize(
    "pair", [(MY, PG), (PG, PG), (LITE, PG), (PG, MY)], indirect=True, ids=_pair_id
)
def test_generated_ids_continue_after_the_copied_ones(pair: Pair) -> None:
    auto = {
        MY: "INT AUTO_INCREMENT PRIMARY KEY",
        PG: "INT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        LITE: "INTEGER PRIMARY KEY AUTOINCREMENT",
    }[pair.source_dialect]
    pair.source_sql(f"CREATE TABLE items (id {auto}, name VARCHAR(10))")
    pair.source_sql("INSERT INTO items (id, name) VALUES (1000, 'a'), (1001, 'b')")

    pair.copy(JOB)

    pair.target_sql("INSERT INTO items (name) VALUES ('c')")
    assert pair.rows("items") == [(1000, "a"), (1001, "b"), (1002, "c")]


# ------------------------------------------------------------------------- views, names


@pytest.mark.parametrize("pair", [(PG, MY), (MY, PG)], indirect=True, ids=_pair_id)
def test_a_view_with_a_percent_sign_is_carried(pair: Pair) -> None:
    # The view's SQL went through the driver's parameter formatting: `LIKE 'B%'` failed with
    # "unsupported format character" on MariaDB and the view was listed for a person.
    bad = {
        PG: "CREATE VIEW v_bad AS SELECT id, generate_series(1, 3) AS g FROM people",
        MY: "CREATE VIEW v_bad AS SELECT id, name REGEXP BINARY 'B' AS r FROM people",
    }[pair.source_dialect]
    pair.source_sql("CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20))")
    pair.source_sql("INSERT INTO people VALUES (1, 'Bob'), (2, 'Al')")
    pair.source_sql("CREATE VIEW b_people AS SELECT id, name FROM people WHERE name LIKE 'B%'")
    pair.source_sql(bad)

    report = pair.copy(JOB)

    assert report.views_created == ["b_people"]
    assert [n.split(":")[0] for n in report.needs_translation] == ["view v_bad"]
    assert query(pair.target, "SELECT id, name FROM b_people") == [(1, "Bob")]


@pytest.mark.parametrize("pair", [(PG, MY), (PG, PG), (LITE, LITE)], indirect=True, ids=_pair_id)
def test_reserved_and_mixed_case_column_names(pair: Pair) -> None:
    q = '"'
    pair.source_sql(
        f"CREATE TABLE {q}User{q} ({q}order{q} INT PRIMARY KEY, {q}Name{q} VARCHAR(20) UNIQUE, "
        f"{q}select{q} TEXT, {q}group{q} INT DEFAULT 7)"
    )
    pair.source_sql(
        'INSERT INTO "User" ("order", "Name", "select") '
        "VALUES (1, 'Bob', 'x'), (2, 'Al', NULL)"
    )

    report = pair.copy(JOB)

    assert counts_of(report) == {"User": Counts(read=2, written=2)}
    assert pair.rows("User") == [(1, "Bob", "x", 7), (2, "Al", None, 7)]


@pytest.mark.parametrize(
    "pair",
    [
        (PG, MY),
        (PG, PG),
        (LITE, LITE),
    ],
    indirect=True,
    ids=_pair_id,
)
def test_a_column_name_with_a_space_loads(pair: Pair) -> None:
    pair.source_sql('CREATE TABLE notes (id INT PRIMARY KEY, "Mixed Case" INT, "a.b" INT)')
    pair.source_sql("INSERT INTO notes VALUES (1, 2, 3)")  # one row: a plain INSERT

    report = pair.copy(JOB)

    assert counts_of(report) == {"notes": Counts(read=1, written=1)}
    assert pair.rows("notes") == [(1, 2, 3)]


@pytest.mark.parametrize("pair", [(PG, MY), (PG, LITE)], indirect=True, ids=_pair_id)
def test_postgresql_infinity_into_a_database_without_it_is_rejected_by_row(pair: Pair) -> None:
    """Neither MariaDB nor Python's datetime holds year 262142: the row is rejected with
    its reason, and the others are written (the whole copy had failed with OverflowError)."""
    pair.source_sql("CREATE TABLE spans (id INT PRIMARY KEY, t TIMESTAMP, d DATE)")
    pair.source_sql(
        "INSERT INTO spans VALUES (1, 'infinity', '2024-01-01'), (2, '2024-05-01', 'infinity'), "
        "(3, '2024-05-01 12:00:00', '2024-05-01')"
    )

    report = pair.copy(JOB)

    assert counts_of(report) == {"spans": Counts(read=3, written=1, rejected=2)}
    assert pair.rows("spans") == [(3, datetime(2024, 5, 1, 12), date(2024, 5, 1))]
    found = pair.rejects()
    assert [r[0] for r in found] == ["spans", "spans"]
    assert all("year 9999" in r[3] for r in found), found
    assert found[0][4]["t"] == "after 9999-12-31 (infinity?)"  # the original value, in words


@pytest.mark.parametrize("pair", [(PG, PG)], indirect=True, ids=_pair_id)
def test_what_a_created_table_leaves_out_is_listed_for_a_person(pair: Pair) -> None:
    """Check constraints, expression and partial indexes, generated columns' expressions and
    defaults that do not translate were left out without a word."""
    pair.source_sql(
        "CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT NOT NULL, "
        "qty INT CONSTRAINT qty_positive CHECK (qty > 0), "
        "twice INT GENERATED ALWAYS AS (qty * 2) STORED, "
        "code TEXT DEFAULT md5('x'), n INT DEFAULT 7)"
    )
    pair.source_sql("CREATE INDEX items_lower_name ON items (lower(name))")
    pair.source_sql("CREATE UNIQUE INDEX items_live_name ON items (name) WHERE qty > 0")
    pair.source_sql("INSERT INTO items (name, qty) VALUES ('a', 1), ('a', NULL)")

    report = pair.copy(JOB)

    gaps = "\n".join(report.needs_translation)
    assert "index items_lower_name on items: on an expression" in gaps
    assert "index items_live_name on items: partial" in gaps
    assert "check constraint qty_positive on items" in gaps
    assert "generated column items.twice" in gaps
    assert "default of items.code: md5('x'" in gaps
    assert "items.id" not in gaps  # an identity
    assert "items.n" not in gaps  # a literal default
    # The partial unique index is not built whole: it would refuse the source's rows.
    assert report.status == "completed"
    assert len(pair.rows("items")) == 2


@pytest.mark.parametrize("pair", [(MY, PG)], indirect=True, ids=_pair_id)
def test_mariadb_on_update_is_listed_while_its_default_is_kept(pair: Pair) -> None:
    pair.source_sql(
        "CREATE TABLE seen (id INT PRIMARY KEY, "
        "at TIMESTAMP NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp())"
    )
    pair.source_sql("INSERT INTO seen (id) VALUES (1)")

    report = pair.copy(JOB)

    assert [g for g in report.needs_translation if "seen" in g] == [
        "ON UPDATE of seen.at: current_timestamp() ON UPDATE current_timestamp()"
    ]
    pair.target_sql("INSERT INTO seen (id) VALUES (2)")  # the default itself is carried


@pytest.mark.parametrize("pair", [(LITE, PG), (LITE, LITE)], indirect=True, ids=_pair_id)
def test_sqlite_timestamp_with_a_precision_is_no_time_zone(pair: Pair) -> None:
    """SQLAlchemy reflects SQLite's TIMESTAMP(6) as TIMESTAMP(timezone=6): every row was
    rejected ("cannot be converted to timestamp[us, tz=UTC]")."""
    pair.source_sql("CREATE TABLE ticks (id INTEGER PRIMARY KEY, at TIMESTAMP(6))")
    pair.source_sql("INSERT INTO ticks VALUES (1, '2024-01-01 00:00:00.123456'), (2, NULL)")

    report = pair.copy(JOB)

    assert counts_of(report) == {"ticks": Counts(read=2, written=2)}
    assert pair.rows("ticks") == [(1, datetime(2024, 1, 1, 0, 0, 0, 123456)), (2, None)]
