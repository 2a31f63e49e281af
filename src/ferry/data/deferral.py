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
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Delete

from ferry.data.state import now
from ferry.db.adapter import Adapter, DeferredObject, adapter_for_dialect

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


def forget(conn: Connection, job: str, tables: list[str]) -> list[DeferredObject]:
    """Drop the records of objects set aside on `tables`, which are gone since (a table
    dropped after a killed run): the objects went with them. Returns what was recorded."""
    if not tables:
        return []
    gone = [d for d in pending(conn, job) if d.table in tables]
    if gone:
        conn.execute(
            delete(deferred).where(deferred.c.job == job, deferred.c.table_name.in_(tables))
        )
    conn.commit()
    return gone


def set_aside(conn: Connection, adapter: Adapter, job: str, tables: list[str]) -> int:
    """Record and drop the deferrable objects of `tables`; returns how many were dropped.

    An object already recorded is dropped without a second record (a run killed between
    the record and the drop left it in place). One the database will not drop (PostgreSQL:
    the index of an exclusion constraint) stays where it is, unrecorded: the load keeps it
    up to date, only more slowly. Interrupted or failed part-way, it puts back what it set
    aside before the error goes on, so an early stop (Ctrl-C, SIGTERM) leaves nothing away.
    """
    count = 0
    try:
        away = {(d.table, d.kind, d.name) for d in pending(conn, job)}
        for table in tables:
            for obj in adapter.deferrable_objects(conn, table):
                if (obj.table, obj.kind, obj.name) not in away:
                    # Record first: if the drop commits and the process dies, the row
                    # says how back.
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
                try:
                    conn.exec_driver_sql(obj.drop_sql)
                    conn.commit()
                except DBAPIError:
                    conn.rollback()
                    conn.execute(_where(delete(deferred), job, obj.table, obj.kind, obj.name))
                    conn.commit()
                    continue
                count += 1
    except BaseException:
        if conn.in_transaction():
            conn.rollback()
        restore(conn, job)
        raise
    return count


def restore(conn: Connection, job: str) -> list[Restored]:
    """Rebuild every object the job set aside; each one commits on its own.

    An object found in place (never dropped: the run died between its record and its drop)
    counts as restored. An interrupt (Ctrl-C, SIGTERM) does not cut the rebuild short: the
    object it cut off is tried again, the rest follow, then the interrupt goes on; a second
    one stops at once (the rows stay for the next run).
    """
    adapter = adapter_for_dialect(conn.dialect.name)()
    results = []
    interrupted: BaseException | None = None
    for obj in pending(conn, job):
        while True:
            try:
                results.append(_restore_one(conn, adapter, job, obj))
                break
            except (KeyboardInterrupt, SystemExit) as stop:
                _reset(conn)
                if interrupted is not None:
                    raise
                interrupted = stop
    if interrupted is not None:
        raise interrupted
    return results


def _restore_one(conn: Connection, adapter: Adapter, job: str, obj: DeferredObject) -> Restored:
    forget = _where(delete(deferred), job, obj.table, obj.kind, obj.name)
    try:
        conn.exec_driver_sql(obj.restore_sql)
        conn.execute(forget)
        conn.commit()
        return Restored(obj.table, obj.kind, obj.name)
    except Exception as error:  # reported; the row stays for the next attempt
        _reset(conn)
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
    try:
        present = any(
            (found.kind, found.name) == (obj.kind, obj.name)
            for found in adapter.deferrable_objects(conn, obj.table)
        )
        if present:
            conn.execute(forget)
            conn.commit()
            return Restored(obj.table, obj.kind, obj.name)
        conn.rollback()
    except Exception:  # the table itself is gone: the first error says so
        _reset(conn)
    return Restored(obj.table, obj.kind, obj.name, reason)


def _reset(conn: Connection) -> None:
    """Roll back after a failed or interrupted statement (a connection that an interrupt
    left unusable is replaced on its next use)."""
    try:
        conn.rollback()
    except Exception:
        conn.invalidate()


def _where(statement: Delete, job: str, table: str, kind: str, name: str) -> Delete:
    return statement.where(
        and_(
            deferred.c.job == job,
            deferred.c.table_name == table,
            deferred.c.kind == kind,
            deferred.c.name == name,
        )
    )
