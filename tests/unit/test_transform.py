"""The per-batch rules of a copy (ferry.data.transform.Transformer), on hand-made Arrow batches.

Plans come from plan_tables over in-memory SQLite databases, so each test states its source
table (and, where it matters, an existing target table) in SQL and its rules in YAML.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import StaticPool

from ferry.data.spec import parse_job
from ferry.data.state import Counts
from ferry.data.tables import plan_tables
from ferry.data.transform import ROW, DataError, Transformed, Transformer

JOB = Path("job.yaml")


def _engine() -> Engine:
    return create_engine("sqlite://", poolclass=StaticPool)


@pytest.fixture
def engines() -> Iterator[tuple[Engine, Engine]]:
    source, target = _engine(), _engine()
    yield source, target
    source.dispose()
    target.dispose()


def transformer(
    engines: tuple[Engine, Engine],
    source_ddl: str,
    rules: str,
    *,
    target_ddl: str | None = None,
    table: str = "t",
) -> Transformer:
    source, target = engines
    with source.begin() as conn:
        conn.execute(text(source_ddl))
    if target_ddl:
        with target.begin() as conn:
            conn.execute(text(target_ddl))
    body = "\n".join("    " + line for line in rules.strip().splitlines())
    spec = parse_job(
        f"source: sqlite://\ntarget: sqlite://\ntables:\n  {table}:\n{body}\n", path=JOB
    )
    plans = {p.name: p for p in plan_tables(spec, source, target)}
    return Transformer(plans[table])


def rows(out: Transformed) -> list[dict[str, Any]]:
    """Written rows without the row-position column."""
    return out.table.drop_columns([ROW]).to_pylist()


def balanced(out: Transformed) -> Counts:
    c = out.counts
    assert c.read == c.written + c.rejected + c.filtered + c.deduped
    assert c.written == out.table.num_rows
    assert c.rejected == len(out.rejects)
    return c


def rejects(out: Transformed) -> list[tuple[Any, str, str, dict[str, Any]]]:
    return [(r.source_key, r.rule, r.error, r.row) for r in out.rejects]


USERS = (
    "CREATE TABLE t (user_id INTEGER PRIMARY KEY, user_name VARCHAR(50), "
    "email_address VARCHAR(100), account_status VARCHAR(1))"
)
USER_COLUMNS = "columns: {user_id: id, user_name: username, email_address: email, " + (
    "account_status: status}"
)


def users(*records: tuple[Any, ...]) -> pa.Table:
    names = ["user_id", "user_name", "email_address", "account_status"]
    return pa.table(
        {
            name: pa.array([r[i] for r in records], pa.int64() if i == 0 else pa.string())
            for i, name in enumerate(names)
        }
    )


# ----------------------------------------------------------------------------- renaming


def test_columns_are_renamed_and_positions_kept(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(engines, USERS, USER_COLUMNS)
    out = tr.apply(users((1, "a", "a@x.org", "A"), (2, "b", None, None)))
    assert out.table.column_names == ["id", "username", "email", "status", ROW]
    assert out.table[ROW].to_pylist() == [0, 1]
    assert rows(out) == [
        {"id": 1, "username": "a", "email": "a@x.org", "status": "A"},
        {"id": 2, "username": "b", "email": None, "status": None},
    ]
    assert balanced(out) == Counts(read=2, written=2)


def test_column_list_keeps_only_the_named_columns(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(engines, USERS, "columns: [user_id, user_name]")
    batch = users((1, "a", "a@x.org", "A")).select(["user_id", "user_name"])
    out = tr.apply(batch)
    assert rows(out) == [{"user_id": 1, "user_name": "a"}]


def test_an_empty_batch(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(engines, USERS, USER_COLUMNS + "\ndedupe: {on: [username]}")
    out = tr.apply(users())
    assert rows(out) == []
    assert balanced(out) == Counts()


# ---------------------------------------------------------------------------- value maps


def test_value_map_reject_records_the_original_row(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines,
        USERS,
        USER_COLUMNS + "\nvalues: {status: {map: {A: active, I: inactive}, unmapped: reject}}",
    )
    out = tr.apply(users((1, "a", "a@x.org", "A"), (2, "b", "b@x.org", "X"), (3, "c", None, None)))
    assert [r["status"] for r in rows(out)] == ["active", None]
    assert rejects(out) == [
        (
            [2],
            "value_map:status",
            "value 'X' of `status` is not in the value map",
            {"user_id": 2, "user_name": "b", "email_address": "b@x.org", "account_status": "X"},
        )
    ]
    assert balanced(out) == Counts(read=3, written=2, rejected=1)


def test_value_map_unmapped_keep_and_null(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, kind VARCHAR(10), tier INTEGER)",
        'values:\n  kind: {map: {a: alpha}, unmapped: keep}\n  tier: {map: {"1": gold}, '
        'unmapped: "null"}',
    )
    batch = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "kind": ["a", "zz", None],
            "tier": pa.array([1, 7, None], pa.int64()),
        }
    )
    out = tr.apply(batch)
    assert rows(out) == [
        {"id": 1, "kind": "alpha", "tier": "gold"},
        {"id": 2, "kind": "zz", "tier": None},
        {"id": 3, "kind": None, "tier": None},
    ]
    assert balanced(out) == Counts(read=3, written=3)


def test_value_map_keep_keeps_source_values_longer_than_the_mapped_ones(
    engines: tuple[Engine, Engine],
) -> None:
    tr = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, kind VARCHAR(20))",
        "values: {kind: {map: {a: alpha}, unmapped: keep}}",
    )
    out = tr.apply(pa.table({"id": pa.array([1, 2], pa.int64()), "kind": ["a", "unknown-kind"]}))
    assert out.rejects == []
    assert [r["kind"] for r in rows(out)] == ["alpha", "unknown-kind"]


def test_value_map_to_booleans(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, is_active CHAR(1))",
        "values: {is_active: {map: {Y: true, N: false}}}",
    )
    out = tr.apply(pa.table({"id": pa.array([1, 2, 3], pa.int64()), "is_active": ["Y", "N", "Y"]}))
    assert out.table.schema.field("is_active").type == pa.bool_()
    assert [r["is_active"] for r in rows(out)] == [True, False, True]


# ---------------------------------------------------------------------------- null rules


def test_null_rules(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a VARCHAR(5), b VARCHAR(5), c INTEGER, "
        "d VARCHAR(5))",
        "nulls:\n  a: preserve\n  b: remove\n  c: 0\n  d: {action: default, value: none}",
    )
    batch = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "a": [None, "x", None],
            "b": ["b", None, "b"],
            "c": pa.array([None, 4, 5], pa.int64()),
            "d": [None, None, "d"],
        }
    )
    out = tr.apply(batch)
    assert rows(out) == [
        {"id": 1, "a": None, "b": "b", "c": 0, "d": "none"},
        {"id": 3, "a": None, "b": "b", "c": 5, "d": "d"},
    ]
    assert out.table[ROW].to_pylist() == [0, 2]
    assert out.rejects == []
    assert balanced(out) == Counts(read=3, written=2, filtered=1)


def test_null_default_after_value_map(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines,
        USERS,
        USER_COLUMNS + "\nvalues: {status: {map: {A: active}}}\nnulls: {status: inactive}",
    )
    out = tr.apply(users((1, "a", None, None), (2, "b", None, "A")))
    assert [r["status"] for r in rows(out)] == ["inactive", "active"]


# ---------------------------------------------------------------------------- validation


def test_validation_reject_keeps_original_values(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines,
        USERS,
        USER_COLUMNS + "\nvalues: {status: {map: {A: active}}}\nvalidate: {email: email}",
    )
    out = tr.apply(users((1, "a", "a@x.org", "A"), (2, "b", "not-mail", "A")))
    assert rows(out) == [{"id": 1, "username": "a", "email": "a@x.org", "status": "active"}]
    # The reject shows the row as read: status 'A', not the mapped 'active'.
    assert rejects(out) == [
        (
            [2],
            "validate:email:email",
            "`email` value 'not-mail' is not a valid email",
            {"user_id": 2, "user_name": "b", "email_address": "not-mail", "account_status": "A"},
        )
    ]
    assert balanced(out) == Counts(read=2, written=1, rejected=1)


def test_a_row_breaking_two_rules_is_rejected_once(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines,
        USERS,
        USER_COLUMNS + "\nvalues: {status: {map: {A: active}}}\nvalidate: {email: email}",
    )
    out = tr.apply(users((1, "a", "bad", "Q")))
    assert [r[1] for r in rejects(out)] == ["value_map:status"]
    assert balanced(out) == Counts(read=1, rejected=1)


def test_validation_on_fail_null(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, phone VARCHAR(30), born VARCHAR(20), "
        "amount VARCHAR(10))",
        "validate:\n  phone: {rule: phone, region: GB, on_fail: 'null'}\n"
        "  born: {rule: date, on_fail: 'null'}\n  amount: {rule: numeric, on_fail: 'null'}",
    )
    batch = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "phone": ["020 7946 0018", "12345"],
            "born": ["2024-02-29", "2023-02-29"],
            "amount": ["-1.5e3", "1,5"],
        }
    )
    out = tr.apply(batch)
    assert rows(out) == [
        {"id": 1, "phone": "020 7946 0018", "born": "2024-02-29", "amount": "-1.5e3"},
        {"id": 2, "phone": None, "born": None, "amount": None},
    ]
    assert balanced(out) == Counts(read=2, written=2)


def test_validation_on_fail_fail_raises(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines, USERS, USER_COLUMNS + "\nvalidate: {email: {rule: email, on_fail: fail}}"
    )
    with pytest.raises(DataError, match=r"table `t`, row 1 of the batch: column `email`") as info:
        tr.apply(users((1, "a", "a@x.org", "A"), (2, "b", "nope", "A")))
    assert "tables.t.validate.email" in str(info.value)


def test_on_fail_fail_ignores_rows_already_removed(engines: tuple[Engine, Engine]) -> None:
    """A row the NULL rule removes is gone: its bad address cannot stop the run."""
    tr = transformer(
        engines,
        USERS,
        USER_COLUMNS + "\nnulls: {status: remove}\nvalidate: {email: {rule: email, on_fail: fail}}",
    )
    out = tr.apply(users((1, "a", "a@x.org", "A"), (2, "b", "nope", None)))
    assert balanced(out) == Counts(read=2, written=1, filtered=1)


# -------------------------------------------------------------------------------- derive


def test_derived_columns(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, timestamp TIMESTAMP, n INTEGER)",
        "columns: {id: id, timestamp: recorded_at, n: n}\n"
        "derive: {hour: 'HOUR(recorded_at)', twice: 'n * 2'}",
    )
    batch = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "timestamp": pa.array([dt.datetime(2024, 3, 4, 23, 59), None], pa.timestamp("us")),
            "n": pa.array([5, None], pa.int64()),
        }
    )
    out = tr.apply(batch)
    assert rows(out) == [
        {"id": 1, "recorded_at": dt.datetime(2024, 3, 4, 23, 59), "n": 5, "hour": 23, "twice": 10},
        {"id": 2, "recorded_at": None, "n": None, "hour": None, "twice": None},
    ]


# ------------------------------------------------------------------------------- dedupe


def test_dedupe_keep_first_across_batches(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(engines, USERS, USER_COLUMNS + "\ndedupe: {on: [username, email]}")
    first = tr.apply(users((1, "a", "a@x.org", "A"), (2, "a", "a@x.org", "I"), (3, "a", None, "A")))
    second = tr.apply(
        users((4, "a", "a@x.org", "S"), (5, "a", None, "A"), (6, "b", "a@x.org", "A"))
    )
    assert [r["id"] for r in rows(first)] == [1, 3]
    assert [r["id"] for r in rows(second)] == [6]
    assert balanced(first) == Counts(read=3, written=2, deduped=1)
    assert balanced(second) == Counts(read=3, written=1, deduped=2)


def test_dedupe_keep_last_reads_in_descending_order(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(engines, USERS, USER_COLUMNS + "\ndedupe: {on: [username], keep: last}")
    assert tr.descending is True
    # keep: last is keep-first over batches read in descending key order.
    first = tr.apply(users((4, "a", None, "S"), (3, "b", None, "A")))
    second = tr.apply(users((2, "a", None, "I"), (1, "c", None, "A")))
    assert [r["id"] for r in rows(first) + rows(second)] == [4, 3, 1]


def test_dedupe_ignores_rejected_rows(engines: tuple[Engine, Engine]) -> None:
    """A rejected row does not make a later valid row a duplicate."""
    tr = transformer(
        engines,
        USERS,
        USER_COLUMNS + "\nvalidate: {email: email}\ndedupe: {on: [username]}",
    )
    out = tr.apply(users((1, "a", "bad", "A"), (2, "a", "a@x.org", "A")))
    assert [r["id"] for r in rows(out)] == [2]
    assert balanced(out) == Counts(read=2, written=1, rejected=1)


def test_dedupe_ignores_rows_rejected_by_the_target_types(
    engines: tuple[Engine, Engine],
) -> None:
    """A row refused for the target column's length is not the "first" of its key."""
    tr = transformer(
        engines,
        USERS,
        "to: users_new\n" + USER_COLUMNS + "\ndedupe: {on: [username]}",
        target_ddl="CREATE TABLE users_new (id INTEGER PRIMARY KEY, username VARCHAR(20), "
        "email VARCHAR(20), status VARCHAR(1))",
    )
    long = "x" * 30 + "@example.org"
    out = tr.apply(users((1, "a", long, "A"), (2, "a", "a@x.org", "A")))
    assert [r[1] for r in rejects(out)] == ["length:email"]
    assert [r["id"] for r in rows(out)] == [2]
    assert balanced(out) == Counts(read=2, written=1, rejected=1)


