"""What the lint reads: dialect profiles, quiet sqlglot parsing, statement text, sizes and
column types."""

from __future__ import annotations

import contextvars
import logging
import math
import re
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlglot
from sqlglot import exp

from ferry.schema.lint.model import (
    HIGH_ROWS,
    LOW_ROWS,
)
from ferry.schema.splitter import Statement

log = logging.getLogger("ferry.schema")

# --- dialects as data ---


@dataclass(frozen=True)
class _Profile:
    """What a database does with risky DDL; each flag says why it matters."""

    sqlglot: str | None
    # ALTER COLUMN TYPE (PostgreSQL) and MODIFY/CHANGE (MySQL) rebuild the table under a
    # lock that blocks writes.
    type_change_rewrites: bool = False
    # PostgreSQL does not rewrite for varchar(n) -> varchar(m >= n)/text or a wider numeric.
    cheap_widening: bool = False
    # PostgreSQL 11+ stores a constant or stable DEFAULT (now()) once; a volatile one
    # (random(), clock_timestamp(), a sequence) is computed per row, rewriting the table.
    volatile_default_rewrites: bool = False
    # SET NOT NULL scans every row under ACCESS EXCLUSIVE.
    set_not_null_scans: bool = False
    concurrent_index: bool = False  # CREATE INDEX CONCURRENTLY exists
    not_valid: bool = False  # ADD CONSTRAINT ... NOT VALID exists
    lock_timeout: bool = False  # SET lock_timeout bounds the wait for an ALTER's lock
    not_null_add: str = "fails or fills in implicit values when the table has rows"
    text_length: float = math.inf  # TEXT / BLOB capacity
    decimal_default: tuple[int, int] | None = None  # DECIMAL without precision (None: any)


_POSTGRESQL = _Profile(
    "postgres",
    type_change_rewrites=True,
    cheap_widening=True,
    volatile_default_rewrites=True,
    set_not_null_scans=True,
    concurrent_index=True,
    not_valid=True,
    lock_timeout=True,
    not_null_add="fails as soon as the table has a row",
)
_MYSQL = _Profile(
    "mysql",
    type_change_rewrites=True,
    not_null_add="silently gives existing rows the type's implicit default (0, '', ...)",
    text_length=65_535,
    decimal_default=(10, 0),
)
_PROFILES = {
    "postgresql": _POSTGRESQL,
    "mysql": _MYSQL,
    "mariadb": _MYSQL,
    "sqlite": _Profile("sqlite", not_null_add="is rejected by SQLite"),
}
_GENERIC = _Profile(None)

# --- sqlglot: quiet parsing ---

_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("ferry_lint_quiet", default=False)


def _drop_command_fallback(record: logging.LogRecord) -> bool:
    # sqlglot warns when it falls back to an opaque Command; the linter handles that case.
    return not (_QUIET.get() and "unsupported syntax" in str(record.msg))


logging.getLogger("sqlglot").addFilter(_drop_command_fallback)


def _parse(sql: str, read: str | None) -> exp.Expression | None:
    """The statement's tree, or None when sqlglot cannot make sense of it."""
    token = _QUIET.set(True)
    try:
        trees = sqlglot.parse(sql, read=read)
    except Exception:  # ParseError, TokenError, and the odd parser bug: lint must not crash
        return None
    finally:
        _QUIET.reset(token)
    found = [tree for tree in trees if tree is not None]
    if len(found) != 1 or not isinstance(found[0], exp.Expression):
        return None
    return None if isinstance(found[0], exp.Command) else found[0]


# --- statement text ---

_FIRST_WORD = re.compile(r"(?:\s|/\*.*?\*/)*([A-Za-z]+)", re.S)
_DDL_WORDS = frozenset({"CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME"})
_PARSED_WORDS = _DDL_WORDS | {"DELETE", "UPDATE", "WITH"}
_LOCK_TIMEOUT = re.compile(
    r"^SET\s+(?:SESSION\s+|LOCAL\s+)?lock_timeout\s*(?:=|TO)\s*'?(?P<value>[^';\s]*)"
    r"|set_config\s*\(\s*'lock_timeout'\s*,\s*'(?P<config>[^']*)'",
    re.I,
)
# 0 (in any unit) and DEFAULT mean "wait forever".
_NO_TIMEOUT = re.compile(r"|default|0+(?:\.0*)?\s*(?:us|ms|s|min|h|d)?")
_ALLOW = re.compile(r"(?:--|#)\s*ferry:allow\b(?P<rules>[^\n]*)")
_IDENT = r"""(?:"[^"]*"|`[^`]*`|\[[^\]]*\]|[\w$]+)"""
_QNAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT})*"
_NAMES = rf"(?P<names>{_QNAME}(?:\s*,\s*{_QNAME})*)"
_DROP_TABLE = re.compile(rf"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_NAMES}", re.I)
_TRUNCATE = re.compile(rf"TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?{_NAMES}", re.I)
# MySQL runs these without blocking writes, or refuses the ALTER if it cannot.
_MYSQL_ONLINE = re.compile(r"\bALGORITHM\s*=?\s*(?:INSTANT|INPLACE)\b|\bLOCK\s*=?\s*NONE\b", re.I)
_VOLATILE = frozenset(
    {
        "clock_timestamp",
        "timeofday",
        "random",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "nextval",
        "txid_current",
    }
)


