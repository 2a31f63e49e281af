"""A composite key splits on its leading integer alone only where no range would hold far
more than a chunk: the statistics' average rows per value hides one tenant with half the
table, the planner's estimate of each range does not."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import MetaData, Table, func, select, text

from ferry.data.chunks import plan_ranges, range_predicate, rows_per_leading
from ferry.db.target import Target, open_url
from tests.conftest import new_database

pytestmark = pytest.mark.integration

ROWS_PER_CHUNK = 2_000


@pytest.fixture(params=["postgresql", "mysql"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    url, drop = new_database(request.param, tmp_path)
    target = open_url("source", url)
    yield target
    target.dispose()
    drop()


def _fill(source: Target, big_tenant_rows: int) -> None:
    postgres = source.adapter.name == "postgresql"

    def numbers(count: int) -> str:  # a column `n` of 1..count
        return (
            f"generate_series(1, {count}) AS g(n)"
            if postgres
            else f"(SELECT seq AS n FROM seq_1_to_{count}) AS g"
        )

    with source.connect() as conn:
        conn.execute(
            text(
                "CREATE TABLE usage_rows (tenant INTEGER NOT NULL, id INTEGER NOT NULL, "
                "v INTEGER, PRIMARY KEY (tenant, id))"
            )
        )
        # 4,000 tenants of 3 rows each, and tenant 1 holding `big_tenant_rows`.
        conn.execute(
            text(
                f"INSERT INTO usage_rows SELECT 2 + FLOOR((n - 1) / 3), n, 0 FROM {numbers(12_000)}"
            )
        )
        if big_tenant_rows:
            conn.execute(
                text(f"INSERT INTO usage_rows SELECT 1, n, 0 FROM {numbers(big_tenant_rows)}")
            )
        conn.execute(text("ANALYZE usage_rows" if postgres else "ANALYZE TABLE usage_rows"))
        conn.commit()


def _plan(source: Target) -> tuple[list[int], int]:
    """(rows per range, length of the bounds) of the plan."""
    with source.connect() as conn:
        table = Table("usage_rows", MetaData(), autoload_with=conn)
        key = ["tenant", "id"]
        ranges = plan_ranges(
            conn,
            table,
            key,
            rows_per_chunk=ROWS_PER_CHUNK,
            rows_per_leading=rows_per_leading(source.adapter, conn, "usage_rows", key),
            explain=partial(source.adapter.explain_rows, conn),
        )
        sizes = []
        for chunk in ranges:
            query = select(func.count()).select_from(table)
            predicate = range_predicate(table, key, chunk)
            if predicate is not None:
                query = query.where(predicate)
            sizes.append(int(conn.execute(query).scalar_one()))
        widths = {len(r.hi) for r in ranges if r.hi is not None}
        conn.commit()
    return sizes, max(widths)


def test_an_even_key_splits_on_its_leading_column(source: Target) -> None:
    _fill(source, big_tenant_rows=0)
    sizes, width = _plan(source)
    assert width == 1
    assert sum(sizes) == 12_000
    assert max(sizes) <= 2 * ROWS_PER_CHUNK


def test_one_tenant_with_half_the_rows_is_split_on_the_whole_key(source: Target) -> None:
    _fill(source, big_tenant_rows=12_000)
    sizes, width = _plan(source)
    assert width == 2
    assert sum(sizes) == 24_000
    assert max(sizes) <= ROWS_PER_CHUNK
