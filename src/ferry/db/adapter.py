"""What differs between databases, stated once per dialect (see postgresql.py, mysql.py, sqlite.py).

The schema engine asks an adapter; it never branches on a dialect's name.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    create_engine,
    func,
    insert,
    literal,
    update,
)
from sqlalchemy import types as sat
from sqlalchemy.engine import URL, make_url
from sqlalchemy.sql.elements import ColumnElement

from ferry.config.project import PoolConfig
from ferry.db.lock import ConnectionLockSession, LockSession

#: Families of canonical text that in-database checksums render values as.
CanonKind = Literal[
    "int", "decimal", "float", "bool", "timestamp", "date", "string", "bytes", "uuid", "other"
]


@dataclass(frozen=True)
class ChecksumPart:
    """One column's canonical text in a row checksum."""

    text: str  # SQL from checksum_text
    nullable: bool
    #: free text (strings, bytes, JSON): may hold the separator, so it is length-prefixed
    free: bool


#: How the SQL splitter reads scripts (same names as `ferry.schema.splitter.Dialect`).
SplitDialect = Literal["postgresql", "mysql", "sqlite", "generic"]


_LOOPBACK = {"", "localhost", "127.0.0.1", "::1"}


def is_local(url: URL) -> bool:
    """The server runs on this machine (loopback host or a unix socket), so its data
    directory, if the server names it, is a path this process can look at."""
    host = url.host or str(url.query.get("host") or "")
    return host in _LOOPBACK or host.startswith(("/", "127."))


def client_label() -> str:
    """Who is migrating, as other sessions will see it: user@host pid."""
    return f"ferry {getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"


@dataclass(frozen=True)
class DeferredObject:
    """An index, foreign key or trigger set that a bulk load sets aside and rebuilds."""

    table: str
    kind: str  # index | foreign_key | triggers
    name: str
    drop_sql: str
    restore_sql: str


@dataclass(frozen=True)
class LockHolder:
    """Who holds a migration lock, as far as the database can tell."""

    description: str


