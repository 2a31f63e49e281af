"""PostgreSQL: transactional DDL, session advisory locks, dollar-quoted bodies."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pgpq
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from sqlalchemy import Column, Connection, MetaData, Table, cast, exc, select, text
from sqlalchemy import types as sat
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL

from ferry.db.adapter import (
    Adapter,
    CanonKind,
    DeferredObject,
    LockHolder,
    client_label,
    is_local,
    is_unbounded_numeric,
    register,
)
from ferry.db.pgbinary import HEADER, TRAILER, encode_rows


def lock_key(key: str) -> int:
    """A stable signed 64-bit advisory lock id for a key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


@register
class PostgresAdapter(Adapter):
    name = "postgresql"
    schemes = ("postgresql", "postgres")
    default_driver = "psycopg"
    # PostgreSQL rolls back CREATE/ALTER/DROP with the transaction, so a failing
    # migration leaves nothing behind.
    transactional_ddl = True
    split_dialect = "postgresql"
    # ALTER TABLE ADD PRIMARY KEY builds the index in one sorted pass, faster than keeping
    # it current row by row during COPY; identity columns need no key.
    defer_primary_key = True
    relaxed_flush_sql = ("SET synchronous_commit TO off", "RESET synchronous_commit")
    # Measured on 5M rows, 2 cores: primary key and a 2-column index built at once took
    # 2.78 s with the default 2 workers each, 2.50 s with workers only for the larger.
    serial_index_build_sql = ("SET LOCAL max_parallel_maintenance_workers = 0",)
    # A chunk's commit waited for its ~10 MB of WAL, an index's for all of its pages'.
    unflushed_commit_sql = ("SET LOCAL synchronous_commit TO off",)
    validate_foreign_key_sql = "ALTER TABLE {table} VALIDATE CONSTRAINT {name}"
    bytes_literal_sql = "'\\x{hex}'::bytea"
    checksum_length_prefixed = "length({t}) || ':' || {t}"
    checksum_sum = "sum(('x' || substr(md5({row}), 1, 15))::bit(60)::bigint)"
    external_tools = ("pg_dump", "pg_restore", "psql")

    def normalize_url(self, url):  # type: ignore[no-untyped-def]
        if url.drivername == "postgres":
            url = url.set(drivername="postgresql")
        return super().normalize_url(url)

    def connect_args(self) -> dict[str, Any]:
        return {"application_name": client_label()[:63]}

    def try_lock(self, conn: Connection, key: str) -> bool:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(key)})
        return bool(got.scalar())

    def unlock(self, conn: Connection, key: str) -> None:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(key)})

    def lock_holder(self, conn: Connection, key: str) -> LockHolder | None:
        k = lock_key(key)
        # An advisory lock id is split into two 32-bit halves in pg_locks.
        classid, objid = (k >> 32) & 0xFFFFFFFF, k & 0xFFFFFFFF
        row = conn.execute(
            text(
                "SELECT a.pid, a.usename, a.application_name, a.client_addr, a.backend_start "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :c "
                "AND l.objid = :o AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"c": classid, "o": objid},
        ).first()
        if row is None:
            return None
        who = row.application_name or "unknown client"
        return LockHolder(
            f"{who} (server pid {row.pid}, user {row.usename}, "
            f"connected since {row.backend_start:%Y-%m-%d %H:%M:%S})"
        )

    def error_line_offset(self, exc: BaseException, sql: str) -> int:
        diag = getattr(getattr(exc, "orig", exc), "diag", None)
        position = getattr(diag, "statement_position", None)
        if not position:
            return 0
        return sql[: int(position) - 1].count("\n")

    def is_missing_object_error(self, exc: BaseException) -> bool:
        code = getattr(getattr(exc, "orig", exc), "sqlstate", None)
        return code in {"42P01", "42703", "42704", "42883"}

    def connectorx_url(self, url: URL) -> str | None:
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    def read_expression(self, column: Any) -> Any:
        # An array as PostgreSQL's own text ('{1,2,"b,c"}'): one string a COPY reads back
        # into the array, and a text another database can keep. NUMERIC without precision
        # as its text too: any scale, any size, NaN (connectorx refuses a scale but 10, and
        # no Arrow decimal holds them all).
        if isinstance(column.type, sat.ARRAY) or is_unbounded_numeric(column.type):
            return cast(column, sat.Text).label(column.name)
        return column

    def bulk_insert(self, conn: Connection, table: Table, data: pa.Table) -> None:
        """COPY in PostgreSQL's binary format, encoded from Arrow buffers (numpy for
        fixed-width NULL-free columns, else pgpq): no Python object per value, and no text
        for the server to parse.

        Binary COPY needs each value in exactly its column's type, so it is used when every
        column is of a kind whose Arrow type matches (numbers, text, booleans, dates,
        timestamps, bytes); otherwise Arrow's C++ CSV writer feeds a CSV COPY.
        """
        if data.num_rows == 0:
            return
        preparer = conn.dialect.identifier_preparer
        columns = ", ".join(preparer.quote(name) for name in data.column_names)
        spelled = _infinities(data)  # rare: such a batch goes by CSV, in text
        if spelled is not None:
            data = spelled
        binary = _binary_ready(table, data) if spelled is None else None
        payload: list[Any]
        if binary is not None:
            rows = encode_rows(binary)
            if rows is not None:
                payload = [HEADER, rows.data.cast("B"), TRAILER]
            else:
                encoder = pgpq.ArrowToPostgresBinaryEncoder(binary.schema)
                payload = [encoder.write_header()]
                payload += [encoder.write_batch(batch) for batch in binary.to_batches()]
                payload.append(encoder.finish())
            fmt = "binary"
        else:
            buffer = io.BytesIO()
            pcsv.write_csv(
                _csv_ready(data),
                buffer,
                pcsv.WriteOptions(include_header=False, batch_size=max(data.num_rows, 1)),
            )
            payload = [buffer.getbuffer()]
            fmt = "csv"
        sql = f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN (FORMAT {fmt})"
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(sql) as copy:
                for part in payload:  # written one by one: no joined copy of the whole
                    copy.write(part)
        finally:
            cursor.close()

    def upsert(
        self, conn: Connection, table: Table, data: pa.Table, conflict: list[str], update: bool
    ) -> int:
        """COPY into a session's staging table, then one INSERT ... ON CONFLICT from it.

        One staging table per target table and session, emptied after each use: creating one
        per call would pile up locks when a refused batch is halved again and again.
        """
        if data.num_rows == 0:
            return 0
        preparer = conn.dialect.identifier_preparer
        names = data.column_names
        digest = hashlib.sha1("\0".join([table.name, *names]).encode()).hexdigest()[:12]
        stage_name = f"ferry_stage_{digest}"
        # Only the loaded columns: the target's own defaults (generated keys) stay its own.
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {preparer.quote(stage_name)} "
            f"ON COMMIT DELETE ROWS AS SELECT "
            f"{', '.join(preparer.quote(n) for n in names)} "
            f"FROM {preparer.format_table(table)} WITH NO DATA"
        )
        stage = Table(stage_name, MetaData(), *[Column(n, table.c[n].type) for n in names])
        self.bulk_insert(conn, stage, data)
        statement = pg_insert(table).from_select(names, select(*[stage.c[n] for n in names]))
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
        # INSERT ... SELECT keeps its row count only when asked to.
        written = int(conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount)
        conn.exec_driver_sql(f"TRUNCATE {preparer.quote(stage_name)}")
        return written

    def deferrable_objects(self, conn: Connection, table: str) -> list[DeferredObject]:
        found: list[DeferredObject] = []
        preparer = conn.dialect.identifier_preparer
        quoted = preparer.quote(table)
        indexes = conn.execute(
            text(
                "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
                "WHERE t.relname = :t AND t.relnamespace = to_regnamespace(current_schema())::oid "
                "AND NOT x.indisprimary AND NOT x.indisunique "
                # An exclusion constraint's index cannot be dropped on its own.
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)"
            ),
            {"t": table},
        ).all()
        for name, definition in indexes:
            found.append(
                DeferredObject(
                    table, "index", name, f"DROP INDEX {preparer.quote(name)}", definition
                )
            )
        fks = conn.execute(
            text(
                "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "JOIN pg_class t ON t.oid = c.conrelid WHERE c.contype = 'f' AND t.relname = :t "
                "AND t.relnamespace = to_regnamespace(current_schema())::oid"
            ),
            {"t": table},
        ).all()
        for name, definition in fks:
            found.append(
                DeferredObject(
                    table,
                    "foreign_key",
                    name,
                    f"ALTER TABLE {quoted} DROP CONSTRAINT {preparer.quote(name)}",
                    f"ALTER TABLE {quoted} ADD CONSTRAINT {preparer.quote(name)} {definition}",
                )
            )
        # One object per enabled user trigger, switched off by name and back on in the
        # mode it had (origin, ALWAYS or REPLICA); one the user had disabled stays alone.
        triggers = conn.execute(
            text(
                "SELECT g.tgname, g.tgenabled FROM pg_trigger g "
                "JOIN pg_class t ON t.oid = g.tgrelid "
                "WHERE t.relname = :t AND t.relnamespace = to_regnamespace(current_schema())::oid "
                "AND NOT g.tgisinternal AND g.tgenabled <> 'D' ORDER BY g.tgname"
            ),
            {"t": table},
        ).all()
        for name, enabled in triggers:
            trigger = preparer.quote_identifier(name)
            mode = _TRIGGER_MODES[enabled]
            found.append(
                DeferredObject(
                    table,
                    "trigger",
                    name,
                    f"ALTER TABLE {quoted} DISABLE TRIGGER {trigger}",
                    f"ALTER TABLE {quoted} ENABLE {mode}TRIGGER {trigger}",
                )
            )
        return found

    def install_delta_triggers(
        self, conn: Connection, table: str, key: list[str], log_table: str
    ) -> list[str]:
        preparer = conn.dialect.identifier_preparer
        log = preparer.quote(log_table)
        conn.exec_driver_sql(_DELTA_FUNCTION.replace("{log}", log))
        rows, truncate = _delta_trigger_names(table)
        args = ", ".join(self.sql_string(k) for k in key)
        self.drop_delta_triggers(conn, table)
        conn.exec_driver_sql(
            f"CREATE TRIGGER {preparer.quote(rows)} AFTER INSERT OR UPDATE OR DELETE ON "
            f"{preparer.quote(table)} FOR EACH ROW EXECUTE FUNCTION ferry_delta_capture({args})"
        )
        conn.exec_driver_sql(
            f"CREATE TRIGGER {preparer.quote(truncate)} AFTER TRUNCATE ON "
            f"{preparer.quote(table)} FOR EACH STATEMENT EXECUTE FUNCTION ferry_delta_capture()"
        )
        return [rows, truncate]

    def drop_delta_triggers(self, conn: Connection, table: str) -> None:
        preparer = conn.dialect.identifier_preparer
        for name in _delta_trigger_names(table):
            conn.exec_driver_sql(
                f"DROP TRIGGER IF EXISTS {preparer.quote(name)} ON {preparer.quote(table)}"
            )

    def delta_trigger_tables(self, conn: Connection) -> list[str]:
        # The triggers that call the capture function, whatever their names.
        rows = conn.exec_driver_sql(
            "SELECT DISTINCT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
            "WHERE NOT g.tgisinternal AND c.relnamespace = current_schema()::regnamespace "
            "AND g.tgfoid = to_regproc('ferry_delta_capture') ORDER BY 1"
        )
        return [str(r[0]) for r in rows]

    def drop_delta_support(self, conn: Connection) -> None:
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS ferry_delta_capture()")

    def lock_timeout_sql(self, seconds: float) -> tuple[str, ...]:
        return (f"SET lock_timeout = '{int(seconds * 1000)}ms'",)

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return getattr(getattr(exc, "orig", exc), "sqlstate", None) == "55P03"

    def drop_sql(self, kind: str, name: str) -> str:
        return f'DROP {kind} IF EXISTS "{name}" CASCADE'

    def data_directory(self, conn: Connection, url: URL) -> Path | None:
        if not is_local(url):
            return None
        try:
            # superusers and members of pg_read_all_settings may read it
            with conn.begin_nested():
                found = conn.execute(text("SHOW data_directory")).scalar()
        except exc.DBAPIError:
            return None
        return Path(str(found)) if found else None

    def table_bytes(self, conn: Connection, tables: list[str]) -> dict[str, int]:
        if not tables:
            return {}
        rows = conn.execute(
            text(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm') "
                "AND c.relname = ANY(:t)"
            ),
            {"t": list(tables)},
        ).all()
        return {str(name): int(size) for name, size in rows}

    def long_transactions(
        self, conn: Connection, tables: list[str], seconds: int = 30
    ) -> list[str]:
        if not tables:
            return []
        rows = conn.execute(
            text(
                "SELECT DISTINCT a.pid, a.usename, a.application_name, c.relname, "
                "extract(epoch FROM now() - a.xact_start)::int AS age, l.mode "
                "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE a.pid <> pg_backend_pid() "
                "AND a.xact_start < now() - make_interval(secs => :s) "
                "AND lower(c.relname) = ANY(:t)"
            ),
            {"s": seconds, "t": tables},
        ).all()
        return [
            f"server pid {r.pid} ({r.usename} {r.application_name or ''}) has held "
            f"{r.mode} on `{r.relname}` for {r.age} s in an open transaction"
            for r in rows
        ]

    def estimated_rows(self, conn: Connection, table: str) -> int | None:
        quoted = conn.dialect.identifier_preparer.quote(table)
        found = conn.execute(
            text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:t)"),
            {"t": quoted},
        ).scalar()
        if found is not None and found > 0:
            return int(found)
        # -1: never analysed (a table loaded a moment ago). The planner still estimates it
        # from the table's pages, with no scan.
        plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) SELECT * FROM {quoted}").scalar()
        rows = int(plan[0]["Plan"]["Plan Rows"]) if plan else 0
        return rows if rows > 1 else None

    def sampled_row_bytes(self, conn: Connection, table: str) -> float | None:
        # TOAST keeps long values compressed: a table of 2 MB texts that compress 100 to 1
        # looks 20 KB a row on disk, and a chunk sized from that would hold a hundred
        # times its budget once read.
        quoted = conn.dialect.identifier_preparer.quote(table)
        found = conn.exec_driver_sql(
            "SELECT avg(octet_length(ferry_row::text)) "
            f"FROM (SELECT * FROM {quoted} LIMIT 200) ferry_row"
        ).scalar()
        return float(found) if found else None

    def explain_rows(self, conn: Connection, query: Any) -> int | None:
        sql = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").scalar()
        return int(plan[0]["Plan"]["Plan Rows"]) if plan else None

    def rows_per_value(self, conn: Connection, table: str, column: str) -> float | None:
        # n_distinct: a count, or minus the fraction of rows that are distinct (ANALYZE).
        found = conn.execute(
            text(
                "SELECT s.n_distinct, c.reltuples FROM pg_catalog.pg_stats s "
                "JOIN pg_catalog.pg_class c ON c.oid = to_regclass(:q) "
                "WHERE s.schemaname = current_schema() AND s.tablename = :t AND s.attname = :c"
            ),
            {"q": conn.dialect.identifier_preparer.quote(table), "t": table, "c": column},
        ).first()
        if found is None or not found[0]:
            return None
        distinct, rows = float(found[0]), float(found[1])
        if distinct < 0:
            return -1.0 / distinct
        return rows / distinct if rows > 0 else None

    def list_routines(self, conn: Connection) -> list[str]:
        triggers = conn.execute(
            text(
                "SELECT g.tgname, c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
                "WHERE NOT g.tgisinternal AND g.tgname NOT LIKE 'ferry\\_delta\\_%' "
                "AND c.relnamespace = to_regnamespace(current_schema())::oid ORDER BY 1"
            )
        ).all()
        routines = conn.execute(
            text(
                "SELECT p.proname, CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END "
                "FROM pg_proc p LEFT JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e' "
                "WHERE p.pronamespace = to_regnamespace(current_schema())::oid "
                "AND d.objid IS NULL AND p.proname <> 'ferry_delta_capture' ORDER BY 1"
            )
        ).all()
        return [f"trigger {name} on {table}" for name, table in triggers] + [
            f"{kind} {name}" for name, kind in routines
        ]

    def primary_key_using_index_sql(self, table: str, index: str, columns: str) -> str:
        # The index was built in parallel with the others; adopting it takes a moment.
        return f"ALTER TABLE {table} ADD CONSTRAINT {index} PRIMARY KEY USING INDEX {index}"

    def reset_identity(self, conn: Connection, table: Table) -> None:
        preparer = conn.dialect.identifier_preparer
        for column in table.primary_key.columns:
            sequence = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"),
                {"t": preparer.format_table(table), "c": column.name},
            ).scalar()
            if sequence:
                conn.execute(
                    text(
                        f"SELECT setval(:s, COALESCE((SELECT MAX({preparer.quote(column.name)})"
                        f" FROM {preparer.format_table(table)}), 0) + 1, false)"
                    ),
                    {"s": sequence},
                )

    def checksum_text(self, column: str, column_type: Any, kind: CanonKind) -> str | None:
        # Canonical forms are PostgreSQL's own output (DateStyle ISO): the cheapest here.
        if kind == "timestamp" and getattr(column_type, "timezone", False):
            return f"({column} AT TIME ZONE 'UTC')::text"
        if kind == "bool":
            if isinstance(column_type, sat.Boolean):
                return f"{column}::int::text"
            # A boolean kept in a number column prints its number: 2 is not the 1 a copy
            # writes (a range holding one is then compared row by row).
            return f"{column}::text"
        return {
            "decimal": f"trim_scale({column}::numeric)::text",  # 12.50 and 12.5 alike
            "float": f"{column}::float8::text",  # shortest exact text, as MariaDB prints
            "bytes": f"encode({column}, 'hex')",
        }.get(kind, f"{column}::text")

    def checksum_session_sql(self) -> tuple[str, ...]:
        return ("SET DateStyle = 'ISO, YMD'",)

    def create_database(self, admin: Connection, name: str) -> None:
        admin.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop_database(self, admin: Connection, name: str) -> None:
        admin.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# pg_trigger.tgenabled of an enabled trigger -> the ENABLE clause that puts it back so.