def _snippet(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= 160 else flat[:157] + "..."


def _first_word(sql: str) -> str:
    match = _FIRST_WORD.match(sql)
    return match.group(1).upper() if match else ""


def _rules_in(text: str) -> set[str]:
    rules: set[str] = set()
    for match in _ALLOW.finditer(text):
        rules.update(r for r in re.split(r"[,\s]+", match["rules"]) if r)
    return rules


def _statement_allows(statement: Statement, lines: list[str] | None) -> set[str]:
    """Rules allowed by comments inside the statement, just above it, or after it."""
    allowed = _rules_in(statement.sql) if "ferry:allow" in statement.sql else set()
    if lines is None:
        return allowed
    index = statement.line - 2
    while index >= 0 and lines[index].lstrip().startswith(("--", "#")):
        allowed |= _rules_in(lines[index])
        index -= 1
    end = statement.line - 1 + statement.sql.count("\n")
    if end < len(lines):
        last = statement.sql.rsplit("\n", 1)[-1]
        at = lines[end].find(last)
        if at >= 0:
            allowed |= _rules_in(lines[end][at + len(last) :])
    return allowed


def _header_allows(text: str, statements: list[Statement]) -> set[str]:
    """`-- ferry:allow` lines before the first statement: they cover the whole file."""
    lines = text.splitlines()
    if statements:
        lines = lines[: statements[0].line - 1]
    return _rules_in("\n".join(line for line in lines if line.lstrip().startswith(("--", "#"))))


def _unquote(name: str) -> str:
    return ".".join(part.strip().strip('"`[]') for part in name.split("."))


# --- sizes and estimates ---


def _size_severity(rows: int | None) -> str:
    if rows is None:
        return "medium"
    if rows < LOW_ROWS:
        return "low"
    return "medium" if rows < HIGH_ROWS else "high"


def _loss_severity(rows: int | None) -> str:
    return "low" if rows == 0 else "high"


def _duration(rows: int, rate: int) -> str:
    seconds = rows / rate
    if seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def _estimate(verb: str, rows: int | None, rate: int | None = None) -> str | None:
    if rows is None:
        return None
    return f"{verb} ~{rows:,} rows" + (f" ({_duration(rows, rate)})" if rate else "")


# --- column types ---


class _Shape(NamedTuple):
    family: str  # int | str | bin | dec | float | time
    low: float
    high: float = 0.0


def _int_types() -> dict[str, _Shape]:
    shapes: dict[str, _Shape] = {}
    for prefix, bits in {"TINY": 8, "SMALL": 16, "MEDIUM": 24, "": 32, "BIG": 64}.items():
        signed = _Shape("int", -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        shapes[f"{prefix}INT"] = shapes[f"{prefix}SERIAL"] = signed
        shapes[f"U{prefix}INT"] = _Shape("int", 0, 2**bits - 1)
    return shapes


_INTS = _int_types()
_FIXED_TEXT = {"TINYTEXT": 255, "MEDIUMTEXT": 16_777_215, "LONGTEXT": 4_294_967_295}
_FIXED_BLOB = {"TINYBLOB": 255, "MEDIUMBLOB": 16_777_215, "LONGBLOB": 4_294_967_295}


def _params(dtype: exp.DataType) -> list[int] | None:
    values = []
    for param in dtype.expressions:
        literal = param.this if isinstance(param, exp.DataTypeParam) else param
        if not (isinstance(literal, exp.Literal) and literal.is_int):
            return None
        values.append(int(literal.this))
    return values


def _shape(dtype: exp.DataType, profile: _Profile) -> _Shape | None:
    """The value range of a type, comparable within its family; None if unknown."""
    name, params = dtype.this.name, _params(dtype)
    if params is None:
        return None
    if name in _INTS:
        return _INTS[name]
    if name in ("CHAR", "NCHAR", "VARCHAR", "NVARCHAR", "BINARY", "VARBINARY"):
        family = "bin" if "BINARY" in name else "str"
        default = math.inf if name.startswith(("VAR", "NVAR")) else 1
        return _Shape(family, params[0] if params else default)
    if name in ("TEXT", "BLOB"):
        return _Shape("str" if name == "TEXT" else "bin", profile.text_length)
    if name in _FIXED_TEXT or name in _FIXED_BLOB:
        return _Shape("str" if name in _FIXED_TEXT else "bin", {**_FIXED_TEXT, **_FIXED_BLOB}[name])
    if name in ("DECIMAL", "BIGDECIMAL"):
        if not params and profile.decimal_default is None:
            return _Shape("dec", math.inf, math.inf)
        precision, scale = [*params, 0][:2] if params else profile.decimal_default or (0, 0)
        return _Shape("dec", precision - scale, scale)
    if name in ("FLOAT", "DOUBLE"):
        return _Shape("float", 4 if name == "FLOAT" else 8)
    if name == "DATE" or name.startswith(("TIMESTAMP", "DATETIME")):
        return _Shape("time", 1 if name == "DATE" else 2)
    return None


def _narrows(old: _Shape, new: _Shape) -> bool:
    if old.family != new.family:
        # Fractions are dropped going to an integer type.
        fractional = old.family == "float" or (old.family == "dec" and old.high > 0)
        return fractional and new.family == "int"
    if old.family == "int":
        return new.low > old.low or new.high < old.high
    if old.family == "dec":
        return new.low < old.low or new.high < old.high
    return new.low < old.low


def _widens(old: _Shape | None, new: _Shape | None, old_type: exp.DataType) -> bool:
    """PostgreSQL changes these without a rewrite: longer varchar/text, wider numeric."""
    if old is None or new is None or old.family != new.family:
        return False
    if old.family == "str":
        return old_type.this.name in ("VARCHAR", "TEXT") and new.low >= old.low
    return old.family == "dec" and new.high == old.high and new.low >= old.low


@dataclass
class ColumnTypes:
    """Column types declared so far, table -> column -> type (lower-case names)."""

    tables: dict[str, dict[str, exp.DataType]] = field(default_factory=dict)

    def get(self, table: str, column: str) -> exp.DataType | None:
        """The column's declared type, if a migration seen so far declared it."""
        return self.tables.get(table, {}).get(column.lower())

    def set(self, table: str, column: str, dtype: exp.DataType | None) -> None:
        """Record the column's type (None: forget the column)."""
        columns = self.tables.setdefault(table, {})
        if dtype is None:
            columns.pop(column.lower(), None)
        else:
            columns[column.lower()] = dtype

    def rename(self, table: str, old: str, new: str) -> None:
        """Carry the type over to the column's new name."""
        self.set(table, new, self.get(table, old))
        if old.lower() != new.lower():
            self.set(table, old, None)


class _Table(NamedTuple):
    shown: str  # as written, schema-qualified if it was
    key: str  # lower-case name without schema


def _table(node: exp.Expression | None) -> _Table | None:
    if not isinstance(node, exp.Table) or not node.name:
        return None
    parts = [part for part in (node.catalog, node.db, node.name) if part]
    return _Table(".".join(parts), node.name.lower())


def _default(column: exp.ColumnDef) -> exp.Expression | None:
    for constraint in column.constraints:
        if isinstance(constraint.kind, exp.DefaultColumnConstraint):
            return (
                constraint.kind.this if isinstance(constraint.kind.this, exp.Expression) else None
            )
    return None


def _has(column: exp.ColumnDef, *kinds: type[exp.Expression]) -> bool:
    return any(isinstance(c.kind, kinds) for c in column.constraints)


def _volatile(value: exp.Expression) -> bool:
    for node in value.walk():
        if isinstance(node, exp.Rand | exp.Uuid):
            return True
        if isinstance(node, exp.Anonymous) and str(node.this).lower() in _VOLATILE:
            return True
    return False


def _star_columns(query: object) -> bool:
    """Does the view's output come from a `*` (top-level selects of the view only)?"""
    if isinstance(query, exp.SetOperation):
        return _star_columns(query.left) or _star_columns(query.right)
    if isinstance(query, exp.Subquery):
        return _star_columns(query.this)
    if not isinstance(query, exp.Select):
        return False
    return any(
        isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
        for p in query.expressions
    )
