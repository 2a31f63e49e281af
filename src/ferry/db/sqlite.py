"""SQLite: transactional DDL once pysqlite's implicit transactions are switched off."""

from __future__ import annotations

import sqlite3
import threading
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Column, Connection, Engine, Table, cast, event, exc, func, literal, text
from sqlalchemy import types as sat
from sqlalchemy.dialects.sqlite import base as sqlite_base
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement

from ferry.config.project import PoolConfig
from ferry.db.adapter import Adapter, DeferredObject, register
from ferry.db.lock import LockSession
from ferry.errors import DatabaseLocked

_MEMORY_LOCKS: dict[str, threading.Lock] = {}


def _decimal_text(value: Any) -> Any:
    """A number as fixed-point text (`-0.000000000000000001`, not `-1E-18`)."""
    if value is None or isinstance(value, str):
        return value
    return format(value if isinstance(value, Decimal) else Decimal(str(value)), "f")


# sqlite3 cannot bind Decimal: it goes as text. Only a TEXT-affinity column keeps that text
# (DecimalText); NUMERIC affinity turns it into an INTEGER or a REAL of 15 digits.
sqlite3.register_adapter(Decimal, _decimal_text)


class DecimalText(sat.Numeric):  # type: ignore[type-arg]
    """An exact decimal in SQLite, declared `DECIMAL_TEXT(p,s)`: the name holds TEXT, so
    SQLite's affinity keeps the digits as written (a `NUMERIC(p,s)` column would store
    12345678901234567890.1 as the REAL 1.23456789012346e+19), and reflection reads the
    name back as a decimal of that precision and scale."""

    __visit_name__ = "DECIMAL_TEXT"
    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        return _decimal_text

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        def process(value: Any) -> Any:
            return None if value is None else Decimal(str(value))

        return process


@compiles(DecimalText)
def _compile_decimal_text(type_: DecimalText, compiler: Any, **kw: Any) -> str:
    if type_.precision is None:
        return "DECIMAL_TEXT"
    return f"DECIMAL_TEXT({type_.precision},{type_.scale or 0})"


sqlite_base.ischema_names["DECIMAL_TEXT"] = DecimalText


def database_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database)


