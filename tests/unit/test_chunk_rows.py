"""Rows per chunk when a job sets no batch_size: about CHUNK_BYTES of source rows, at least
four chunks per worker for large tables, one chunk for small ones."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.data.chunks import CHUNK_BYTES, DEFAULT_CHUNK_ROWS, auto_chunk_rows, chunk_rows


@pytest.mark.parametrize(
    ("row_bytes", "rows", "workers", "expected"),
    [
        (67, 5_000_000, 2, CHUNK_BYTES // 67),  # the analytics table: about 250,000 rows
        (8, 20_000_000, 16, 312_500),  # many workers: four chunks each
        (67, 5_000_000, 16, DEFAULT_CHUNK_ROWS),  # ... but chunks not below 100,000 rows
        (67, 60_000, 2, DEFAULT_CHUNK_ROWS),  # a small table: one chunk
        (20_000, 1_000_000, 2, 1_000),  # wide rows: few per chunk, never below 1,000
        (8, 100_000_000, 1, 1_000_000),  # narrow rows: never above 1,000,000
        (None, 5_000_000, 2, DEFAULT_CHUNK_ROWS),  # no statistics
        (None, None, 2, DEFAULT_CHUNK_ROWS),
    ],
)
def test_auto_chunk_rows(
    row_bytes: float | None, rows: int | None, workers: int, expected: int
) -> None:
    assert auto_chunk_rows(row_bytes, rows, workers) == expected


class _Stats:
    def __init__(self, rows: int | None, size: int | None, sampled: float | None = None) -> None:
        self.rows, self.size, self.sampled = rows, size, sampled

    def estimated_rows(self, conn: Any, table: str) -> int | None:
        return self.rows

    def table_bytes(self, conn: Any, tables: list[str]) -> dict[str, int]:
        return {} if self.size is None else {tables[0]: self.size}

    def sampled_row_bytes(self, conn: Any, table: str) -> float | None:
        return self.sampled


def test_chunk_rows_uses_the_job_setting_else_the_statistics() -> None:
    stats: Any = _Stats(5_000_000, 5_000_000 * 64)
    assert chunk_rows(stats, None, "t", 777, 2) == 777
    assert chunk_rows(stats, None, "t", None, 2) == CHUNK_BYTES // 64
    unknown: Any = _Stats(None, 10**9)
    assert chunk_rows(unknown, None, "t", None, 2) == DEFAULT_CHUNK_ROWS
    # Values stored compressed: the width once read sizes the chunk, with or without counts.
    compressed: Any = _Stats(5_000_000, 5_000_000 * 64, sampled=64 * 1024)
    assert chunk_rows(compressed, None, "t", None, 2) == 2 * CHUNK_BYTES // (64 * 1024)
    assert chunk_rows(_Stats(None, None, sampled=2**20), None, "t", None, 2) == 32
