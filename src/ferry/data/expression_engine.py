"""The machinery under derived-column expressions (:mod:`ferry.data.expressions`): the
error type, the evaluation environment (a table and its resolved column names), the Arrow
value glue (types, NULL handling, coercion, checked casts) and the compiler that turns a
sqlglot tree into closures through a registry of node handlers.

:mod:`ferry.data.expressions` holds the language itself: the public API and the handler of
each operator and function it supports. The underscored names here are shared by the two
modules only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from ferry.errors import FerryError

SUPPORTED_FUNCTIONS: tuple[str, ...] = (
    "ABS",
    "CASE",
    "CAST",
    "COALESCE",
    "CONCAT",
    "DATE",
    "DATE_TRUNC",
    "DAY",
    "DAYOFWEEK",
    "EXTRACT",
    "HOUR",
    "IF",
    "LENGTH",
    "LOWER",
    "MINUTE",
    "MONTH",
    "NULLIF",
    "QUARTER",
    "ROUND",
    "SECOND",
    "SUBSTRING",
    "SUBSTR",
    "TRIM",
    "UPPER",
    "YEAR",
)

_SUPPORTED_HINT = (
    "supported: column names, literals, + - * / %, = <> < <= > >=, AND OR NOT, "
    "IS [NOT] NULL, || and functions " + ", ".join(SUPPORTED_FUNCTIONS)
)


class ExpressionError(FerryError):
    """A derived-column expression cannot be parsed, uses something unsupported, or fails."""

    exit_code = 2

    def __init__(self, text: str, problem: str, *, hint: str | None = _SUPPORTED_HINT) -> None:
        super().__init__(f"expression `{text}`: {problem}", hint=hint)
        self.text = text
        self.problem = problem


# A value during evaluation: pa.Array, pa.ChunkedArray or pa.Scalar (a literal, or anything
# computed only from literals; broadcast to the table length at the end).
Value = Any
Evaluator = Callable[["_Env"], Value]


# ----------------------------------------------------------------------------- environment


class _Env:
    """One evaluation: the table, its row count and the resolved column names."""

    def __init__(self, text: str, table: pa.Table) -> None:
        self.text = text
        self.table = table
        self.n = table.num_rows
        self.names: dict[str, str] = {}

    def resolve(self, wanted: frozenset[str]) -> None:
        available = list(self.table.column_names)
        exact = set(available)
        folded: dict[str, list[str]] = {}
        for name in available:
            folded.setdefault(name.lower(), []).append(name)
        missing = []
        for key in sorted(wanted):
            quoted, name = key[0] == '"', key[1:]
            if name in exact:
                self.names[key] = name
                continue
            matches = [] if quoted else folded.get(name.lower(), [])
            if len(matches) == 1:
                self.names[key] = matches[0]
            elif len(matches) > 1:
                raise ExpressionError(
                    self.text,
                    f"column `{name}` is ambiguous: it matches {', '.join(matches)}",
                    hint=f'quote the column name to match it exactly, e.g. "{matches[0]}"',
                )
            else:
                missing.append(name)
        if missing:
            listed = ", ".join(available) if available else "(none)"
            noun = "column" if len(missing) == 1 else "columns"
            raise ExpressionError(
                self.text,
                f"unknown {noun} {', '.join(f'`{m}`' for m in missing)}",
                hint=f"available columns: {listed}",
            )

    def column(self, key: str) -> Value:
        values = self.table.column(self.names[key])
        if pa.types.is_string_view(values.type):
            values = values.cast(pa.string())
        elif pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        return values


# ------------------------------------------------------------------------------ type glue


def _type(value: Value) -> pa.DataType:
    return value.type


def _is_null_type(value: Value) -> bool:
    return bool(pa.types.is_null(_type(value)))


def _cast(value: Value, to: pa.DataType) -> Value:
    if isinstance(value, pa.Scalar):
        return value.cast(to)
    return pc.cast(value, to)


def _typed(value: Value, default: pa.DataType) -> Value:
    """Give a bare NULL a type so that kernels accept it."""
    return _cast(value, default) if _is_null_type(value) else value


def _unify_nulls(values: Sequence[Value]) -> list[Value]:
    """Cast NULL-typed values to the type of the first typed value."""
    target = next((_type(v) for v in values if not _is_null_type(v)), None)
    if target is None:
        return list(values)
    return [_cast(v, target) if _is_null_type(v) else v for v in values]


def _coerce_pair(left: Value, right: Value) -> tuple[Value, Value]:
    """Comparison operands: type bare NULLs, and cast a string scalar to the other side's type."""
    left, right = _unify_nulls([left, right])

    def literal_to(value: Value, other: Value) -> Value:
        other_type = _type(other)
        if (
            isinstance(value, pa.Scalar)
            and _is_text(_type(value))
            and not _is_text(other_type)
            and (
                pa.types.is_temporal(other_type)
                or _is_number(other_type)
                or pa.types.is_boolean(other_type)
            )
        ):
            return _cast_checked(value, other_type)
        return value

    return literal_to(left, right), literal_to(right, left)


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _is_number(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _boolean(value: Value) -> Value:
    return _typed(value, pa.bool_())


def _text(value: Value) -> Value:
    """A string argument of a string function (bare NULL becomes a NULL string)."""
    return _typed(value, pa.string())


def _to_text(value: Value) -> Value:
    """Anything as text, for || and CONCAT."""
    if _is_text(_type(value)):
        return value
    return _cast(value, pa.string())


def _timestamp(value: Value) -> Value:
    """A timestamp argument of a time-of-day function (dates count as midnight)."""
    t = _type(value)
    if pa.types.is_null(t) or pa.types.is_date(t):
        return _cast(value, pa.timestamp("us"))
    return value


def _temporal(value: Value) -> Value:
    return _typed(value, pa.timestamp("us"))


def _as_array(value: Value, n: int) -> Value:
    return pa.repeat(value, n) if isinstance(value, pa.Scalar) else value


def _not_null_true(value: Value) -> Value:
    """True where ``value`` is true; NULL counts as false (CASE/IF conditions, NULLIF)."""
    return pc.fill_null(_boolean(value), False)


def _trim_strings(value: Value) -> Value:
    if _is_text(_type(value)):
        return pc.utf8_trim_whitespace(value)
    return value


def _round_half_away(value: Value, digits: int) -> Value:
    return pc.round(value, ndigits=digits, round_mode="half_towards_infinity")


def _cast_checked(value: Value, to: pa.DataType) -> Value:
    """SQL-ish CAST over Arrow's safe cast."""
    source = _type(value)
    if pa.types.is_null(source) or source == to:
        return _cast(value, to)
    if _is_text(source) and not _is_text(to):
        value = _trim_strings(value)  # SQL accepts surrounding spaces in ' 12 '::int
    if pa.types.is_integer(to) and (pa.types.is_floating(source) or pa.types.is_decimal(source)):
        value = _round_half_away(value, 0)
    elif pa.types.is_decimal(to) and (pa.types.is_floating(source) or pa.types.is_decimal(source)):
        value = _round_half_away(value, to.scale)
    elif pa.types.is_date(to) and _is_text(source):
        value = _cast(value, pa.timestamp("us"))  # accepts '2024-01-01' and '2024-01-01 10:00'
    elif pa.types.is_timestamp(to) and pa.types.is_timestamp(source):
        return _cast(value, pa.timestamp(source.unit))  # keep the precision, drop the zone
    return _cast(value, to)


# ------------------------------------------------------------------------------- compiler

_Handler = Callable[["_Compiler", Any], Evaluator]
_HANDLERS: dict[type, _Handler] = {}


def _handles(*classes: type) -> Callable[[_Handler], _Handler]:
    def register(handler: _Handler) -> _Handler:
        for cls in classes:
            _HANDLERS[cls] = handler
        return handler

    return register


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text
        self.refs: set[str] = set()

    def error(self, problem: str, *, hint: str | None = _SUPPORTED_HINT) -> ExpressionError:
        return ExpressionError(self.text, problem, hint=hint)

    def compile(self, node: Any) -> Evaluator:
        handler = _HANDLERS.get(type(node))
        if handler is None:
            raise self._unsupported(node)
        run = handler(self, node)
        return self._guard(node, run)

    def _guard(self, node: Any, run: Evaluator) -> Evaluator:
        text = self.text
        sql = node.sql()

        def guarded(env: _Env) -> Value:
            try:
                return run(env)
            except ExpressionError:
                raise
            except pa.ArrowNotImplementedError as exc:
                raise ExpressionError(
                    text,
                    f"`{sql}` does not apply to these value types: {exc}",
                    hint="convert first, e.g. CAST(x AS VARCHAR), CAST(x AS TIMESTAMP), "
                    "CAST(x AS DOUBLE)",
                ) from exc
            except (pa.ArrowException, OverflowError) as exc:
                raise ExpressionError(text, f"cannot evaluate `{sql}`: {exc}", hint=None) from exc

        return guarded

    def _unsupported(self, node: Any) -> ExpressionError:
        if isinstance(node, exp.Anonymous):
            return self.error(f"unknown function {str(node.name).upper()}()")
        if isinstance(node, exp.Alias):
            return self.error(
                f"an alias (`{node.sql()}`) is not allowed",
                hint="the key of the `derive` entry names the column: `derive: {name: expr}`",
            )
        if isinstance(node, exp.Func):
            return self.error(f"function {node.sql_name()}() is not supported")
        if isinstance(node, exp.Query | exp.Block):
            return self.error("only a single expression is allowed, not a statement")
        return self.error(f"`{node.sql()}` ({type(node).__name__}) is not supported")

    def check_args(self, node: Any, allowed: Sequence[str]) -> None:
        """Reject arguments of a known node that this module does not implement."""
        for key, value in node.args.items():
            if key in allowed or value is None or isinstance(value, bool):
                continue
            if isinstance(value, exp.Expression) or (isinstance(value, list) and value):
                raise self.error(f"`{node.sql()}`: the `{key}` argument is not supported")

    def arg(self, node: Any, key: str) -> Evaluator:
        return self.compile(node.args[key])

    def int_literal(self, node: Any, what: str) -> int:
        sign = 1
        while isinstance(node, exp.Paren | exp.Neg):
            if isinstance(node, exp.Neg):
                sign = -sign
            node = node.this
        if isinstance(node, exp.Literal) and not node.is_string:
            try:
                return sign * int(node.this)
            except ValueError:
                pass
        raise self.error(f"{what} must be an integer literal, not `{node.sql()}`", hint=None)