class _FileLockSession(LockSession):
    """An exclusive transaction on a side file `<db>.ferry-lock`.

    SQLite has no advisory locks and an exclusive transaction on the database itself would
    block the migration's own connection. The side file's lock is an OS file lock, so the
    kernel releases it when the process dies; the empty file that stays behind holds no lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".ferry-lock")
        self._conn: sqlite3.Connection | None = None

    def try_acquire(self) -> bool:
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        if self._conn is not None:
            self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None

    def holder(self) -> str | None:
        return f"the process holding the lock file {self.path}"

    def close(self) -> None:
        self.release()


class _MemoryLockSession(LockSession):
    """An in-memory database lives in one process: a thread lock is enough."""

    def __init__(self, key: str) -> None:
        self._lock = _MEMORY_LOCKS.setdefault(key, threading.Lock())
        self._held = False

    def try_acquire(self) -> bool:
        self._held = self._lock.acquire(blocking=False)
        return self._held

    def release(self) -> None:
        if self._held:
            self._lock.release()
            self._held = False

    def holder(self) -> str | None:
        return "another thread of this process"

    def close(self) -> None:
        self.release()


@register
class SQLiteAdapter(Adapter):
    name = "sqlite"
    schemes = ("sqlite",)
    # With pysqlite's implicit transactions off (prepare_engine), SQLite rolls back DDL.
    transactional_ddl = True
    split_dialect = "sqlite"
    # SQLite has no ALTER TABLE ... ADD CONSTRAINT: foreign keys live in CREATE TABLE.
    can_add_foreign_keys = False
    # One writer at a time: indexes built on two connections would only wait for each other.
    concurrent_ddl = False
    explain_prefix = "EXPLAIN QUERY PLAN"
    unchecked_drops = ("PRAGMA foreign_keys = OFF", "PRAGMA foreign_keys = ON")
    external_tools = ("sqlite3",)

    def engine_options(self, pool: PoolConfig) -> dict[str, Any]:
        return {}

    def create_engine(self, url: URL, pool: PoolConfig) -> Engine:
        from sqlalchemy import create_engine

        path = database_path(url)
        if path is None:
            # One shared connection, or every checkout would see its own empty database.
            engine = create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            engine = create_engine(
                url,
                connect_args={"timeout": pool.acquire_timeout},
                pool_size=pool.max,
                max_overflow=0,
                pool_timeout=pool.acquire_timeout,
                pool_recycle=int(pool.idle_timeout),
            )
        self.prepare_engine(engine)
        return engine

    def prepare_engine(self, engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Stop pysqlite from committing before DDL; Ferry emits BEGIN itself.
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA foreign_keys = ON")

        @event.listens_for(engine, "handle_error")
        def _on_error(context: ExceptionContext) -> None:
            # SQLite's busy timeout ran out: another process holds the file's lock. Said once
            # here, whichever statement (reflection, a load, a checksum) met it.
            error = context.original_exception
            if isinstance(error, sqlite3.OperationalError) and "database is locked" in str(error):
                path = database_path(engine.url)
                where = str(path.resolve()) if path is not None else str(engine.url.database)
                raise DatabaseLocked(where) from error

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                conn.exec_driver_sql("BEGIN")

    def server_version(self, conn: Connection) -> str:
        return sqlite3.sqlite_version

    def open_lock_session(self, engine: Engine, key: str) -> LockSession:
        path = database_path(engine.url)
        if path is None:
            return _MemoryLockSession(f"{id(engine)}:{key}")
        return _FileLockSession(path)

    def upsert(
        self, conn: Connection, table: Table, data: pa.Table, conflict: list[str], update: bool
    ) -> int:
        if data.num_rows == 0:
            return 0
        names = data.column_names
        statement = sqlite_insert(table)
        if update:
            statement = statement.on_conflict_do_update(
                index_elements=conflict,
                # Every loaded column in the conflict key (a link table): a no-op update,
                # so the row still counts as written, as on MySQL.
                set_={n: statement.excluded[n] for n in names if n not in conflict}
                or {names[0]: statement.excluded[names[0]]},
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=conflict)
        rows = data.to_pylist()
        before = conn.connection.dbapi_connection.total_changes  # type: ignore[union-attr]
        conn.execute(statement, rows)
        after = conn.connection.dbapi_connection.total_changes  # type: ignore[union-attr]
        return len(rows) if update else int(after - before)

    def deferrable_objects(self, conn: Connection, table: str) -> list[DeferredObject]:
        """Secondary indexes only: SQLite keeps foreign keys inside the table definition."""
        rows = conn.execute(
            text(
                "SELECT m.name, m.sql FROM sqlite_master m WHERE m.type = 'index' "
                "AND m.tbl_name = :t AND m.sql IS NOT NULL AND m.sql NOT LIKE 'CREATE UNIQUE%'"
            ),
            {"t": table},
        ).all()
        return [
            DeferredObject(table, "index", name, f'DROP INDEX "{name}"', sql) for name, sql in rows
        ]

    def install_delta_triggers(
        self, conn: Connection, table: str, key: list[str], log_table: str
    ) -> list[str]:
        quote = conn.dialect.identifier_preparer.quote_identifier
        table_name = self.sql_string(table)

        def key_json(row: str) -> str:
            pairs = ", ".join(f"{self.sql_string(k)}, {row}.{quote(k)}" for k in key)
            return f"json_object({pairs})"

        def log(op: str, row: str) -> str:
            return (
                f"INSERT INTO {quote(log_table)} (table_name, op, row_key, changed_at) "
                f"VALUES ({table_name}, '{op}', {key_json(row)}, CURRENT_TIMESTAMP);"
            )

        changed = " OR ".join(f"OLD.{quote(k)} IS NOT NEW.{quote(k)}" for k in key)
        bodies = {
            "i": ("INSERT", log("I", "NEW")),
            "u": (
                "UPDATE",
                f"INSERT INTO {quote(log_table)} (table_name, op, row_key, changed_at) "
                f"SELECT {table_name}, 'D', {key_json('OLD')}, CURRENT_TIMESTAMP "
                f"WHERE {changed}; {log('U', 'NEW')}",
            ),
            "d": ("DELETE", log("D", "OLD")),
        }
        names = []
        for suffix, (action, body) in bodies.items():
            name = f"ferry_delta_{table}_{suffix}"
            # Dropped first: a trigger of an earlier install may log another key.
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {quote(name)}")
            conn.exec_driver_sql(
                f"CREATE TRIGGER {quote(name)} AFTER {action} ON {quote(table)} "
                f"FOR EACH ROW BEGIN {body} END"
            )
            names.append(name)
        return names

    def ordered(
        self, column: Column[Any], value: Any
    ) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        """Dates and times are text here, in whatever form each writer chose ('...12:00:00'
        from CURRENT_TIMESTAMP, '...12:00:00.000000' from SQLAlchemy), and text compares
        '12:00:00' below '12:00:00.000000': both sides go through julianday()."""
        if isinstance(value, datetime | date) and isinstance(column.type, sat.Date | sat.DateTime):
            text_value = value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)
            return func.julianday(column), func.julianday(literal(text_value, sat.String()))
        return super().ordered(column, value)

    def unique_keys(self, conn: Connection, table: str) -> list[set[str]]:
        """Unique indexes, the automatic ones of an inline `UNIQUE` among them."""
        found: list[set[str]] = []
        quote = conn.dialect.identifier_preparer.quote
        for index in conn.exec_driver_sql(f"PRAGMA index_list({quote(table)})").mappings().all():
            if not index["unique"] or index["partial"]:
                continue
            columns = conn.exec_driver_sql(f"PRAGMA index_info({quote(index['name'])})")
            found.append({str(c["name"]) for c in columns.mappings().all()})
        return found

    def delta_trigger_tables(self, conn: Connection) -> list[str]:
        rows = conn.exec_driver_sql(
            "SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger' "
            "AND name LIKE 'ferry\\_delta\\_%' ESCAPE '\\' ORDER BY 1"
        )
        return [str(r[0]) for r in rows]

    def drop_delta_triggers(self, conn: Connection, table: str) -> None:
        quote = conn.dialect.identifier_preparer.quote_identifier
        for suffix in "iud":
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {quote(f'ferry_delta_{table}_{suffix}')}")

    def read_expression(self, column: Any) -> Any:
        # SQLite stores a NUMERIC column's values as integers, reals or text, row by row
        # (a DECIMAL_TEXT one's as text): read as text, the reader sees one type.
        if isinstance(column.type, sat.Numeric) and not isinstance(column.type, sat.Float):
            return cast(column, sat.Text).label(column.name)
        return column

    def estimated_rows(self, conn: Connection, table: str) -> int | None:
        """SQLite keeps no row count unless ANALYZE ran: then counted (the table's b-tree
        pages, not the overflow pages of wide values). Without it chunks were sized by a
        default row count, so a table of wide rows became one chunk holding all of it."""
        quote = conn.dialect.identifier_preparer.quote
        try:
            stat = conn.exec_driver_sql(
                "SELECT stat FROM sqlite_stat1 WHERE tbl = ? LIMIT 1", (table,)
            ).scalar()
        except exc.DBAPIError:  # no ANALYZE yet: no sqlite_stat1
            stat = None
        if stat:
            return int(str(stat).split()[0]) or None
        found = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {quote(table)}").scalar()
        return int(found) if found else None

    def data_directory(self, conn: Connection, url: URL) -> Path | None:
        path = database_path(url)
        return None if path is None else path.resolve().parent

    def table_bytes(self, conn: Connection, tables: list[str]) -> dict[str, int]:
        if not tables:
            return {}
        try:
            # dbstat: pages per b-tree; an index counts towards its table
            rows = conn.execute(
                text(
                    "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d "
                    "JOIN sqlite_master m ON m.name = d.name GROUP BY m.tbl_name"
                )
            ).all()
        except exc.DBAPIError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
            return {}
        wanted = set(tables)
        return {str(name): int(size) for name, size in rows if name in wanted}

    def list_routines(self, conn: Connection) -> list[str]:
        rows = conn.execute(
            text(
                "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' "
                "AND name NOT LIKE 'ferry\\_delta\\_%' ESCAPE '\\' ORDER BY 1"
            )
        ).all()
        return [f"trigger {name} on {table}" for name, table in rows]

    def connectorx_url(self, url: URL) -> str | None:
        path = database_path(url)
        return f"sqlite://{path.resolve()}" if path is not None else None

    def is_missing_object_error(self, exc: BaseException) -> bool:
        message = str(getattr(exc, "orig", exc)).lower()
        return "no such" in message

    def create_database(self, admin: Connection, name: str) -> None:
        """A SQLite database is created by connecting to its file."""

    def drop_database(self, admin: Connection, name: str) -> None:
        Path(name).unlink(missing_ok=True)