# ------------------------------------------------------- target types: cast, length, NULL


def test_type_override_and_cast_rejects(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, qty VARCHAR(10), note VARCHAR(10))",
        "types: {id: bigint, qty: integer}",
    )
    batch = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "qty": ["12", "twelve", None],
            "note": ["x", "y", "z"],
        }
    )
    out = tr.apply(batch)
    assert out.table.schema.field("id").type == pa.int64()
    assert out.table.schema.field("qty").type == pa.int32()
    assert rows(out) == [{"id": 1, "qty": 12, "note": "x"}, {"id": 3, "qty": None, "note": "z"}]
    assert rejects(out) == [
        (
            [2],
            "cast:qty",
            "`qty` value 'twelve' cannot be converted to int32",
            {"id": 2, "qty": "twelve", "note": "y"},
        )
    ]
    assert balanced(out) == Counts(read=3, written=2, rejected=1)


def test_existing_target_length_and_not_null(engines: tuple[Engine, Engine]) -> None:
    tr = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, code VARCHAR(50), label VARCHAR(50))",
        "columns: {id: id, code: short_code, label: title}",
        target_ddl="CREATE TABLE t (id INTEGER PRIMARY KEY, short_code VARCHAR(3), "
        "title VARCHAR(20) NOT NULL, extra INTEGER)",
    )
    batch = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "code": ["abc", "abcd", "é€🚀"],
            "label": ["one", "two", None],
        }
    )
    out = tr.apply(batch)
    assert out.table.column_names == ["id", "short_code", "title", ROW]
    assert rows(out) == [{"id": 1, "short_code": "abc", "title": "one"}]
    assert rejects(out)[0][1:3] == (
        "length:short_code",
        "`short_code` is longer than 3 characters: 'abcd'",
    )
    assert [r[:2] for r in rejects(out)] == [([2], "length:short_code"), ([3], "not_null:title")]
    assert balanced(out) == Counts(read=3, written=1, rejected=2)
