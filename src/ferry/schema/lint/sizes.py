"""Row counts of the tables a migration touches, for rating its risk."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

# --- table sizes ---


def _postgresql_sizes(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        text(
            "SELECT c.relname, c.reltuples FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm')"
        )
    )
    # reltuples is -1 until the table is first vacuumed or analyzed: its size is unknown.
    return {str(name).lower(): round(count) for name, count in rows if count >= 0}


def _mysql_sizes(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        text(
            "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
        )
    )
    return {str(name).lower(): int(count) for name, count in rows if count is not None}


def _sqlite_sizes(conn: Connection) -> dict[str, int]:
    names = conn.execute(
        text(
            "SELECT name FROM sqlite_master "
            "WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
    ).scalars()
    quote = conn.dialect.identifier_preparer.quote_identifier
    sizes = {}
    for name in list(names):
        count = conn.execute(text(f"SELECT COUNT(*) FROM {quote(name)}")).scalar_one()
        sizes[str(name).lower()] = int(count)
    return sizes


_SIZE_READERS: dict[str, Callable[[Connection], dict[str, int]]] = {
    "postgresql": _postgresql_sizes,
    "mysql": _mysql_sizes,
    "mariadb": _mysql_sizes,
    "sqlite": _sqlite_sizes,
}


def table_sizes(conn: Connection, dialect_name: str) -> dict[str, int]:
    """Row counts of the tables in the connection's current schema, by lower-case name.

    PostgreSQL: the planner's estimate (`pg_class.reltuples`; tables never analyzed are
    left out). MySQL/MariaDB: InnoDB's estimate (`information_schema.TABLES.TABLE_ROWS`;
    MySQL 8 caches it, `ANALYZE TABLE` refreshes it). SQLite: `COUNT(*)` per table. Other
    dialects: an empty mapping, so every table is rated as of unknown size.

    Raises:
        sqlalchemy.exc.DBAPIError: the catalog query failed.
    """
    reader = _SIZE_READERS.get(dialect_name)
    return reader(conn) if reader is not None else {}