_TRIGGER_MODES = {"O": "", "A": "ALWAYS ", "R": "REPLICA "}


# One function serves every captured table; the key columns come as trigger arguments.
# An update that changes the key logs a delete of the old key, then the new key.
def _delta_trigger_names(table: str) -> tuple[str, str]:
    """The row trigger and the TRUNCATE (statement) trigger that capture a table."""
    return f"ferry_delta_{table}"[:63], f"ferry_delta_{table}"[:61] + "_t"


_DELTA_FUNCTION = """
CREATE OR REPLACE FUNCTION ferry_delta_capture() RETURNS trigger LANGUAGE plpgsql AS $ferry$
DECLARE
  new_key jsonb;
  old_key jsonb;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN  -- statement level: no row, every row of the table is gone
    INSERT INTO {log} (table_name, op, row_key) VALUES (TG_TABLE_NAME, 'T', '{}');
    RETURN NULL;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    SELECT jsonb_object_agg(c, to_jsonb(NEW) -> c) INTO new_key FROM unnest(TG_ARGV) AS c;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    SELECT jsonb_object_agg(c, to_jsonb(OLD) -> c) INTO old_key FROM unnest(TG_ARGV) AS c;
  END IF;
  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND old_key IS DISTINCT FROM new_key) THEN
    INSERT INTO {log} (table_name, op, row_key) VALUES (TG_TABLE_NAME, 'D', old_key::text);
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  INSERT INTO {log} (table_name, op, row_key)
    VALUES (TG_TABLE_NAME, left(TG_OP, 1), new_key::text);
  RETURN NEW;
END
$ferry$
"""


