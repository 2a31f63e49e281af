"""Column types: Arrow types for target columns, source-to-target type mapping, overrides.

Defaults follow pgloader's casting rules for MySQL: `tinyint(1)` becomes boolean, `datetime`
becomes timestamp, unsigned integers widen so every value fits, decimals keep precision.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
from sqlalchemy import types as sat
from sqlalchemy.dialects import mysql
from sqlalchemy.sql.sqltypes import _AbstractInterval

from ferry.db.adapter import is_unbounded_numeric
from ferry.db.sqlite import DecimalText
from ferry.errors import ConfigError

_OVERRIDE = re.compile(r"^\s*([a-z ]+?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$", re.I)

_NAMED: dict[str, type[sat.TypeEngine[Any]]] = {
    "smallint": sat.SmallInteger,
    "int": sat.Integer,
    "integer": sat.Integer,
    "bigint": sat.BigInteger,
    "boolean": sat.Boolean,
    "bool": sat.Boolean,
    "text": sat.Text,
    "varchar": sat.String,
    "character varying": sat.String,
    "char": sat.CHAR,
    "timestamp": sat.DateTime,
    "datetime": sat.DateTime,
    "date": sat.Date,
    "time": sat.Time,
    "numeric": sat.Numeric,
    "decimal": sat.Numeric,
    "double": sat.Double,
    "double precision": sat.Double,
    "float": sat.Double,
    "real": sat.REAL,
    "bytea": sat.LargeBinary,
    "blob": sat.LargeBinary,
    "json": sat.JSON,
    "uuid": sat.Uuid,
}


#: Unbounded text and bytes: MySQL's TEXT and BLOB stop at 64 KB, so they become LONG ones.
LONG_TEXT = sat.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
LONG_BINARY = sat.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
#: ... except in a primary key: MySQL keys no TEXT or BLOB without a prefix length, so there
#: they are VARCHAR(255) / VARBINARY(255), and a longer value is a load error (its row goes to
#: ferry_rejects with the reason). Other indexed columns keep every value (MariaDB indexes a
#: prefix of them; an index a server refuses is named in the report).
KEY_TEXT = sat.Text().with_variant(mysql.VARCHAR(255), "mysql", "mariadb")
KEY_BINARY = sat.LargeBinary().with_variant(mysql.VARBINARY(255), "mysql", "mariadb")


def exact_decimal(precision: int | None = None, scale: int | None = None) -> sat.TypeEngine[Any]:
    """An exact decimal column. SQLite's NUMERIC affinity keeps 15 digits of a fraction or
    of an integer past 64 bits, so there it is DECIMAL_TEXT (TEXT affinity, every digit);
    integers of up to 18 digits stay NUMERIC, stored as exact 64-bit INTEGERs."""
    if precision is None:
        # NUMERIC without precision keeps any number on PostgreSQL; MySQL's plain DECIMAL
        # would be DECIMAL(10,0) and round every fraction away: there the widest DECIMAL.
        return (
            sat.Numeric()
            .with_variant(mysql.DECIMAL(65, 30), "mysql", "mariadb")
            .with_variant(DecimalText(), "sqlite")
        )
    numeric = sat.Numeric(precision, scale or 0)
    if not scale and precision <= 18:
        return numeric
    return numeric.with_variant(DecimalText(precision, scale or 0), "sqlite")


UNBOUNDED_NUMERIC = exact_decimal()


def indexable(column_type: sat.TypeEngine[Any]) -> sat.TypeEngine[Any]:
    """The type a primary key column gets instead of an unbounded one."""
    if column_type is LONG_TEXT:
        return KEY_TEXT
    if column_type is LONG_BINARY:
        return KEY_BINARY
    if isinstance(getattr(column_type, "_variant_mapping", {}).get("sqlite"), DecimalText):
        # A key keeps SQLite's NUMERIC affinity: as text, key ranges would order '10'
        # before '9'.
        precision = getattr(column_type, "precision", None)
        numeric = sat.Numeric(precision, getattr(column_type, "scale", None))
        if precision is None:
            return numeric.with_variant(mysql.DECIMAL(65, 30), "mysql", "mariadb")
        return numeric
    return column_type


def timestamp(*, timezone: bool = False) -> sat.TypeEngine[Any]:
    """A timestamp keeping microseconds (MySQL's plain DATETIME drops them)."""
    return sat.DateTime(timezone=timezone).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def parse_type(text: str, *, key: str) -> sat.TypeEngine[Any]:
    """A column type named in a job spec: `bigint`, `varchar(100)`, `numeric(10,2)`, ...

    Raises:
        ConfigError: an unknown type name, naming the key.
    """
    match = _OVERRIDE.match(text)
    name = match.group(1).lower() if match else ""
    if name == "timestamptz" or name == "timestamp with time zone":
        return timestamp(timezone=True)
    if not match or name not in _NAMED:
        raise ConfigError(
            f"unknown column type {text!r}",
            key=key,
            hint="use one of: " + ", ".join(sorted(_NAMED)) + ", timestamptz",
        )
    cls = _NAMED[name]
    if cls is sat.Text:
        return LONG_TEXT
    if cls is sat.DateTime:
        return timestamp()
    if cls is sat.LargeBinary:
        return LONG_BINARY
    args = [int(a) for a in match.groups()[1:] if a is not None]
    if cls in (sat.String, sat.CHAR):
        return cls(args[0]) if args else cls()
    if cls is sat.Numeric:
        if not args:
            return UNBOUNDED_NUMERIC
        return exact_decimal(args[0], args[1] if len(args) > 1 else 0)
    return cls()


def translate_type(source: sat.TypeEngine[Any]) -> sat.TypeEngine[Any]:
    """The portable type a target column gets for a reflected source column type."""
    if isinstance(source, mysql.TINYINT) and getattr(source, "display_width", None) == 1:
        return sat.Boolean()
    if isinstance(
        source, (mysql.INTEGER, mysql.MEDIUMINT, mysql.SMALLINT, mysql.TINYINT, mysql.BIGINT)
    ) and getattr(source, "unsigned", False):
        # Unsigned values need the next wider signed type.
        if isinstance(source, mysql.BIGINT):
            return exact_decimal(20, 0)
        if isinstance(source, mysql.INTEGER):
            return sat.BigInteger()
        return sat.Integer()
    if isinstance(source, mysql.YEAR):
        return sat.SmallInteger()
    if isinstance(source, mysql.SET):
        # A SET value is any of its members joined by commas: room for all of them.
        members = [str(v) for v in getattr(source, "values", ()) or ()]
        return sat.String(sum(len(v) for v in members) + len(members) - 1 if members else 255)
    if isinstance(source, mysql.ENUM):
        return sat.String(max((len(v) for v in source.enums), default=0) or 255)
    if isinstance(source, mysql.BIT):
        # BIT(64) holds unsigned values past the largest BIGINT.
        bits = getattr(source, "length", 1) or 1
        if bits == 1:
            return sat.Boolean()
        return sat.BigInteger() if bits < 64 else exact_decimal(20, 0)
    if isinstance(source, (mysql.TINYTEXT, mysql.MEDIUMTEXT, mysql.LONGTEXT)):
        return LONG_TEXT
    if isinstance(
        source, (mysql.TINYBLOB, mysql.MEDIUMBLOB, mysql.LONGBLOB, mysql.VARBINARY, mysql.BINARY)
    ):
        return LONG_BINARY

    if isinstance(source, sat.Numeric) and not isinstance(source, sat.Float):
        if source.precision is None:
            return UNBOUNDED_NUMERIC
        return exact_decimal(source.precision, source.scale or 0)
    if isinstance(source, sat.Interval | _AbstractInterval):
        # Before DateTime (a non-native Interval is one). MySQL has no interval: its TIME
        # holds durations of up to 838 hours either way; a longer one is a load error.
        return sat.Interval().with_variant(mysql.TIME(fsp=6), "mysql", "mariadb")
    if isinstance(source, sat.ARRAY):
        # Arrays travel as PostgreSQL's text form ('{1,2,3}'), which PostgreSQL reads back
        # into the array; MySQL keeps that text.
        return source.with_variant(mysql.LONGTEXT(), "mysql", "mariadb").with_variant(
            sat.Text(), "sqlite"
        )
    if isinstance(source, sat.Float):
        # Single precision stays single; anything else keeps all 53 bits (plain FLOAT would
        # be 4 bytes on MySQL).
        single = isinstance(source, sat.REAL | mysql.FLOAT) or (
            source.precision is not None and source.precision <= 24
        )
        return sat.REAL() if single and not isinstance(source, mysql.DOUBLE) else sat.Double()
    if isinstance(source, sat.DateTime):
        # `is True`: SQLite reflects TIMESTAMP(6) as TIMESTAMP(timezone=6), its precision.
        return timestamp(timezone=getattr(source, "timezone", False) is True)
    if isinstance(source, sat.String) and not isinstance(source, sat.Text):
        return sat.String(source.length) if source.length else LONG_TEXT
    if isinstance(source, sat.NullType):
        return LONG_TEXT
    if isinstance(source, sat.Uuid):
        # UUID where the database has the type; elsewhere its 36-character text form.
        return sat.Uuid(as_uuid=False).with_variant(sat.String(36), "mysql", "mariadb", "sqlite")
    if isinstance(source, sat.Text):
        return LONG_TEXT
    if isinstance(source, sat._Binary):
        return LONG_BINARY
    generic = source.as_generic()
    if isinstance(generic, sat.Integer) and not isinstance(
        generic, (sat.SmallInteger, sat.BigInteger)
    ):
        return sat.Integer()
    return generic


#: What Arrow raises for a value or a cast it cannot take: callers then try a slower way.
ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


def arrow_type(column_type: sat.TypeEngine[Any]) -> pa.DataType:
    """The Arrow type that loads into a target column without surprises."""
    t = column_type
    if isinstance(t, sat.Boolean):
        return pa.bool_()
    if isinstance(t, sat.SmallInteger):
        return pa.int16()
    if isinstance(t, sat.BigInteger):
        return pa.int64()
    if isinstance(t, sat.Integer):
        return pa.int32() if not isinstance(t, mysql.INTEGER) or not t.unsigned else pa.int64()
    if isinstance(t, sat.Float) or (
        isinstance(t, sat.Numeric) and getattr(t, "asdecimal", True) is False
    ):
        return pa.float64()
    if is_unbounded_numeric(t):
        return pa.string()  # exact, as the source wrote it: the database parses it
    if isinstance(t, sat.Numeric):
        if t.precision is None:
            return pa.float64()
        return pa.decimal128(min(t.precision, 38), t.scale or 0)
    if isinstance(t, sat.Interval):  # before DateTime: a non-native Interval is one
        return pa.duration("us")
    if isinstance(t, mysql.TIMESTAMP):
        # An instant (stored as UTC, shown in the session's zone): loads write it as UTC.
        return pa.timestamp("us", tz="UTC")
    if isinstance(t, sat.DateTime):
        return pa.timestamp("us", tz="UTC" if getattr(t, "timezone", False) is True else None)
    if isinstance(t, sat.Date):
        return pa.date32()
    if isinstance(t, sat.Time):
        return pa.time64("us")
    if isinstance(t, sat.LargeBinary | sat._Binary):
        return pa.binary()
    return pa.string()


def sa_type_for_arrow(dtype: pa.DataType) -> sat.TypeEngine[Any]:
    """A column type able to hold values of an Arrow type (for derived columns)."""
    if pa.types.is_boolean(dtype):
        return sat.Boolean()
    if pa.types.is_integer(dtype):
        return sat.BigInteger() if dtype.bit_width > 32 else sat.Integer()
    if pa.types.is_floating(dtype):
        return sat.Double()
    if pa.types.is_decimal(dtype):
        return exact_decimal(dtype.precision, dtype.scale)
    if pa.types.is_timestamp(dtype):
        return sat.DateTime(timezone=dtype.tz is not None)
    if pa.types.is_date(dtype):
        return sat.Date()
    if pa.types.is_time(dtype):
        return sat.Time()
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return LONG_BINARY
    return LONG_TEXT
