"""MySQL and MariaDB: DDL commits at once, so progress is recorded per statement."""

from __future__ import annotations

import re
import tempfile
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pymysql
from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    cast,
    exc,
    func,
    literal_column,
    select,
    text,
    tuple_,
    type_coerce,
)
from sqlalchemy import types as sat
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.engine import URL

from ferry.db.adapter import (
    Adapter,
    CanonKind,
    DeferredObject,
    LockHolder,
    is_local,
    register,
)
from ferry.errors import FerryError

_AT_LINE = re.compile(r"at line (\d+)")
# Server error codes meaning "that object is not there".
_MISSING_OBJECT = {1051, 1054, 1091, 1146, 1305, 1360, 1449, 4031}


class OutOfRangeTime(FerryError):
    """A MySQL TIME value that is no time of day (TIME holds durations of +-838 hours)."""


class _TimeOfDay(sat.TypeDecorator[time]):
    """MySQL TIME read as a time of day. The driver hands out a duration; SQLAlchemy's own
    conversion keeps it modulo 24 hours (838:59:59 would read as 22:59:59, -00:00:01 as
    23:59:59), so a duration that is no time of day stops the read instead."""

    impl = mysql.TIME
    cache_ok = True

    def __init__(self, column: str) -> None:
        super().__init__()
        self.column = column

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        def process(value: Any) -> time | None:
            if value is None or isinstance(value, time):
                return value
            assert isinstance(value, timedelta), value
            if not timedelta(0) <= value < timedelta(days=1):
                raise OutOfRangeTime(
                    f"TIME column `{self.column}` holds {_duration_text(value)}, which is no "
                    "time of day and does not fit the target's time column",
                    hint="leave those rows out with `where:`, or the column with `columns:`, "
                    "then run the same command again",
                )
            return (datetime.min + value).time()

        return process


#: A load's session, whatever the server's defaults: strict, so a value MariaDB would clamp,
#: truncate or replace by a default is refused instead (and rejected with the reason); a 0
#: in an AUTO_INCREMENT column kept, not taken for "the next id"; instants read as UTC.
#: The session's own settings come back after the load (`_RESTORE_SESSION`).
_STRICT_MODE = (
    "CONCAT_WS(',', NULLIF(@@session.sql_mode, ''), 'STRICT_ALL_TABLES', 'NO_AUTO_VALUE_ON_ZERO')"
)
_LOAD_SESSION = (
    f"SET @ferry_sql_mode = @@session.sql_mode, @ferry_time_zone = @@session.time_zone, "
    f"SESSION sql_mode = {_STRICT_MODE}, SESSION time_zone = '+00:00'"
)
_RESTORE_SESSION = "SET SESSION sql_mode = @ferry_sql_mode, SESSION time_zone = @ferry_time_zone"
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)
#: Byte value -> its two hex digits.
_HEX_PAIRS = np.stack([_HEX_DIGITS[np.arange(256) >> 4], _HEX_DIGITS[np.arange(256) & 15]], 1)


def _hex(column: pa.ChunkedArray) -> pa.Array:
    """Binary values as hex text, vectorised (a per-value `.hex()` costs a Python call and
    copy per row); NULL stays NULL."""
    values = pc.cast(column, pa.large_binary()).combine_chunks()
    if len(values) == 0:
        return pa.array([], pa.large_string())
    offsets = np.frombuffer(values.buffers()[1], np.int64)[
        values.offset : values.offset + len(values) + 1
    ]
    data = values.buffers()[2]
    raw = (
        np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
        if data is not None
        else np.empty(0, np.uint8)
    )
    hexed = pa.Array.from_buffers(
        pa.large_string(),
        len(values),
        [None, pa.py_buffer((offsets - offsets[0]) * 2), pa.py_buffer(_HEX_PAIRS[raw].tobytes())],
    )
    return pc.if_else(values.is_valid(), hexed, pa.scalar(None, pa.large_string()))


def _is_timestamp(type_: sat.TypeEngine[Any], dialect: str) -> bool:
    """A MySQL TIMESTAMP column (read and written in the session's zone), variants resolved."""
    resolved = getattr(type_, "_variant_mapping", {}).get(dialect, type_)
    return isinstance(resolved, sat.TIMESTAMP)