_BINARY_SAFE = (
    sat.Integer,
    sat.Numeric,
    sat.String,
    sat.Boolean,
    sat.Date,
    sat.DateTime,
    sat.LargeBinary,
)


def _binary_ready(table: Table, data: pa.Table) -> pa.Table | None:
    """`data` with each column in the exact width its PostgreSQL column stores, or None when
    a column's type has no safe binary match (JSON, UUID, arrays, enums, time...)."""
    fields = []
    for field in data.schema:
        column = table.c.get(field.name)
        if column is None or not isinstance(column.type, _BINARY_SAFE):
            return None
        if isinstance(column.type, (sat.JSON, sat.Enum, sat.Uuid)) or type(
            column.type
        ).__name__.upper() in ("JSONB", "UUID", "INTERVAL", "INET", "CIDR", "MONEY", "BIT"):
            return None
        wanted = field.type
        if isinstance(column.type, sat.Float):
            single = isinstance(column.type, sat.REAL) or (
                column.type.precision is not None and column.type.precision <= 24
            )
            wanted = pa.float32() if single else pa.float64()
        elif isinstance(column.type, sat.Numeric) and not pa.types.is_decimal(field.type):
            return None
        elif isinstance(column.type, sat.SmallInteger):
            wanted = pa.int16()
        elif isinstance(column.type, sat.BigInteger):
            wanted = pa.int64()
        elif isinstance(column.type, sat.Integer):
            wanted = pa.int32()
        fields.append(field.with_type(wanted))
    try:
        return data.cast(pa.schema(fields))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


