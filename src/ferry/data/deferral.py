"""Secondary indexes, foreign keys and triggers set aside while a copy loads existing tables.

Before the load, each object's definition is written to `ferry_deferred` in the target and the
object is dropped (or, for triggers, disabled); after the load it is rebuilt from that row and
the row deleted. The rows outlive a crash, so the next run of the job rebuilds whatever a
killed run had set aside: `pending()` says what is still away.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    select,
)

from ferry.data.state import now
from ferry.db.adapter import Adapter, DeferredObject

_meta = MetaData()
deferred = Table(
    "ferry_deferred",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(200), nullable=False),
    Column("table_name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),  # index | foreign_key | triggers
    Column("name", String(200), nullable=False),
    Column("restore_sql", Text, nullable=False),
    Column("deferred_at", DateTime, nullable=False),
)


@dataclass(frozen=True)
class Restored:
    table: str
    kind: str
    name: str
    error: str | None = None


def ensure(conn: Connection) -> None:
    _meta.create_all(conn, checkfirst=True)


def pending(conn: Connection, job: str) -> list[DeferredObject]:
    rows = conn.execute(select(deferred).where(deferred.c.job == job).order_by(deferred.c.id))
    return [DeferredObject(r.table_name, r.kind, r.name, "", r.restore_sql) for r in rows]


def set_aside(conn: Connection, adapter: Adapter, job: str, tables: list[str]) -> int:
    """Record and drop the deferrable objects of `tables` (skipping any already away)."""
    away = {(d.table, d.kind, d.name) for d in pending(conn, job)}
    count = 0
    for table in tables:
        for obj in adapter.deferrable_objects(conn, table):
            if (obj.table, obj.kind, obj.name) in away:
                continue
            # Record first: if the drop commits and the process dies, the row says how back.
            conn.execute(
                insert(deferred),
                [
                    {
                        "job": job,
                        "table_name": obj.table,
                        "kind": obj.kind,
                        "name": obj.name,
                        "restore_sql": obj.restore_sql,
                        "deferred_at": now(),
                    }
                ],
            )
            conn.commit()
            conn.exec_driver_sql(obj.drop_sql)
            conn.commit()
            count += 1
    return count


def restore(conn: Connection, job: str) -> list[Restored]:
    """Rebuild every object the job set aside; each one commits on its own."""
    results = []
    for obj in pending(conn, job):
        try:
            conn.exec_driver_sql(obj.restore_sql)
            conn.execute(
                delete(deferred).where(
                    and_(
                        deferred.c.job == job,
                        deferred.c.table_name == obj.table,
                        deferred.c.kind == obj.kind,
                        deferred.c.name == obj.name,
                    )
                )
            )
            conn.commit()
            results.append(Restored(obj.table, obj.kind, obj.name))
        except Exception as error:  # reported; the row stays for the next attempt
            conn.rollback()
            reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
            results.append(Restored(obj.table, obj.kind, obj.name, reason))
    return results
