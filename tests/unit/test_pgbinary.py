"""The numpy binary COPY encoder writes exactly the bytes pgpq writes, or declines."""

from __future__ import annotations

import numpy as np
import pgpq
import pyarrow as pa

from ferry.db.pgbinary import HEADER, TRAILER, encode_rows


def _pgpq(table: pa.Table) -> bytes:
    encoder = pgpq.ArrowToPostgresBinaryEncoder(table.schema)
    parts = [encoder.write_header()]
    parts += [encoder.write_batch(batch) for batch in table.to_batches()]
    parts.append(encoder.finish())
    return b"".join(parts)


def _ints(rng: np.random.Generator, lo: int, hi: int, n: int) -> pa.Array:
    return pa.array(rng.integers(lo, hi, n), pa.int64())


def test_fixed_width_columns_encode_as_pgpq_does() -> None:
    rng = np.random.default_rng(7)
    n = 500
    table = pa.table(
        {
            "small": _ints(rng, -32768, 32767, n).cast(pa.int16()),
            "int": _ints(rng, -(2**31), 2**31 - 1, n).cast(pa.int32()),
            "big": _ints(rng, -(2**62), 2**62, n),
            "real": pa.array(rng.random(n), pa.float32()),
            "double": pa.array(rng.standard_normal(n)),
            "flag": pa.array(rng.random(n) > 0.5),
            "day": _ints(rng, -20_000, 40_000, n).cast(pa.int32()).cast(pa.date32()),
            "at_us": _ints(rng, -(10**15), 10**16, n).cast(pa.timestamp("us")),
            "at_utc": _ints(rng, -(10**15), 10**16, n).cast(pa.timestamp("us", tz="UTC")),
            "at_s": _ints(rng, -(10**9), 10**10, n).cast(pa.timestamp("s")),
            "at_ms": _ints(rng, -(10**12), 10**13, n).cast(pa.timestamp("ms")),
        }
    )
    table = pa.concat_tables([table.slice(0, 123), table.slice(123)])  # two chunks
    rows = encode_rows(table)
    assert rows is not None
    assert HEADER + rows.tobytes() + TRAILER == _pgpq(table)


def test_declines_nulls_text_and_nanoseconds() -> None:
    assert encode_rows(pa.table({"a": pa.array([1, None], pa.int32())})) is None
    assert encode_rows(pa.table({"a": pa.array(["x"])})) is None
    stamps = pa.array([1], pa.int64()).cast(pa.timestamp("ns"))
    assert encode_rows(pa.table({"a": stamps})) is None