def _duration_text(value: timedelta) -> str:
    sign = "-" if value < timedelta(0) else ""
    seconds = abs(value) // timedelta(seconds=1)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@register
class MySQLAdapter(Adapter):
    name = "mysql"
    schemes = ("mysql", "mariadb")
    default_driver = "pymysql"
    # Every CREATE/ALTER/DROP commits implicitly: a failing migration keeps the statements
    # that ran before it. Ferry records them one by one so it can resume or undo exactly.
    transactional_ddl = False
    split_dialect = "mysql"
    # Foreign keys between tables being dropped must not stop the drops.
    unchecked_drops = ("SET FOREIGN_KEY_CHECKS = 0", "SET FOREIGN_KEY_CHECKS = 1")
    _local_infile = True
    checksum_length_prefixed = "CONCAT(CHAR_LENGTH({t}), ':', {t})"
    # CAST: a SUM of CONV's strings would be a float, not exact.
    checksum_sum = "SUM(CAST(CONV(LEFT(MD5({row}), 15), 16, 10) AS UNSIGNED))"
    external_tools = ("mariadb-dump", "mysqldump", "mariadb")

    def normalize_url(self, url):  # type: ignore[no-untyped-def]
        if url.get_backend_name() == "mariadb" and "+" not in url.drivername:
            url = url.set(drivername="mariadb+pymysql")
        return super().normalize_url(url)

    def connect_args(self) -> dict[str, Any]:
        return {"charset": "utf8mb4", "local_infile": True}

    @staticmethod
    def _lock_name(conn: Connection, key: str) -> str:
        database = conn.execute(text("SELECT DATABASE()")).scalar() or ""
        # GET_LOCK names are server-wide and at most 64 characters.
        return f"ferry:{database}:{key}"[:64]

    def try_lock(self, conn: Connection, key: str) -> bool:
        got = conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": self._lock_name(conn, key)})
        return got.scalar() == 1

    def unlock(self, conn: Connection, key: str) -> None:
        conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": self._lock_name(conn, key)})

    def lock_holder(self, conn: Connection, key: str) -> LockHolder | None:
        name = self._lock_name(conn, key)
        holder = conn.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": name}).scalar()
        if holder is None:
            return None
        row = conn.execute(
            text("SELECT USER, HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = :i"),
            {"i": holder},
        ).first()
        if row is None:
            return LockHolder(f"connection {holder}")
        return LockHolder(
            f"connection {holder} of {row.USER}@{row.HOST}, connected for {row.TIME} s"
        )

    def error_line_offset(self, exc: BaseException, sql: str) -> int:
        found = _AT_LINE.search(str(getattr(exc, "orig", exc)))
        return int(found.group(1)) - 1 if found else 0

    def is_missing_object_error(self, exc: BaseException) -> bool:
        orig = getattr(exc, "orig", exc)
        args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
        return bool(args) and args[0] in _MISSING_OBJECT

    def connectorx_url(self, url: URL) -> str | None:
        return url.set(drivername="mysql").render_as_string(hide_password=False)

    def read_expression(self, column: Any) -> Any:
        # Zero dates (0000-00-00) have no value in any other database: they become NULL,
        # as pgloader does.
        if isinstance(column.type, mysql.TIMESTAMP):
            # An instant, shown in the session's zone (whatever a URL's init_command or the
            # server set): read as UTC, the zone its Arrow type carries.
            instant = func.nullif(column, literal_column("0"), type_=column.type)
            zone: Any = literal_column("@@session.time_zone")
            return func.convert_tz(instant, zone, "+00:00", type_=column.type).label(column.name)
        if isinstance(column.type, (sat.Date, sat.DateTime)):
            return func.nullif(column, literal_column("0"), type_=column.type).label(column.name)
        if isinstance(column.type, sat.Time):
            return type_coerce(column, _TimeOfDay(column.name)).label(column.name)
        if isinstance(column.type, mysql.BIT):
            # BIT values arrive as bytes (b'\x01'): read them as the number they spell.
            return cast(column, mysql.INTEGER(unsigned=True)).label(column.name)
        return column

    def bulk_insert(self, conn: Connection, table: Table, data: pa.Table) -> None:
        """LOAD DATA LOCAL INFILE from CSV written by Arrow's C++ writer.

        Every column travels as text: NULL as `\\N` (so it stays apart from an empty string),
        backslashes doubled, booleans as 1/0, binary as hex put back with UNHEX, instants as
        UTC. Falls back to batched INSERTs where the server refuses LOCAL INFILE.
        """
        if data.num_rows == 0:
            return
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if self._local_infile and data.num_rows > 1:
                cursor.execute(_LOAD_SESSION)
                try:
                    self._load_data(cursor, conn, table, data)
                finally:
                    cursor.execute(_RESTORE_SESSION)
            if not self._local_infile or data.num_rows == 1:
                # One row: a plain INSERT, so the server's own error names the problem
                # (and durations and dates past 9999 go through the driver's own types).
                cursor.execute(_LOAD_SESSION)
                try:
                    super().bulk_insert(conn, table, data)
                finally:
                    cursor.execute(_RESTORE_SESSION)
        finally:
            cursor.close()

    def _load_data(self, cursor: Any, conn: Connection, table: Table, data: pa.Table) -> None:
        texts: dict[str, Any] = {}
        targets: list[str] = []
        sets: list[str] = []
        for index, field in enumerate(data.schema):
            column = data.column(index)
            name = f"`{field.name}`"
            if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
                text_values = _hex(column)
                targets.append(f"@v{index}")
                sets.append(f"{name} = UNHEX(@v{index})")
            else:
                if pa.types.is_boolean(field.type):
                    text_values = pc.if_else(column, "1", "0")
                elif pa.types.is_timestamp(field.type) and field.type.tz is not None:
                    # UTC text, read in the load's UTC session: the same instant in a
                    # TIMESTAMP column, its UTC wall clock in a DATETIME one.
                    text_values = pc.cast(pc.cast(column, pa.timestamp("us")), pa.string())
                else:
                    text_values = pc.cast(column, pa.string())
                text_values = pc.replace_substring(text_values, "\\", "\\\\")
                # An unquoted field reading NULL means NULL to LOAD DATA; `\\L` reads as `L`.
                text_values = pc.if_else(pc.equal(text_values, "NULL"), "NUL\\L", text_values)
                if (
                    pa.types.is_timestamp(field.type)
                    and field.type.tz is None
                    and _is_timestamp(table.c[field.name].type, conn.dialect.name)
                ):
                    # A wall clock into a TIMESTAMP column means the server's zone, as an
                    # INSERT would take it: the load's own session reads UTC.
                    targets.append(f"@v{index}")
                    sets.append(f"{name} = CONVERT_TZ(@v{index}, @ferry_time_zone, '+00:00')")
                else:
                    targets.append(name)
            texts[str(index)] = pc.fill_null(text_values, "\\N")
        if sets:
            # With a SET clause MariaDB takes a 0 loaded straight into an AUTO_INCREMENT
            # column for "the next id", NO_AUTO_VALUE_ON_ZERO or not; through SET it is kept.
            for index, name in enumerate(list(targets)):
                if not name.startswith("@"):
                    targets[index] = f"@v{index}"
                    sets.append(f"{name} = @v{index}")
        with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
            pcsv.write_csv(
                pa.table(texts),
                handle.name,
                pcsv.WriteOptions(include_header=False, batch_size=max(data.num_rows, 1)),
            )
            statement = (
                f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table.name}` CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' "
                f"LINES TERMINATED BY '\\n' ({', '.join(targets)})"
                + (f" SET {', '.join(sets)}" if sets else "")
            )
            try:
                cursor.execute(statement, (handle.name,))
            except pymysql.err.DataError:
                raise
            except Exception as error:
                if getattr(error, "args", (None,))[0] in (1148, 2068, 3948):
                    # LOCAL INFILE disabled on this server or client: use INSERTs.
                    self._local_infile = False
                    return
                raise
            loaded = cursor.rowcount
            # LOCAL turns refusals (duplicate keys, CHECKs, truncation) into warnings, also
            # in strict mode: any warning fails the batch, so the caller can find the refused
            # rows (a batch of one row names its refusal in the server's words).
            cursor.execute("SHOW WARNINGS")
            warnings = cursor.fetchall()
            if warnings or loaded != data.num_rows:
                first = warnings[0] if warnings else ("", 0, "rows were skipped")
                raise pymysql.err.DataError(
                    int(first[1] or 0),
                    f"LOAD DATA loaded {loaded} of {data.num_rows} rows: {first[2]}",
                )

    def upsert(
        self, conn: Connection, table: Table, data: pa.Table, conflict: list[str], update: bool
    ) -> int:
        """INSERT ... ON DUPLICATE KEY UPDATE (a no-op update to skip)."""
        if data.num_rows == 0:
            return 0
        names = data.column_names
        statement = mysql_insert(table)
        if update:
            changes = {n: statement.inserted[n] for n in names if n not in conflict}
        else:
            changes = {conflict[0]: table.c[conflict[0]]}
        statement = statement.on_duplicate_key_update(changes or {names[0]: table.c[names[0]]})
        conn.exec_driver_sql(_LOAD_SESSION)
        try:
            return self._upsert(conn, table, data, statement, conflict, update)
        finally:
            conn.exec_driver_sql(_RESTORE_SESSION)

    def _upsert(
        self,
        conn: Connection,
        table: Table,
        data: pa.Table,
        statement: Any,
        conflict: list[str],
        update: bool,
    ) -> int:
        rows = data.to_pylist()
        if update:
            conn.execute(statement, rows)
            return len(rows)
        # The affected-row count cannot tell a skipped row from an inserted one (SQLAlchemy
        # asks for found rows): count the rows holding the batch's keys before and after.
        # A key twice in the batch, or already there, is skipped; a NULL never conflicts.
        columns = [table.c[c] for c in conflict]
        keys = [tuple(row[c] for c in conflict) for row in rows]
        full = [k for k in keys if None not in k]
        match = (
            columns[0].in_([k[0] for k in full])
            if len(columns) == 1
            else tuple_(*columns).in_(full)
        )
        holding = select(func.count()).select_from(table).where(match)
        before = int(conn.execute(holding).scalar() or 0) if full else 0
        conn.execute(statement, rows)
        after = int(conn.execute(holding).scalar() or 0) if full else 0
        return after - before + len(keys) - len(full)

    def deferrable_objects(self, conn: Connection, table: str) -> list[DeferredObject]:
        """Non-unique secondary indexes (not the ones a foreign key needs) and foreign keys.

        MySQL cannot disable triggers; they keep firing during the load.
        """
        found: list[DeferredObject] = []
        quote = conn.dialect.identifier_preparer.quote_identifier
        quoted = quote(table)
        fk_rows = conn.execute(
            text(
                "SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, "
                "k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE "
                "FROM information_schema.KEY_COLUMN_USAGE k "
                "JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
                "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA "
                "AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
                "WHERE k.TABLE_SCHEMA = DATABASE() AND k.TABLE_NAME = :t "
                "ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
            ),
            {"t": table},
        ).all()
        fks: dict[str, list[Any]] = {}
        for row in fk_rows:
            fks.setdefault(row[0], []).append(row)
        for name, rows in fks.items():
            cols = ", ".join(quote(r[1]) for r in rows)
            refs = ", ".join(quote(r[3]) for r in rows)
            found.append(
                DeferredObject(
                    table,
                    "foreign_key",
                    name,
                    f"ALTER TABLE {quoted} DROP FOREIGN KEY {quote(name)}",
                    f"ALTER TABLE {quoted} ADD CONSTRAINT {quote(name)} FOREIGN KEY ({cols}) "
                    f"REFERENCES {quote(rows[0][2])} ({refs}) ON UPDATE {rows[0][4]} "
                    f"ON DELETE {rows[0][5]}",
                )
            )
        # An index kept from the optimizer's use must come back so: MariaDB 10.6 calls it
        # IGNORED, MySQL 8 INVISIBLE.
        version = tuple(getattr(conn.dialect, "server_version_info", None) or ())
        if getattr(conn.dialect, "is_mariadb", False):
            hidden, hide = ("IGNORED = 'YES'", " IGNORED") if version >= (10, 6) else ("0", "")
        else:
            hidden, hide = ("IS_VISIBLE = 'NO'", " INVISIBLE") if version >= (8,) else ("0", "")
        index_rows = conn.execute(
            text(
                "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART, INDEX_TYPE, COLLATION, INDEX_COMMENT, "
                f"{hidden} FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t AND NON_UNIQUE = 1 "
                "ORDER BY INDEX_NAME, SEQ_IN_INDEX"
            ),
            {"t": table},
        ).all()
        indexes: dict[str, list[Any]] = {}
        for row in index_rows:
            indexes.setdefault(row[0], []).append(row)
        for name, rows in indexes.items():
            if name in fks:
                continue  # InnoDB would refuse to drop an index a foreign key uses
            if rows[0][3] not in ("BTREE", "HASH"):
                continue  # FULLTEXT and SPATIAL indexes stay: the load keeps them current
            if any(r[1] is None for r in rows):
                continue  # a functional key part (MySQL 8): no column to rebuild it from
            cols = ", ".join(
                quote(r[1]) + (f"({r[2]})" if r[2] else "") + (" DESC" if r[4] == "D" else "")
                for r in rows
            )
            comment = f" COMMENT {self.sql_string(rows[0][5])}" if rows[0][5] else ""
            comment += hide if rows[0][6] else ""
            found.append(
                DeferredObject(
                    table,
                    "index",
                    name,
                    f"DROP INDEX {quote(name)} ON {quoted}",
                    f"CREATE INDEX {quote(name)} ON {quoted} ({cols}){comment}",
                )
            )
        return found

    def sql_string(self, value: str) -> str:
        # A backslash escapes in MySQL's strings (unless sql_mode says NO_BACKSLASH_ESCAPES).
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"

    def install_delta_triggers(
        self, conn: Connection, table: str, key: list[str], log_table: str
    ) -> list[str]:
        quote = conn.dialect.identifier_preparer.quote_identifier

        def key_json(row: str) -> str:
            pairs = ", ".join(f"{self.sql_string(k)}, {row}.{quote(k)}" for k in key)
            return f"JSON_OBJECT({pairs})"

        def log(op: str, row: str) -> str:
            return (
                f"INSERT INTO {quote(log_table)} (table_name, op, row_key) "
                f"VALUES ({self.sql_string(table)}, '{op}', {key_json(row)})"
            )

        # BINARY: a key changed only in case or trailing blanks is a new key to a target
        # that compares text exactly, though the column's collation calls the two equal.
        changed = " OR ".join(f"NOT (BINARY OLD.{quote(k)} <=> BINARY NEW.{quote(k)})" for k in key)
        bodies = {
            "i": ("INSERT", log("I", "NEW")),
            "u": (
                "UPDATE",
                f"BEGIN IF {changed} THEN {log('D', 'OLD')}; END IF; {log('U', 'NEW')}; END",
            ),
            "d": ("DELETE", log("D", "OLD")),
        }
        names = []
        for suffix, (event, body) in bodies.items():
            name = f"ferry_delta_{table}_{suffix}"[:64]
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {quote(name)}")
            conn.exec_driver_sql(
                f"CREATE TRIGGER {quote(name)} AFTER {event} ON {quote(table)} FOR EACH ROW {body}"
            )
            names.append(name)
        return names

    def delta_trigger_tables(self, conn: Connection) -> list[str]:
        rows = conn.execute(
            text(
                "SELECT DISTINCT EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE :p ORDER BY 1"
            ),
            {"p": "ferry\\_delta\\_%"},
        )
        return [str(r[0]) for r in rows]

    def drop_delta_triggers(self, conn: Connection, table: str) -> None:
        quote = conn.dialect.identifier_preparer.quote_identifier
        for suffix in "iud":
            name = f"ferry_delta_{table}_{suffix}"[:64]
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {quote(name)}")

    def lock_timeout_sql(self, seconds: float) -> tuple[str, ...]:
        wait = max(1, int(seconds))
        # metadata locks (DDL) and row locks have separate timeouts
        return (
            f"SET SESSION lock_wait_timeout = {wait}",
            f"SET SESSION innodb_lock_wait_timeout = {wait}",
        )

    def is_lock_timeout(self, exc: BaseException) -> bool:
        args: tuple[object, ...] = tuple(getattr(getattr(exc, "orig", exc), "args", ()))
        return bool(args) and args[0] == 1205

    def drop_sql(self, kind: str, name: str) -> str:
        return f"DROP {kind} IF EXISTS `{name}`"

    def long_transactions(
        self, conn: Connection, tables: list[str], seconds: int = 30
    ) -> list[str]:
        # InnoDB does not say which tables a transaction locked: report every long one.
        rows = conn.execute(
            text(
                "SELECT t.trx_mysql_thread_id, p.USER, p.HOST, "
                "TIMESTAMPDIFF(SECOND, t.trx_started, NOW()) AS age "
                "FROM information_schema.INNODB_TRX t "
                "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                "WHERE t.trx_started < NOW() - INTERVAL :s SECOND "
                "AND t.trx_mysql_thread_id <> CONNECTION_ID()"
            ),
            {"s": seconds},
        ).all()
        return [
            f"connection {r[0]} ({r[1]}@{r[2]}) has had a transaction open for {r[3]} s"
            for r in rows
        ]

    def data_directory(self, conn: Connection, url: URL) -> Path | None:
        if not is_local(url):
            return None
        try:
            found = conn.execute(text("SELECT @@datadir")).scalar()
        except exc.DBAPIError:
            return None
        return Path(str(found)) if found else None

    def table_bytes(self, conn: Connection, tables: list[str]) -> dict[str, int]:
        if not tables:
            return {}
        rows = conn.execute(
            text(
                "SELECT TABLE_NAME, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :t"
            ).bindparams(bindparam("t", expanding=True)),
            {"t": list(tables)},
        ).all()
        return {str(name): int(size) for name, size in rows if size is not None}

    def estimated_rows(self, conn: Connection, table: str) -> int | None:
        found = conn.execute(
            text(
                "SELECT TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
            ),
            {"t": table},
        ).scalar()
        return int(found) if found else None

    def explain_rows(self, conn: Connection, query: Any) -> int | None:
        # A key range on an InnoDB index is estimated by diving into the index itself.
        sql = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        row = conn.exec_driver_sql(f"EXPLAIN {sql}").mappings().first()
        found = row.get("rows") if row is not None else None
        return int(found) if found is not None else None

    def rows_per_value(self, conn: Connection, table: str, column: str) -> float | None:
        # The cardinality of an index that the column leads (InnoDB samples a few pages);
        # joined to TABLES in one query, information_schema takes 15 ms instead of none.
        distinct = conn.execute(
            text(
                "SELECT MAX(CARDINALITY) FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t AND COLUMN_NAME = :c "
                "AND SEQ_IN_INDEX = 1"
            ),
            {"t": table, "c": column},
        ).scalar()
        rows = self.estimated_rows(conn, table)
        return rows / float(distinct) if distinct and rows else None

    def list_routines(self, conn: Connection) -> list[str]:
        triggers = conn.execute(
            text(
                "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME NOT LIKE 'ferry\\_delta\\_%' "
                "ORDER BY 1"
            )
        ).all()
        routines = conn.execute(
            text(
                "SELECT ROUTINE_NAME, LOWER(ROUTINE_TYPE) FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY 1"
            )
        ).all()
        return [f"trigger {name} on {table}" for name, table in triggers] + [
            f"{kind} {name}" for name, kind in routines
        ]

    def checksum_text(self, column: str, column_type: Any, kind: CanonKind) -> str | None:
        # PostgreSQL's output is the canonical form: fractions of seconds and decimals
        # without trailing zeros (12.50 -> 12.5, 100.00 -> 100), booleans as 1 and 0.
        trimmed = f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST({column} AS CHAR)))"
        if kind == "decimal" and (getattr(column_type, "scale", None) or 0) > 0:
            return trimmed
        if kind == "timestamp":
            return trimmed if getattr(column_type, "fsp", None) else f"CAST({column} AS CHAR)"
        if kind == "bool" and isinstance(column_type, sat.Integer):
            # A boolean kept in TINYINT(1) prints its number: 2 is not the 1 a copy writes.
            return f"CAST({column} AS CHAR)"
        return {
            "float": f"CAST(CAST({column} AS DOUBLE) AS CHAR)",  # FLOAT widened exactly
            "bool": f"CAST({column} <> 0 AS CHAR)",
            "bytes": f"LOWER(HEX({column}))",
            "uuid": f"LOWER({column})",
        }.get(kind, f"CAST({column} AS CHAR)")

    def checksum_session_sql(self) -> tuple[str, ...]:
        # TIMESTAMP columns print in the session's zone: UTC, as PostgreSQL's are rendered.
        return ("SET time_zone = '+00:00'",)

    def create_database(self, admin: Connection, name: str) -> None:
        admin.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def drop_database(self, admin: Connection, name: str) -> None:
        admin.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