_DURATION_UNITS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}


#: connectorx reads PostgreSQL's infinity and -infinity as chrono's extremes (microseconds
#: or days since 1970): the last microsecond of year 262142 and the first of year -262144.
_INFINITE = {
    "timestamp": (8_210_266_876_799_999_999, -8_334_601_228_800_000_000, pa.int64()),
    "date": (95_026_236, -96_465_292, pa.int32()),
}


def _infinities(data: pa.Table) -> pa.Table | None:
    """`data` with PostgreSQL's infinity spelled out where connectorx read it as an extreme
    (that column as text, for a CSV COPY), or None where no column holds one: written as
    it came, infinity would land as a date in year 262142."""
    changed = False
    for index, field in enumerate(data.schema):
        if pa.types.is_timestamp(field.type) and field.type.unit == "us":
            high, low, whole = _INFINITE["timestamp"]
        elif pa.types.is_date32(field.type):
            high, low, whole = _INFINITE["date"]
        else:
            continue
        column = data.column(index)
        counts = column.cast(whole)
        bounds = pc.min_max(counts)
        top, bottom = bounds["max"].as_py(), bounds["min"].as_py()
        if top is None or (top < high and bottom > low):
            continue
        spelled = pc.if_else(
            pc.equal(counts, high),
            pa.scalar("infinity"),
            pc.if_else(pc.equal(counts, low), pa.scalar("-infinity"), pc.cast(column, pa.string())),
        )
        data = data.set_column(index, field.name, spelled)
        changed = True
    return data if changed else None


def _csv_ready(data: pa.Table) -> pa.Table:
    """Columns in the text PostgreSQL reads back: bytes as `\\x...` hex, durations (an
    interval read by the driver) with their unit, since a bare number is taken as seconds."""
    for index, field in enumerate(data.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            values = data.column(index).to_pylist()  # binary columns only: rare
            hexed = pa.array([None if v is None else "\\x" + v.hex() for v in values], pa.string())
            data = data.set_column(index, field.name, hexed)
        elif pa.types.is_duration(field.type):
            column = data.column(index)
            unit = field.type.unit
            if unit not in _DURATION_UNITS:  # nanoseconds: PostgreSQL keeps microseconds
                column, unit = pc.cast(column, pa.duration("us")), "us"
            counts = pc.cast(pc.cast(column, pa.int64()), pa.string())
            spelled = pc.binary_join_element_wise(counts, _DURATION_UNITS[unit], " ")
            data = data.set_column(index, field.name, spelled)
    return data