class Adapter:
    """Base adapter. Subclasses set the flags and override the hooks that differ."""

    name: ClassVar[str] = "generic"
    #: URL schemes (before any `+driver`) this adapter serves.
    schemes: ClassVar[tuple[str, ...]] = ()
    #: The driver Ferry uses when a URL names none.
    default_driver: ClassVar[str] = ""
    #: DDL inside a transaction can be rolled back.
    transactional_ddl: ClassVar[bool] = False
    #: How the SQL splitter should read scripts for this database.
    split_dialect: ClassVar[SplitDialect] = "generic"
    #: Session settings that let a commit return before its WAL flush, and that restore the
    #: default. Ferry relaxes flushing while more migrations follow in the run and restores it
    #: for the last one, whose flushed commit makes everything before it durable: a crash can
    #: only lose a consistent tail of migrations, each together with its history row.
    relaxed_flush_sql: ClassVar[tuple[str, str] | None] = None
    #: A table Ferry creates for a bulk copy gets its primary key after the data.
    defer_primary_key: ClassVar[bool] = False
    #: What turns a query into its plan.
    explain_prefix: ClassVar[str] = "EXPLAIN"
    #: Statements around drops that foreign keys must not stop (off, on).
    unchecked_drops: ClassVar[tuple[str, str] | None] = None
    #: Validates a foreign key added NOT VALID (`{table}`, `{name}` quoted), where the
    #: database splits the two: the check then only shares the referenced table.
    validate_foreign_key_sql: ClassVar[str | None] = None
    #: A bytes value written into SQL text (SQLAlchemy renders none): `{hex}` is its hex.
    bytes_literal_sql: ClassVar[str] = "X'{hex}'"
    #: ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY works (so keys can follow the data).
    can_add_foreign_keys: ClassVar[bool] = True
    #: In-database checksums: `{t}` prefixed by its length, NULL kept NULL; and the sum over
    #: the rows of the first 60 bits of the MD5 of `{row}`, exact (see row_checksum_sql).
    checksum_length_prefixed: ClassVar[str] = ""
    checksum_sum: ClassVar[str] = ""
    #: Run before each index build but the heaviest when Ferry builds several at once: its
    #: own threads already fill the cores, so the server's parallel workers go only to the
    #: build that outlasts the others.
    serial_index_build_sql: ClassVar[tuple[str, ...]] = ()
    #: Run first in a transaction whose loss in a server crash costs only a redo (a copy's
    #: chunk, whose rows and checkpoint commit together; a key built after the load): its
    #: commit returns before the log is flushed. The run's record, committed last and
    #: flushed, makes everything before it durable before Ferry reports the run finished.
    unflushed_commit_sql: ClassVar[tuple[str, ...]] = ()
    #: Several connections may build indexes and keys at the same time.
    concurrent_ddl: ClassVar[bool] = True
    #: Command-line tools Ferry can use with this database (backups, restores).
    external_tools: ClassVar[tuple[str, ...]] = ()

    def normalize_url(self, url: URL) -> URL:
        """Pick Ferry's driver when the URL names only the database."""
        if "+" not in url.drivername and self.default_driver:
            return url.set(drivername=f"{url.get_backend_name()}+{self.default_driver}")
        return url

    def engine_options(self, pool: PoolConfig) -> dict[str, Any]:
        return {
            "pool_size": max(pool.max, 1),
            "max_overflow": 0,
            "pool_timeout": pool.acquire_timeout,
            "pool_recycle": int(pool.idle_timeout),
            "pool_pre_ping": True,
        }

    def connect_args(self) -> dict[str, Any]:
        return {}

    def create_engine(self, url: URL, pool: PoolConfig) -> Engine:
        engine = create_engine(
            self.normalize_url(url),
            connect_args=self.connect_args(),
            **self.engine_options(pool),
        )
        self.prepare_engine(engine)
        return engine

    def prepare_engine(self, engine: Engine) -> None:
        """Install event hooks the dialect needs (SQLite's transaction handling)."""

    def server_version(self, conn: Connection) -> str:
        info = conn.dialect.server_version_info
        return ".".join(str(part) for part in info) if info else "unknown"

    # --- migration lock: session-level, released by the database if the process dies ---

    def open_lock_session(self, engine: Engine, key: str) -> LockSession:
        """A session on which the migration lock can be taken and released."""
        return ConnectionLockSession(self, engine, key)

    def try_lock(self, conn: Connection, key: str) -> bool:
        """Try once to take the migration lock on `conn` (an AUTOCOMMIT connection).

        Every adapter either implements this and `unlock` (PostgreSQL, MySQL) or overrides
        `open_lock_session` (SQLite): a dialect without a session lock has no safe default.
        """
        raise NotImplementedError(f"{self.name} has no session lock: override try_lock")

    def unlock(self, conn: Connection, key: str) -> None:
        raise NotImplementedError(f"{self.name} has no session lock: override unlock")

    def lock_holder(self, conn: Connection, key: str) -> LockHolder | None:
        """Who holds the lock, where the database can tell."""
        return None

    # --- running scripts ---

    def execute_script(self, conn: Connection, sql: str) -> None:
        """Run one statement of a migration script exactly as written.

        Goes to the DB-API cursor without parameters, so `%` and `:name` in the SQL are not
        taken for bind parameters.
        """
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql)
        finally:
            cursor.close()

    def error_line_offset(self, exc: BaseException, sql: str) -> int:
        """Lines between a statement's first line and the error the database reported."""
        return 0

    def is_missing_object_error(self, exc: BaseException) -> bool:
        """The error says an object does not exist (used to undo a half-applied migration)."""
        return False

    # --- data copies ---

    def connectorx_url(self, url: URL) -> str | None:
        """A connectorx connection string (Rust reader straight into Arrow), if it serves us."""
        return None

    def read_expression(self, column: Any) -> Any:
        """How to select a column for a copy (MySQL turns zero dates into NULL here)."""
        return column

    def bulk_insert(self, conn: Connection, table: Table, data: pa.Table) -> None:
        """Append Arrow rows to a table inside the caller's transaction.

        The base implementation is a DB-API executemany; adapters override it with the
        database's bulk path.
        """
        if data.num_rows == 0:
            return
        columns = [table.c[name] for name in data.column_names]
        statement = insert(table).compile(
            dialect=conn.dialect, column_keys=[c.key for c in columns]
        )
        # A name the paramstyle cannot carry as it is ("Mixed Case", "a.b") is bound under
        # an escaped one.
        escaped = statement.escaped_bind_names
        original = {bound: name for name, bound in escaped.items()}
        names = statement.positiontup
        rows: list[Any] = (
            list(zip(*(data[original.get(n, n)].to_pylist() for n in names), strict=True))
            if names
            else [{escaped.get(k, k): v for k, v in row.items()} for row in data.to_pylist()]
        )
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(str(statement), rows)
        finally:
            cursor.close()

    def upsert(
        self, conn: Connection, table: Table, data: pa.Table, conflict: list[str], update: bool
    ) -> int:
        """Insert rows; rows whose `conflict` columns match an existing row update it
        (`update`) or are skipped. Returns how many rows were inserted or updated."""
        raise NotImplementedError(f"upsert is not available for {self.name}")

    def deferrable_objects(self, conn: Connection, table: str) -> list[DeferredObject]:
        """Secondary indexes, foreign keys and triggers of a table that a load can set aside
        (primary keys and unique indexes stay: they keep the load honest)."""
        return []

    def install_delta_triggers(
        self, conn: Connection, table: str, key: list[str], log_table: str
    ) -> list[str]:
        """Triggers that log the key of every inserted, updated and deleted row of `table`
        into `log_table` (table_name, op I/U/D, row_key as a JSON object). Idempotent."""
        raise NotImplementedError(f"delta capture is not available for {self.name}")

    def drop_delta_triggers(self, conn: Connection, table: str) -> None:
        raise NotImplementedError(f"delta capture is not available for {self.name}")

    def unique_keys(self, conn: Connection, table: str) -> list[set[str]]:
        """Column sets of the table's unique indexes and constraints that reflection may
        leave out (SQLite's inline `UNIQUE`); reflection covers the rest."""
        return []

    def delta_trigger_tables(self, conn: Connection) -> list[str]:
        """Tables of the current database or schema that carry Ferry capture triggers."""
        return []

    def drop_delta_support(self, conn: Connection) -> None:
        """Remove shared helpers of the capture triggers (PostgreSQL's trigger function)."""

    def lock_timeout_sql(self, seconds: float) -> tuple[str, ...]:
        """Session settings that make a statement give up waiting for a lock (production)."""
        return ()

    def is_lock_timeout(self, exc: BaseException) -> bool:
        """The error says a lock wait timed out (worth a retry)."""
        return False

    def drop_sql(self, kind: str, name: str) -> str:
        """DROP of a table or view that nothing else may keep alive (safe-mode restore)."""
        return f'DROP {kind} IF EXISTS "{name}"'

    def long_transactions(
        self, conn: Connection, tables: list[str], seconds: int = 30
    ) -> list[str]:
        """Transactions open for more than `seconds` that hold locks on `tables` (or, where
        the database cannot tell which tables, any such transaction)."""
        return []

    def estimated_rows(self, conn: Connection, table: str) -> int | None:
        """The database's own row estimate for a table (statistics, no scan), if it keeps
        one: chunk planning needs only the order of magnitude."""
        return None

    def sampled_row_bytes(self, conn: Connection, table: str) -> float | None:
        """Bytes a row's values take once read, measured on a few rows, where the size on
        disk understates it (values stored compressed); None: the size on disk tells."""
        return None

    def explain_rows(self, conn: Connection, query: Any) -> int | None:
        """The planner's estimate of the rows a one-table SELECT reads (its statistics, no
        scan), if this database gives one."""
        return None

    def sql_string(self, value: str) -> str:
        """A string literal for SQL text that takes no parameters (a trigger's body)."""
        return "'" + value.replace("'", "''") + "'"

    def ordered(
        self, column: Column[Any], value: Any
    ) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        """A column and a value of its type, as two expressions that compare by the value's
        order (an incremental cursor's window)."""
        return column, literal(value, column.type)

    def rows_per_value(self, conn: Connection, table: str, column: str) -> float | None:
        """Average rows per distinct value of a column, from the statistics (no scan), if
        the database keeps them: a composite key splits on its leading column alone only
        when each of its values holds few rows."""
        return None

    # --- disk space, for the free-space precondition ---

    def data_directory(self, conn: Connection, url: URL) -> Path | None:
        """The folder the database's files live in, when the server is on this machine and
        tells (None otherwise: free space is then unknown, never guessed)."""
        return None

    def free_bytes(self, conn: Connection, url: URL) -> int | None:
        """Free bytes on the disk holding the database's files, or None when unknown."""
        folder = self.data_directory(conn, url)
        if folder is None:
            return None
        try:
            return shutil.disk_usage(folder).free
        except OSError:  # not visible to this process (permissions, another mount namespace)
            return None

    def table_bytes(self, conn: Connection, tables: list[str]) -> dict[str, int]:
        """On-disk bytes of tables with their indexes, from the catalog (no scan); tables
        the database has no figure for are left out."""
        return {}

    def list_routines(self, conn: Connection) -> list[str]:
        """Triggers, procedures and functions of the database (Ferry's own left out), as
        "trigger t on x", "procedure p", ... for a report."""
        return []

    def primary_key_using_index_sql(self, table: str, index: str, columns: str) -> str:
        """Make the primary key of `table` (quoted names) from the unique index just built
        on `columns`, or build it where the database cannot adopt an index."""
        return f"ALTER TABLE {table} ADD PRIMARY KEY ({columns})"

    def fill_nulls(self, conn: Connection, table: Table, data: pa.Table, key: list[str]) -> None:
        """For each row of `data`, set the NULL columns of the table's row with the same
        `key` to the row's values (merge de-duplication across batches)."""
        if data.num_rows == 0:
            return
        columns = [c for c in data.column_names if c not in key]
        if not columns:
            return
        statement = (
            update(table)
            .where(and_(*[table.c[k] == bindparam(f"key_{k}") for k in key]))
            .values({c: func.coalesce(table.c[c], bindparam(f"new_{c}")) for c in columns})
        )
        rows = [
            {**{f"key_{k}": row[k] for k in key}, **{f"new_{c}": row[c] for c in columns}}
            for row in data.to_pylist()
        ]
        conn.execute(statement, rows)

    def reset_identity(self, conn: Connection, table: Table) -> None:
        """After loading explicit ids, make the next generated id follow the largest one."""

    # --- in-database checksums (ferry.validate.checksums) ---

    def checksum_text(self, column: str, column_type: Any, kind: CanonKind) -> str | None:
        """SQL rendering `column` (quoted), of `column_type`, as canonical text of `kind`:
        the same value gives the same text on every database, NULL stays NULL. None where
        this database cannot checksum inside; its rows are then compared in Arrow."""
        return None

    def row_checksum_sql(self, parts: list[ChecksumPart]) -> str:
        """An aggregate summing, over the rows, the first 60 bits of the MD5 of each row's
        canonical texts joined by `|`: NULL spelled `~` and free text prefixed by its length,
        so no two different rows read alike."""
        if not self.checksum_sum:
            raise NotImplementedError(f"{self.name}: set checksum_sum with checksum_text")
        texts = []
        for part in parts:
            sql = self.checksum_length_prefixed.format(t=part.text) if part.free else part.text
            texts.append(f"COALESCE({sql}, '~')" if part.nullable else sql)
        return self.checksum_sum.format(row=f"CONCAT_WS('|', {', '.join(texts)})")

    def checksum_session_sql(self) -> tuple[str, ...]:
        """Session settings that make checksum texts canonical (time zone)."""
        return ()

    # --- databases, for `ferry init`-style set-up and tests ---

    def create_database(self, admin: Connection, name: str) -> None:
        raise NotImplementedError

    def drop_database(self, admin: Connection, name: str) -> None:
        raise NotImplementedError


def is_unbounded_numeric(column_type: sat.TypeEngine[Any]) -> bool:
    """NUMERIC without precision: any number, exactly (no Arrow decimal holds them all)."""
    return (
        isinstance(column_type, sat.Numeric)
        and not isinstance(column_type, sat.Float)
        and getattr(column_type, "asdecimal", True) is not False
        and column_type.precision is None
    )


_ADAPTERS: dict[str, type[Adapter]] = {}


def register(cls: type[Adapter]) -> type[Adapter]:
    for scheme in cls.schemes:
        _ADAPTERS[scheme] = cls
    return cls


def adapter_for_dialect(name: str) -> type[Adapter]:
    """The adapter class of a SQLAlchemy dialect name (`postgresql`, `mysql`, ...); the base
    class for a dialect Ferry has no adapter for."""
    return _ADAPTERS.get(name, Adapter)


def adapter_for(url: str | URL) -> Adapter:
    """The adapter serving a URL's database.

    Raises:
        ValueError: no adapter serves that scheme (the caller names the config key).
    """
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    try:
        return _ADAPTERS[backend]()
    except KeyError:
        known = ", ".join(sorted(_ADAPTERS))
        raise ValueError(f"unsupported database `{backend}` (supported: {known})") from None
