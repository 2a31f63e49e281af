"""Derived columns: small SQL expressions evaluated over Arrow tables, vectorised.

A job spec names derived columns with SQL expressions::

    derive:
      hour: "HOUR(recorded_at)"
      hour_start: "DATE_TRUNC('hour', recorded_at)"
      label: "UPPER(name) || '-' || CAST(id AS VARCHAR)"

:func:`compile_expression` parses the text once (sqlglot, dialect-neutral) and turns the tree
into a chain of closures over :mod:`pyarrow.compute`; every function, cast target, date part
and truncation unit is checked then, so a typo fails when the spec is loaded, not in the middle
of a copy. :meth:`Expression.evaluate` runs the closures over a table: whole columns at a time,
never a Python loop per row.

Semantics follow SQL where Arrow lets them cheaply:

* NULL propagates through operators and functions; ``AND``/``OR`` use three-valued logic; a CASE
  or IF condition that is NULL counts as false; ``||`` and ``CONCAT`` return NULL when any
  argument is NULL (sqlglot's dialect-neutral CONCAT does not skip NULLs).
* ``+ - *`` and unary minus raise on integer overflow; ``/`` is Arrow's ``divide`` (integer
  operands give an integer quotient truncated toward zero, integer division by zero raises,
  float division by zero gives inf/NaN); ``%`` is the remainder with the sign of the dividend.
* Integer literals are int64, other numeric literals float64, a bare NULL takes the type of the
  value it meets.
* A string literal compared with a date, timestamp, number or boolean is cast to that type
  first (``recorded_at >= '2024-01-01'``).
* Unquoted column names fall back to a case-insensitive match when there is no exact match;
  quoted names (``"Weird Col"``) match exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp

from ferry.data.expression_engine import (
    _HANDLERS,
    SUPPORTED_FUNCTIONS,
    Evaluator,
    ExpressionError,
    Value,
    _as_array,
    _boolean,
    _cast,
    _cast_checked,
    _coerce_pair,
    _Compiler,
    _Env,
    _Handler,
    _handles,
    _is_null_type,
    _not_null_true,
    _round_half_away,
    _temporal,
    _text,
    _timestamp,
    _to_text,
    _type,
    _typed,
    _unify_nulls,
)

__all__ = ["SUPPORTED_FUNCTIONS", "Expression", "ExpressionError", "compile_expression"]


@dataclass(frozen=True)
class Expression:
    """A compiled expression; create with :func:`compile_expression`."""

    text: str
    # Column references: the name as written, prefixed with '"' when quoted, "'" when not.
    _refs: frozenset[str] = field(repr=False)
    _run: Evaluator = field(repr=False, compare=False)

    def columns(self) -> set[str]:
        """Column names the expression references, as written in it."""
        return {ref[1:] for ref in self._refs}

    def evaluate(self, table: pa.Table) -> pa.Array | pa.ChunkedArray:
        """Compute the expression for every row of ``table``.

        Raises:
            ExpressionError: a referenced column is missing, or the values do not fit the
                operation (types, overflow, a failed CAST, integer division by zero).
        """
        env = _Env(self.text, table)
        env.resolve(self._refs)
        result = self._run(env)
        if isinstance(result, pa.Scalar):
            return pa.repeat(result, table.num_rows)
        return result

    def __str__(self) -> str:
        return self.text

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # The compiled closures cannot be pickled; recompiling from the text is cheap and
        # lets expressions travel to worker processes.
        return (compile_expression, (self.text,))


def compile_expression(text: str) -> Expression:
    """Parse and check ``text``.

    Raises:
        ExpressionError: syntax error, unknown or unsupported function, unsupported cast
            target, date part or truncation unit, or non-literal arguments where a literal is
            needed (SUBSTRING positions, ROUND digits, TRIM characters).
    """
    if not text.strip():
        raise ExpressionError(text, "the expression is empty")
    try:
        tree = sqlglot.parse_one(text)
    except sqlglot.errors.ParseError as exc:
        raise ExpressionError(text, _describe_parse_error(exc)) from exc
    except sqlglot.errors.SqlglotError as exc:  # the tokenizer: an unterminated quote, ...
        raise ExpressionError(
            text, f"syntax error: {_clean(str(exc))} (is a quote left open?)"
        ) from exc
    compiler = _Compiler(text)
    run = compiler.compile(tree)
    return Expression(text=text, _refs=frozenset(compiler.refs), _run=run)


# --------------------------------------------------------------------------------- parsing

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CLASS = re.compile(r"<class 'sqlglot\.expressions\.[\w.]*?(\w+)'>")


def _clean(message: str) -> str:
    return _CLASS.sub(r"\1", _ANSI.sub("", message)).strip()


def _describe_parse_error(exc: sqlglot.errors.ParseError) -> str:
    errors = getattr(exc, "errors", None) or []
    if errors:
        first = errors[0]
        description = _clean(str(first.get("description") or "invalid syntax"))
        col = first.get("col")
        near = first.get("highlight")
        where = f" at column {col}" if col else ""
        if near:
            where += f" (near `{near}`)"
        return f"syntax error{where}: {description}"
    return f"syntax error: {_clean(str(exc)).splitlines()[0]}"


# ---------------------------------------------------------------------- leaves and literals


@_handles(exp.Column)
def _column(c: _Compiler, node: Any) -> Evaluator:
    if node.args.get("table") is not None:
        raise c.error(
            f"qualified column `{node.sql()}` is not supported",
            hint='use the bare column name; quote a name that contains a dot: "a.b"',
        )
    identifier = node.this
    if not isinstance(identifier, exp.Identifier):
        raise c.error(f"`{node.sql()}` is not a column name")
    name = str(identifier.this)
    key = ('"' if identifier.args.get("quoted") else "'") + name
    c.refs.add(key)
    return lambda env: env.column(key)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@_handles(exp.Literal)
def _literal(c: _Compiler, node: Any) -> Evaluator:
    raw = str(node.this)
    if node.is_string:
        scalar = pa.scalar(raw, pa.string())
    else:
        try:
            number = int(raw)
        except ValueError:
            number = None
        if number is not None and _INT64_MIN <= number <= _INT64_MAX:
            scalar = pa.scalar(number, pa.int64())
        else:
            try:
                scalar = pa.scalar(float(raw), pa.float64())
            except ValueError:
                raise c.error(f"`{raw}` is not a valid number", hint=None) from None
    return lambda env: scalar


@_handles(exp.Boolean)
def _boolean_literal(c: _Compiler, node: Any) -> Evaluator:
    scalar = pa.scalar(bool(node.this), pa.bool_())
    return lambda env: scalar


@_handles(exp.Null)
def _null(c: _Compiler, node: Any) -> Evaluator:
    scalar = pa.scalar(None)
    return lambda env: scalar


@_handles(exp.Paren)
def _paren(c: _Compiler, node: Any) -> Evaluator:
    return c.compile(node.this)


# ------------------------------------------------------------------------------ operators

_ARITHMETIC: dict[type, Callable[[Value, Value], Value]] = {
    exp.Add: pc.add_checked,
    exp.Sub: pc.subtract_checked,
    exp.Mul: pc.multiply_checked,
    exp.Div: pc.divide,
    exp.Mod: pc.remainder,
}

_COMPARISONS: dict[type, Callable[[Value, Value], Value]] = {
    exp.EQ: pc.equal,
    exp.NEQ: pc.not_equal,
    exp.LT: pc.less,
    exp.LTE: pc.less_equal,
    exp.GT: pc.greater,
    exp.GTE: pc.greater_equal,
}


@_handles(*_ARITHMETIC)
def _arithmetic(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this", "expression"))
    op = _ARITHMETIC[type(node)]
    left, right = c.arg(node, "this"), c.arg(node, "expression")

    def run(env: _Env) -> Value:
        a, b = _unify_nulls([left(env), right(env)])
        if _is_null_type(a):  # NULL + NULL
            return a
        return op(a, b)

    return run


@_handles(*_COMPARISONS)
def _comparison(c: _Compiler, node: Any) -> Evaluator:
    op = _COMPARISONS[type(node)]
    left, right = c.arg(node, "this"), c.arg(node, "expression")

    def run(env: _Env) -> Value:
        a, b = _coerce_pair(left(env), right(env))
        if _is_null_type(a):
            return pa.scalar(None, pa.bool_())
        return op(a, b)

    return run


@_handles(exp.Neg)
def _neg(c: _Compiler, node: Any) -> Evaluator:
    inner = c.arg(node, "this")
    return lambda env: pc.negate_checked(_typed(inner(env), pa.int64()))


@_handles(exp.And, exp.Or)
def _logical(c: _Compiler, node: Any) -> Evaluator:
    op = pc.and_kleene if isinstance(node, exp.And) else pc.or_kleene
    left, right = c.arg(node, "this"), c.arg(node, "expression")
    return lambda env: op(_boolean(left(env)), _boolean(right(env)))


@_handles(exp.Not)
def _not(c: _Compiler, node: Any) -> Evaluator:
    inner = c.arg(node, "this")
    return lambda env: pc.invert(_boolean(inner(env)))


@_handles(exp.Is)
def _is(c: _Compiler, node: Any) -> Evaluator:
    target = node.args.get("expression")
    inner = c.arg(node, "this")
    if isinstance(target, exp.Null):
        return lambda env: pc.is_null(inner(env))
    if isinstance(target, exp.Boolean):
        wanted = pa.scalar(bool(target.this), pa.bool_())
        return lambda env: pc.fill_null(pc.equal(_boolean(inner(env)), wanted), False)
    raise c.error(f"`{node.sql()}`: only IS [NOT] NULL, IS [NOT] TRUE and IS [NOT] FALSE")


# -------------------------------------------------------------------- strings and concat


def _concat_values(values: Sequence[Value]) -> Value:
    texts = [_to_text(v) for v in values]
    if any(pa.types.is_large_string(_type(t)) for t in texts):
        texts = [_cast(t, pa.large_string()) for t in texts]
    if len(texts) == 1:
        return texts[0]
    separator = pa.scalar("", _type(texts[0]))
    return pc.binary_join_element_wise(*texts, separator, null_handling="emit_null")


@_handles(exp.DPipe)
def _dpipe(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this", "expression"))
    left, right = c.arg(node, "this"), c.arg(node, "expression")
    return lambda env: _concat_values([left(env), right(env)])


@_handles(exp.Concat)
def _concat(c: _Compiler, node: Any) -> Evaluator:
    if node.args.get("coalesce"):
        raise c.error("CONCAT that skips NULLs is not supported", hint="use COALESCE(x, '')")
    parts = [c.compile(arg) for arg in node.expressions]
    return lambda env: _concat_values([part(env) for part in parts])


@_handles(exp.Upper, exp.Lower)
def _case_fn(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this",))
    op = pc.utf8_upper if isinstance(node, exp.Upper) else pc.utf8_lower
    inner = c.arg(node, "this")
    return lambda env: op(_text(inner(env)))


@_handles(exp.Length)
def _length(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this",))
    if node.args.get("binary"):
        raise c.error(f"`{node.sql()}`: byte length is not supported")
    inner = c.arg(node, "this")
    return lambda env: pc.utf8_length(_text(inner(env)))


@_handles(exp.Trim)
def _trim(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this", "expression"))
    characters = " "  # SQL TRIM removes spaces, not every kind of whitespace
    chars_node = node.args.get("expression")
    if chars_node is not None:
        if not (isinstance(chars_node, exp.Literal) and chars_node.is_string):
            raise c.error("TRIM characters must be a string literal", hint=None)
        characters = str(chars_node.this)
    position = str(node.args.get("position") or "BOTH").upper()
    ops = {"BOTH": pc.utf8_trim, "LEADING": pc.utf8_ltrim, "TRAILING": pc.utf8_rtrim}
    op = ops[position]
    inner = c.arg(node, "this")
    return lambda env: op(_text(inner(env)), characters=characters)


@_handles(exp.Substring)
def _substring(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this", "start", "length"))
    if node.args.get("start") is None:
        raise c.error("SUBSTRING needs a start position: SUBSTRING(s, start[, length])")
    start = c.int_literal(node.args["start"], "the SUBSTRING start")
    length_node = node.args.get("length")
    begin = max(start - 1, 0)  # SQL is 1-based; positions before 1 just shorten the result
    stop: int | None = None
    if length_node is not None:
        length = c.int_literal(length_node, "the SUBSTRING length")
        if length < 0:
            raise c.error("the SUBSTRING length must not be negative", hint=None)
        stop = max(start - 1 + length, begin)
    inner = c.arg(node, "this")

    def run(env: _Env) -> Value:
        if stop is None:
            return pc.utf8_slice_codeunits(_text(inner(env)), start=begin)
        return pc.utf8_slice_codeunits(_text(inner(env)), start=begin, stop=stop)

    return run


# --------------------------------------------------------------------- conditionals, nulls


@_handles(exp.Case)
def _case(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this", "ifs", "default"))
    subject = c.compile(node.this) if node.args.get("this") is not None else None
    branches = []
    for branch in node.args["ifs"]:
        if not isinstance(branch, exp.If) or branch.args.get("false") is not None:
            raise c.error(f"`{branch.sql()}` is not a WHEN ... THEN ... branch")
        branches.append((c.arg(branch, "this"), c.arg(branch, "true")))
    default = c.compile(node.args["default"]) if node.args.get("default") is not None else None

    def run(env: _Env) -> Value:
        base = subject(env) if subject is not None else None
        conditions, results = [], []
        for when, then in branches:
            condition = when(env)
            if base is not None:
                left, right = _coerce_pair(base, condition)
                condition = (
                    pa.scalar(None, pa.bool_()) if _is_null_type(left) else pc.equal(left, right)
                )
            conditions.append(_as_array(_not_null_true(condition), env.n))
            results.append(then(env))
        results.append(default(env) if default is not None else pa.scalar(None))
        results = _unify_nulls(results)
        if all(_is_null_type(r) for r in results):
            return pa.nulls(env.n)
        results = [_as_array(r, env.n) for r in results]
        names = [str(i) for i in range(len(conditions))]
        return pc.case_when(pc.make_struct(*conditions, field_names=names), *results)

    return run


@_handles(exp.If)
def _if(c: _Compiler, node: Any) -> Evaluator:
    condition = c.arg(node, "this")
    then = c.arg(node, "true")
    otherwise = c.compile(node.args["false"]) if node.args.get("false") is not None else None

    def run(env: _Env) -> Value:
        a = then(env)
        b = otherwise(env) if otherwise is not None else pa.scalar(None)
        a, b = _unify_nulls([a, b])
        if _is_null_type(a):
            return pa.nulls(env.n)
        return pc.if_else(_not_null_true(condition(env)), a, b)

    return run


@_handles(exp.Coalesce)
def _coalesce(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this", "expressions"))
    parts = [c.arg(node, "this"), *(c.compile(arg) for arg in node.expressions)]

    def run(env: _Env) -> Value:
        values = _unify_nulls([part(env) for part in parts])
        if len(values) == 1 or _is_null_type(values[0]):
            return values[0]
        return pc.coalesce(*values)

    return run


@_handles(exp.Nullif)
def _nullif(c: _Compiler, node: Any) -> Evaluator:
    value, other = c.arg(node, "this"), c.arg(node, "expression")

    def run(env: _Env) -> Value:
        a = value(env)
        if _is_null_type(a):
            return a
        left, right = _coerce_pair(a, other(env))
        same = pc.fill_null(pc.equal(left, right), False)
        return pc.if_else(same, pa.scalar(None, _type(a)), a)

    return run


# ----------------------------------------------------------------------------------- CAST

_DT = exp.DataType.Type
_SIMPLE_TYPES: dict[Any, pa.DataType] = {
    _DT.TINYINT: pa.int8(),
    _DT.SMALLINT: pa.int16(),
    _DT.INT: pa.int32(),
    _DT.BIGINT: pa.int64(),
    _DT.FLOAT: pa.float64(),
    _DT.DOUBLE: pa.float64(),
    _DT.TEXT: pa.string(),
    _DT.BOOLEAN: pa.bool_(),
    _DT.DATE: pa.date32(),
    _DT.TIMESTAMP: pa.timestamp("us"),
    _DT.DATETIME: pa.timestamp("us"),
}
_SIZED_TEXT = {_DT.VARCHAR, _DT.CHAR, _DT.NVARCHAR, _DT.NCHAR}
_CAST_TARGETS = (
    "INTEGER, SMALLINT, BIGINT, DOUBLE, VARCHAR[(n)], CHAR[(n)], TEXT, BOOLEAN, DATE, "
    "TIMESTAMP, DECIMAL(p, s)"
)


def _type_params(c: _Compiler, datatype: Any) -> list[int]:
    params = []
    for param in datatype.expressions:
        inner = param.this if isinstance(param, exp.DataTypeParam) else param
        params.append(c.int_literal(inner, f"a parameter of {datatype.sql()}"))
    return params


@_handles(exp.Cast)
def _cast_node(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this", "to"))
    datatype = node.args["to"]
    kind = datatype.this
    params = _type_params(c, datatype)
    max_chars: int | None = None
    if kind in _SIMPLE_TYPES and not params:
        target = _SIMPLE_TYPES[kind]
    elif kind in _SIZED_TEXT and len(params) <= 1:
        target = pa.string()
        max_chars = params[0] if params else None
    elif kind == _DT.DECIMAL and 1 <= len(params) <= 2:
        precision, scale = params[0], params[1] if len(params) == 2 else 0
        if not (1 <= precision <= 76 and 0 <= scale <= precision):
            raise c.error(f"invalid precision or scale in `{datatype.sql()}`", hint=None)
        make = pa.decimal128 if precision <= 38 else pa.decimal256
        target = make(precision, scale)
    elif kind == _DT.DECIMAL:
        raise c.error(
            f"`{node.sql()}`: DECIMAL needs a precision and scale",
            hint="write DECIMAL(p, s), e.g. DECIMAL(12, 2)",
        )
    else:
        raise c.error(
            f"cannot CAST to {datatype.sql()}", hint=f"supported cast targets: {_CAST_TARGETS}"
        )
    inner = c.arg(node, "this")

    def run(env: _Env) -> Value:
        result = _cast_checked(inner(env), target)
        if max_chars is not None:
            result = pc.utf8_slice_codeunits(result, start=0, stop=max_chars)
        return result

    return run


# ---------------------------------------------------------------------------- date & time


def _date_part(value: Value) -> Value:
    # An INTEGER, as MySQL's HOUR() or YEAR() return (Arrow computes them as int64): the
    # derived column is created INTEGER, 4 bytes a row smaller than BIGINT.
    return pc.cast(value, pa.int32())


def _temporal_fn(op: Callable[[Value], Value], *, time_of_day: bool) -> _Handler:
    prepare = _timestamp if time_of_day else _temporal

    def handler(c: _Compiler, node: Any) -> Evaluator:
        c.check_args(node, ("this",))
        inner = c.arg(node, "this")
        return lambda env: _date_part(op(prepare(inner(env))))

    return handler


def _day_of_week_sunday_1(value: Value) -> Value:  # DAYOFWEEK: 1 = Sunday ... 7 = Saturday
    return pc.day_of_week(value, count_from_zero=False, week_start=7)


def _day_of_week_sunday_0(value: Value) -> Value:  # EXTRACT(DOW): 0 = Sunday ... 6 = Saturday
    return pc.day_of_week(value, count_from_zero=True, week_start=7)


def _day_of_week_iso(value: Value) -> Value:  # EXTRACT(ISODOW): 1 = Monday ... 7 = Sunday
    return pc.day_of_week(value, count_from_zero=False, week_start=1)


_TEMPORAL_FUNCTIONS: dict[type, tuple[Callable[[Value], Value], bool]] = {
    exp.Year: (pc.year, False),
    exp.Quarter: (pc.quarter, False),
    exp.Month: (pc.month, False),
    exp.Day: (pc.day, False),
    exp.DayOfMonth: (pc.day, False),
    exp.DayOfWeek: (_day_of_week_sunday_1, False),
    exp.Hour: (pc.hour, True),
    exp.Minute: (pc.minute, True),
    exp.Second: (pc.second, True),
}
for _cls, (_op, _time_of_day) in _TEMPORAL_FUNCTIONS.items():
    _HANDLERS[_cls] = _temporal_fn(_op, time_of_day=_time_of_day)

_EXTRACT_PARTS: dict[str, tuple[Callable[[Value], Value], bool]] = {
    "YEAR": (pc.year, False),
    "QUARTER": (pc.quarter, False),
    "MONTH": (pc.month, False),
    "WEEK": (pc.iso_week, False),
    "DAY": (pc.day, False),
    "DOY": (pc.day_of_year, False),
    "DOW": (_day_of_week_sunday_0, False),
    "DAYOFWEEK": (_day_of_week_sunday_1, False),
    "ISODOW": (_day_of_week_iso, False),
    "HOUR": (pc.hour, True),
    "MINUTE": (pc.minute, True),
    "SECOND": (pc.second, True),
}


@_handles(exp.Extract)
def _extract(c: _Compiler, node: Any) -> Evaluator:
    part = str(node.this.name).upper()
    if part not in _EXTRACT_PARTS:
        raise c.error(
            f"EXTRACT({part} FROM ...) is not supported",
            hint="supported parts: " + ", ".join(_EXTRACT_PARTS),
        )
    op, time_of_day = _EXTRACT_PARTS[part]
    prepare = _timestamp if time_of_day else _temporal
    inner = c.arg(node, "expression")
    return lambda env: _date_part(op(prepare(inner(env))))


@_handles(exp.Date)
def _date(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this",))
    inner = c.arg(node, "this")
    return lambda env: _cast_checked(inner(env), pa.date32())


_TRUNC_UNITS = ("SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR")


@_handles(exp.DateTrunc, exp.TimestampTrunc)
def _date_trunc(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this", "unit"))
    unit_node = node.args.get("unit")
    unit = str(unit_node.name if unit_node is not None else "").upper()
    if unit not in _TRUNC_UNITS:
        raise c.error(
            f"DATE_TRUNC unit `{unit.lower()}` is not supported",
            hint="supported units: " + ", ".join(u.lower() for u in _TRUNC_UNITS),
        )
    arrow_unit = unit.lower()
    inner = c.arg(node, "this")
    return lambda env: pc.floor_temporal(_temporal(inner(env)), unit=arrow_unit)


# ---------------------------------------------------------------------------------- maths


@_handles(exp.Abs)
def _abs(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this",))
    inner = c.arg(node, "this")
    return lambda env: pc.abs_checked(_typed(inner(env), pa.int64()))


@_handles(exp.Round)
def _round(c: _Compiler, node: Any) -> Evaluator:
    c.check_args(node, ("this", "decimals"))
    decimals_node = node.args.get("decimals")
    digits = c.int_literal(decimals_node, "the ROUND digits") if decimals_node is not None else 0
    inner = c.arg(node, "this")
    # SQL rounds halves away from zero (Arrow's default is half to even).
    return lambda env: _round_half_away(_typed(inner(env), pa.float64()), digits)
