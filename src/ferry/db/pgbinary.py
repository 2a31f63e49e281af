"""PostgreSQL binary COPY rows built with numpy for tables of fixed-width, NULL-free columns.

When every column is a number, a boolean, a date or a timestamp and holds no NULL, every row
of the binary COPY format has the same layout: a 16-bit field count, then per field a 32-bit
length and the big-endian value. One numpy structured array with that layout is filled column
by column (a strided, byte-swapping copy each) and handed to COPY as it is. On this machine it
encodes a 100,000-row chunk of the bench's analytics table several times faster than pgpq,
which walks the rows one by one, and it needs no joined copy of the payload.

Anything else (text, decimals, NULLs, nanosecond timestamps) returns None and goes to pgpq.
The bytes are the same as pgpq's, which tests/unit/test_pgbinary.py checks.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"

# PostgreSQL counts dates and timestamps from 2000-01-01, Arrow from 1970-01-01.
_EPOCH_DAYS = 10_957
_EPOCH_MICROS = _EPOCH_DAYS * 86_400 * 1_000_000
_TO_MICROS = {"s": 1_000_000, "ms": 1_000, "us": 1}

_PLAIN: dict[pa.DataType, str] = {
    pa.int16(): ">i2",
    pa.int32(): ">i4",
    pa.int64(): ">i8",
    pa.float32(): ">f4",
    pa.float64(): ">f8",
}


def _values(column: pa.ChunkedArray | pa.Array) -> tuple[str, np.ndarray] | None:
    """The column as a numpy array in PostgreSQL's terms, and its big-endian dtype."""
    kind = column.type
    if kind in _PLAIN:
        return _PLAIN[kind], np.asarray(column)
    if pa.types.is_boolean(kind):
        return "u1", np.asarray(column).view(np.uint8)
    if pa.types.is_date32(kind):
        days = np.asarray(pc.cast(column, pa.int32()))
        return ">i4", days - np.int32(_EPOCH_DAYS)
    if pa.types.is_timestamp(kind) and kind.unit in _TO_MICROS:
        raw = np.asarray(pc.cast(column, pa.int64()))
        scale = _TO_MICROS[kind.unit]
        micros = raw * np.int64(scale) if scale != 1 else raw
        return ">i8", micros - np.int64(_EPOCH_MICROS)
    return None


def encode_rows(table: pa.Table) -> np.ndarray | None:
    """The rows of `table` in binary COPY format (no header or trailer), or None when a
    column is not of a fixed-width kind handled here or holds a NULL."""
    if table.num_columns == 0 or table.num_columns > 1600:
        return None
    columns = []
    for column in table.columns:
        if column.null_count:
            return None
        found = _values(column)
        if found is None:
            return None
        columns.append(found)
    layout: list[tuple[str, str]] = [("fields", ">i2")]
    for index, (dtype, _) in enumerate(columns):
        layout += [(f"l{index}", ">i4"), (f"v{index}", dtype)]
    rows = np.empty(table.num_rows, dtype=np.dtype(layout))
    rows["fields"] = table.num_columns
    for index, (dtype, values) in enumerate(columns):
        rows[f"l{index}"] = np.dtype(dtype).itemsize
        rows[f"v{index}"] = values
    return rows


__all__ = ["HEADER", "TRAILER", "encode_rows"]
