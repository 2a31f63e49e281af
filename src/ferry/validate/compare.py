"""Row-by-row comparison of two Arrow tables keyed the same way, vectorised.

Values are canonicalised first so engines do not cause false alarms: floats within a relative
tolerance, timestamps to microseconds in UTC, decimals by value, and, where configured,
strings without trailing spaces and case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SEP = "\x1f"


@dataclass(frozen=True)
class Canon:
    float_tolerance: float = 1e-9
    ignore_case: bool = False
    ignore_trailing_spaces: bool = False


@dataclass
class Diff:
    missing: list[Any] = field(default_factory=list)  # keys expected, absent in the target
    extra: list[Any] = field(default_factory=list)  # keys in the target, not expected
    different: list[tuple[Any, list[str]]] = field(default_factory=list)  # key, columns
    #: the full rows behind missing and extra, for matching across key ranges (engines may
    #: order string keys differently, so a row can sit in another range on the other side)
    missing_rows: pa.Table | None = None
    extra_rows: pa.Table | None = None
    missing_count: int = 0
    extra_count: int = 0
    different_count: int = 0
    compared: int = 0


def key_strings(table: pa.Table, key: list[str]) -> pa.Array:
    parts = [pc.fill_null(pc.cast(table[k], pa.string()), "\x00") for k in key]
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, _SEP)
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def canonical_key_strings(table: pa.Table, key: list[str], canon: Canon) -> pa.Array:
    """`key_strings` of a table's keys canonicalised as `compare` canonicalises its rows."""
    return key_strings(pa.table({k: _canonical(table[k], canon) for k in key}), key)


def _canonical(values: Any, canon: Canon) -> Any:
    kind = values.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            values = pc.cast(values, pa.timestamp("us", tz="UTC"))
            return pc.cast(values, pa.timestamp("us"))
        return pc.cast(values, pa.timestamp("us"))
    if pa.types.is_decimal(kind):
        return (
            pc.cast(values, pa.decimal128(38, max(kind.scale, 0)))
            if kind.precision < 38
            else values
        )
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = pc.cast(values, pa.string())
        if canon.ignore_trailing_spaces:
            values = pc.utf8_rtrim(values, " ")
        if canon.ignore_case:
            values = pc.utf8_lower(values)
    return values


def _same(left: Any, right: Any, canon: Canon) -> Any:
    both_null = pc.and_(pc.is_null(left), pc.is_null(right))
    if pa.types.is_floating(left.type) or pa.types.is_floating(right.type):
        a, b = pc.cast(left, pa.float64()), pc.cast(right, pa.float64())
        # Relative to the larger magnitude, with no absolute floor: 1e-12 against 0 differs.
        scale = pc.max_element_wise(pc.abs(a), pc.abs(b))
        close = pc.less_equal(pc.abs(pc.subtract(a, b)), pc.multiply(scale, canon.float_tolerance))
        both_nan = pc.and_(pc.is_nan(a), pc.is_nan(b))  # NaN copied as NaN is the same value
        equal = pc.or_(pc.or_(pc.equal(a, b), close), both_nan)
    else:
        if pa.types.is_decimal(left.type) and pa.types.is_decimal(right.type):
            # Compare by value at the wider scale: 1.25 equals 1.2500.
            wide = pa.decimal128(38, max(left.type.scale, right.type.scale))
            left, right = pc.cast(left, wide), pc.cast(right, wide)
        elif left.type != right.type:
            try:
                right = pc.cast(right, left.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                left, right = pc.cast(left, pa.string()), pc.cast(right, pa.string())
        equal = pc.equal(left, right)
    return pc.or_(pc.fill_null(equal, False), both_null)


def compare(
    expected: pa.Table, actual: pa.Table, key: list[str], *, canon: Canon, max_keys: int
) -> Diff:
    """What differs between the rows that should be there and the rows that are."""
    diff = Diff()
    columns = [c for c in expected.column_names if c in actual.column_names]
    expected = pa.table({c: _canonical(expected[c], canon) for c in columns})
    actual = pa.table({c: _canonical(actual[c], canon) for c in columns})
    if _aligned(expected, actual, key):
        # Same keys in the same order (both sides read in key order): compare in place.
        diff.compared = expected.num_rows
        _differences(expected, actual, key, columns, canon, max_keys, diff)
        return diff
    want, have = key_strings(expected, key), key_strings(actual, key)
    absent = pc.invert(pc.is_in(want, value_set=have))
    surplus = pc.invert(pc.is_in(have, value_set=want))
    diff.missing_count = int(pc.sum(absent).as_py() or 0)
    diff.extra_count = int(pc.sum(surplus).as_py() or 0)
    diff.missing_rows = expected.filter(absent)
    diff.extra_rows = actual.filter(surplus)
    diff.missing = diff.missing_rows.select(key).slice(0, max_keys).to_pylist()
    diff.extra = diff.extra_rows.select(key).slice(0, max_keys).to_pylist()
    left = expected.append_column("__k", want).filter(pc.invert(absent))
    right = actual.append_column("__k", have).filter(pc.invert(surplus))
    order_left = pc.sort_indices(left["__k"])
    order_right = pc.sort_indices(right["__k"])
    left, right = left.take(order_left), right.take(order_right)
    diff.compared = left.num_rows
    if left.num_rows != right.num_rows:  # duplicate keys on one side
        diff.different_count = abs(left.num_rows - right.num_rows)
        return diff
    _differences(left, right, key, columns, canon, max_keys, diff)
    return diff


def _aligned(expected: pa.Table, actual: pa.Table, key: list[str]) -> bool:
    if expected.num_rows != actual.num_rows:
        return False
    for k in key:
        left, right = expected[k], actual[k]
        if left.type != right.type:
            try:
                right = pc.cast(right, left.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return False
        if not pc.all(pc.fill_null(pc.equal(left, right), False)).as_py() and left.length():
            return False
    return True


def _differences(
    left: pa.Table,
    right: pa.Table,
    key: list[str],
    columns: list[str],
    canon: Canon,
    max_keys: int,
    diff: Diff,
) -> None:
    """Rows at the same positions whose non-key columns differ."""
    bad = pa.array(np.zeros(left.num_rows, dtype=bool))
    per_column: dict[str, Any] = {}
    for column in columns:
        if column in key:
            continue
        unequal = pc.invert(_same(left[column], right[column], canon))
        per_column[column] = unequal
        bad = pc.or_(bad, unequal)
    diff.different_count = int(pc.sum(bad).as_py() or 0)
    if diff.different_count:
        rows = pc.indices_nonzero(bad).to_pylist()[:max_keys]
        keys = left.select(key).take(pa.array(rows, pa.int64())).to_pylist()
        for row, found in zip(rows, keys, strict=True):
            names = [c for c, mask in per_column.items() if mask[row].as_py()]
            diff.different.append((found, names))
