"""The schema the applied migrations produce, kept as a snapshot after every apply.

A shape is what `ferry drift` compares: per table its columns (type, nullability), primary
key, indexes, foreign keys and unique constraints; views by normalised definition; triggers
and routines by name. `ferry apply` records the expected shape in `ferry_schema_snapshot`
(one row per history table) under the migration lock:

    expected after = expected before, with every object the run changed taken from the live
                     schema after the run

where "changed by the run" is what differs between the live schema just before and just
after it. Drift found before the run (live before vs. the snapshot) is carried over, so it
stays reported until someone fixes it. The first apply of a database with no history starts
from the empty schema; one with history but no snapshot yet adopts the live schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, delete, inspect, select
from sqlalchemy.dialects import mysql

from ferry.db.bookkeeping import FERRY_TABLES
from ferry.db.target import Target

Shape = dict[str, Any]

_meta = MetaData()
snapshots = Table(
    "ferry_schema_snapshot",
    _meta,
    Column("history_table", String(100), primary_key=True),
    Column("run_id", String(36)),
    Column("taken_at", DateTime, nullable=False),
    # MySQL's TEXT stops at 64 KiB; a schema of thousands of tables needs more
    Column("shape", Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"), nullable=False),
)

EMPTY: Shape = {"tables": {}, "views": {}, "routines": set()}


def live_shape(target: Target, history_table: str) -> Shape:
    """The live schema of a target (Ferry's own tables left out), reflected in bulk."""
    inspector = inspect(target.engine)
    own = FERRY_TABLES | {history_table}
    names = [n for n in inspector.get_table_names() if n not in own]
    tables: dict[str, Any] = {name: {} for name in names}
    if names:
        columns = inspector.get_multi_columns(filter_names=names)
        keys = inspector.get_multi_pk_constraint(filter_names=names)
        indexes = inspector.get_multi_indexes(filter_names=names)
        foreign = inspector.get_multi_foreign_keys(filter_names=names)
        uniques = inspector.get_multi_unique_constraints(filter_names=names)
        for (_, name), found in columns.items():
            tables[name] = {
                "columns": {
                    c["name"]: (str(c["type"]).upper().replace(" ", ""), c["nullable"])
                    for c in found
                },
                "primary_key": tuple(_pk_columns(keys.get((None, name)))),
                "indexes": {
                    tuple(i["column_names"]): bool(i.get("unique"))
                    for i in indexes.get((None, name), [])
                },
                "foreign_keys": {
                    (
                        tuple(f["constrained_columns"]),
                        f["referred_table"],
                        tuple(f["referred_columns"]),
                    )
                    for f in foreign.get((None, name), [])
                },
                "uniques": {tuple(u["column_names"]) for u in uniques.get((None, name), [])},
            }
    views = {}
    for name in inspector.get_view_names():
        definition = inspector.get_view_definition(name) or ""
        views[name] = " ".join(str(definition).split()).lower()
    with target.connect() as conn:
        routines = set(target.adapter.list_routines(conn))
        conn.rollback()
    return {"tables": tables, "views": views, "routines": routines}


def compare(expected: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """What differs between the expected and the live shape, one sentence per object."""
    found: list[str] = []
    want, have = expected["tables"], live["tables"]
    for name in sorted(set(have) - set(want)):
        found.append(f"table `{name}` exists but no applied migration creates it")
    for name in sorted(set(want) - set(have)):
        found.append(f"table `{name}` is missing: the applied migrations create it")
    for name in sorted(set(want) & set(have)):
        w, h = want[name], have[name]
        for column in sorted(set(h["columns"]) - set(w["columns"])):
            found.append(f"column `{name}.{column}` was added outside Ferry")
        for column in sorted(set(w["columns"]) - set(h["columns"])):
            found.append(f"column `{name}.{column}` was dropped outside Ferry")
        for column in sorted(set(w["columns"]) & set(h["columns"])):
            (wt, wn), (ht, hn) = w["columns"][column], h["columns"][column]
            if wt != ht:
                found.append(f"column `{name}.{column}` is {ht}; the migrations make it {wt}")
            if wn != hn:
                found.append(
                    f"column `{name}.{column}` is "
                    f"{'NULL' if hn else 'NOT NULL'}; the migrations make it "
                    f"{'NULL' if wn else 'NOT NULL'}"
                )
        if w["primary_key"] != h["primary_key"]:
            found.append(
                f"primary key of `{name}` is {list(h['primary_key'])}; the migrations "
                f"make it {list(w['primary_key'])}"
            )
        for kind, label in (
            ("indexes", "index"),
            ("foreign_keys", "foreign key"),
            ("uniques", "unique constraint"),
        ):
            extra = set(h[kind]) - set(w[kind])
            gone = set(w[kind]) - set(h[kind])
            for item in sorted(map(str, extra)):
                found.append(f"{label} {item} on `{name}` was added outside Ferry")
            for item in sorted(map(str, gone)):
                found.append(f"{label} {item} on `{name}` was dropped outside Ferry")
    for name in sorted(set(live["views"]) - set(expected["views"])):
        found.append(f"view `{name}` exists but no applied migration creates it")
    for name in sorted(set(expected["views"]) - set(live["views"])):
        found.append(f"view `{name}` is missing: the applied migrations create it")
    for name in sorted(set(expected["views"]) & set(live["views"])):
        if expected["views"][name] != live["views"][name]:
            found.append(f"view `{name}` was redefined outside Ferry")
    for item in sorted(live["routines"] - expected["routines"]):
        found.append(f"{item} exists but no applied migration creates it")
    for item in sorted(expected["routines"] - live["routines"]):
        found.append(f"{item} is missing: the applied migrations create it")
    return found


def _pk_columns(found: Any) -> list[str]:
    return list((found or {}).get("constrained_columns") or [])


def merge(expected: Shape, before: Shape, after: Shape, attributable: set[str] | None) -> Shape:
    """`expected` with what changed between `before` and `after` taken from `after`. Only
    tables in `attributable` (lower-case; None: any) count as changed by the run."""
    tables = dict(expected["tables"])
    for name in set(before["tables"]) | set(after["tables"]):
        if before["tables"].get(name) == after["tables"].get(name):
            continue
        if attributable is not None and name.lower() not in attributable:
            continue  # changed during the run, but no migration of it names the table
        if name in after["tables"]:
            tables[name] = after["tables"][name]
        else:
            tables.pop(name, None)
    views = dict(expected["views"])
    for name in set(before["views"]) | set(after["views"]):
        if before["views"].get(name) != after["views"].get(name):
            if name in after["views"]:
                views[name] = after["views"][name]
            else:
                views.pop(name, None)
    routines = set(expected["routines"])
    routines |= after["routines"] - before["routines"]
    routines -= before["routines"] - after["routines"]
    return {"tables": tables, "views": views, "routines": routines}


def neighbours(shapes: list[Shape], names: set[str]) -> set[str]:
    """`names` with every table linked to one of them by a foreign key (a migration may
    change those too: DROP ... CASCADE drops the keys that refer to a table)."""
    found = set(names)
    for shape in shapes:
        for name, table in shape["tables"].items():
            referred = {fk[1].lower() for fk in table.get("foreign_keys", ())}
            if name.lower() in names:
                found |= referred
            if referred & names:
                found.add(name.lower())
    return found


def _to_json(shape: Shape) -> str:
    tables = {
        name: {
            "columns": {c: list(v) for c, v in t["columns"].items()},
            "primary_key": list(t["primary_key"]),
            "indexes": sorted([list(cols), unique] for cols, unique in t["indexes"].items()),
            "foreign_keys": sorted([list(c), r, list(rc)] for c, r, rc in t["foreign_keys"]),
            "uniques": sorted(list(u) for u in t["uniques"]),
        }
        for name, t in shape["tables"].items()
    }
    return json.dumps(
        {"tables": tables, "views": shape["views"], "routines": sorted(shape["routines"])},
        sort_keys=True,
        default=str,
    )


def _from_json(text: str) -> Shape:
    data = json.loads(text)
    tables = {
        name: {
            "columns": {c: tuple(v) for c, v in t["columns"].items()},
            "primary_key": tuple(t["primary_key"]),
            "indexes": {tuple(cols): unique for cols, unique in t["indexes"]},
            "foreign_keys": {(tuple(c), r, tuple(rc)) for c, r, rc in t["foreign_keys"]},
            "uniques": {tuple(u) for u in t["uniques"]},
        }
        for name, t in data["tables"].items()
    }
    return {"tables": tables, "views": data["views"], "routines": set(data["routines"])}


@dataclass(frozen=True)
class Snapshot:
    run_id: str | None
    taken_at: datetime
    shape: Shape


def read_snapshot(target: Target, history_table: str) -> Snapshot | None:
    """The expected shape recorded by the last apply, if any."""
    with target.connect() as conn:
        if not inspect(conn).has_table(snapshots.name):
            return None
        row = conn.execute(
            select(snapshots).where(snapshots.c.history_table == history_table)
        ).first()
        conn.rollback()
    if row is None:
        return None
    return Snapshot(row.run_id, row.taken_at, _from_json(row.shape))


def record_snapshot(target: Target, history_table: str, run_id: str, shape: Shape) -> None:
    """Replace the expected shape of a history table's migrations."""
    with target.connect() as conn:
        _meta.create_all(conn, checkfirst=True)
        conn.execute(delete(snapshots).where(snapshots.c.history_table == history_table))
        conn.execute(
            snapshots.insert(),
            [
                {
                    "history_table": history_table,
                    "run_id": run_id,
                    "taken_at": datetime.now(UTC).replace(tzinfo=None),
                    "shape": _to_json(shape),
                }
            ],
        )
        conn.commit()


@dataclass
class SchemaWatch:
    """The schema as a run found it, taken under the lock just before the run."""

    history_table: str
    expected: Shape
    before: Shape
    #: drift that existed before the run
    drift_before: list[str]
    note: str | None = None
    #: a snapshot was on record before the run
    recorded: bool = False


def watch(target: Target, history_table: str, *, has_history: bool) -> SchemaWatch:
    """Read the snapshot and the live schema before a run."""
    before = live_shape(target, history_table)
    found = read_snapshot(target, history_table)
    if found is not None:
        return SchemaWatch(
            history_table, found.shape, before, compare(found.shape, before), recorded=True
        )
    if not has_history:  # nothing applied yet: the migrations produce nothing so far
        return SchemaWatch(history_table, EMPTY, before, compare(EMPTY, before))
    return SchemaWatch(
        history_table,
        before,
        before,
        [],
        "no schema snapshot yet: drift is measured from this run on (`ferry drift --replay` "
        "checks the whole history)",
    )


def conclude(
    target: Target, seen: SchemaWatch, run_id: str, attributable: set[str] | None
) -> tuple[list[str], list[str]]:
    """After a run: record the new expected shape; returns the drift after the run and the
    part of it that appeared during the run on tables no migration of the run names."""
    after = live_shape(target, seen.history_table)
    if attributable is not None:
        attributable = neighbours([seen.before, after], attributable)
    expected = merge(seen.expected, seen.before, after, attributable)
    record_snapshot(target, seen.history_table, run_id, expected)
    found = compare(expected, after)
    earlier = set(seen.drift_before)
    return found, [line for line in found if line not in earlier]
