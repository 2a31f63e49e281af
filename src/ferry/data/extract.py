"""Reading one chunk of a source table into Arrow.

connectorx (Rust) reads straight into Arrow buffers where it serves the database; otherwise
rows come through SQLAlchemy. Chunks are keyset ranges, read in key order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import connectorx as cx
import pyarrow as pa
from sqlalchemy import Connection, Select, select, text

from ferry.data.chunks import (
    DEFAULT_CHUNK_ROWS,
    KeyRange,
    KeyStream,
    KeyStreamError,
    plan_ranges,
    range_predicate,
    rows_per_leading,
)
from ferry.data.tables import TablePlan
from ferry.data.types import ARROW_ERRORS
from ferry.db.target import Target


def chunk_query(
    source: Target,
    plan: TablePlan,
    chunk: KeyRange,
    *,
    descending: bool = False,
    extra: Any = None,
) -> Select[Any]:
    table = plan.source
    extras = [plan.spec.sample.by] if plan.spec.sample and plan.spec.sample.by else []
    wanted = list(dict.fromkeys([*plan.mapping, *plan.key, *extras]))
    columns = [source.adapter.read_expression(table.c[name]) for name in wanted]
    query = select(*columns).select_from(table)
    if plan.spec.where:
        query = query.where(text(f"({plan.spec.where})"))
    if extra is not None:
        query = query.where(extra)
    predicate = range_predicate(table, plan.key, chunk)
    if predicate is not None:
        query = query.where(predicate)
    if plan.key:
        keys = [table.c[k] for k in plan.key]
        query = query.order_by(*[k.desc() for k in keys] if descending else keys)
    return query


def render(source: Target, query: Select[Any]) -> str:
    """SQL text with values inlined by the dialect's own literal rendering."""
    return str(query.compile(dialect=source.engine.dialect, compile_kwargs={"literal_binds": True}))


def read_chunk(
    source: Target,
    plan: TablePlan,
    chunk: KeyRange,
    *,
    descending: bool = False,
    extra: Any = None,
    fast: bool = True,
    unserved: Callable[[str], None] | None = None,
) -> pa.Table:
    """Rows of one chunk; `extra` adds a predicate (an incremental window). See
    :func:`read_select` for `fast` and `unserved`."""
    query = chunk_query(source, plan, chunk, descending=descending, extra=extra)
    return read_select(source, query, fast=fast, unserved=unserved)


def _unify(table: pa.Table) -> pa.Table:
    """connectorx hands out large_string/large_binary; the pipeline speaks plain ones."""
    fields = []
    changed = False
    for field in table.schema:
        if pa.types.is_large_string(field.type):
            fields.append(field.with_type(pa.string()))
            changed = True
        elif pa.types.is_large_binary(field.type):
            fields.append(field.with_type(pa.binary()))
            changed = True
        else:
            fields.append(field)
    return table.cast(pa.schema(fields)) if changed else table


def _connectorx(source: Target, query: Select[Any], **options: Any) -> Any:
    """connectorx's answer to a query, or None where it cannot serve it."""
    return _try_connectorx(source, query, **options)[0]


def _try_connectorx(source: Target, query: Select[Any], **options: Any) -> tuple[Any, str]:
    """connectorx's answer to a query, or None and why it could not serve it: columns it
    cannot type (PostgreSQL's interval or money, SQLite's per-row types, NULL-only columns)
    or a query it cannot be given. No reason where the database has no connectorx reader."""
    url = source.adapter.connectorx_url(source.url)
    if url is None:
        return None, ""
    try:
        return cx.read_sql(url, render(source, query), **options), ""
    except BaseException as error:  # connectorx panics are BaseExceptions
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        lines = str(error).strip().splitlines()
        return None, lines[0] if lines else type(error).__name__


def _driver_rows(names: list[str], rows: Any) -> pa.Table:
    """The slow path's rows as a table (only when connectorx cannot serve the query)."""
    return pa.table({name: _column([row[i] for row in rows]) for i, name in enumerate(names)})


def _column(values: list[Any]) -> pa.Array:
    """Python values as one Arrow column; values no Arrow type of theirs holds (a BIGINT
    UNSIGNED past int64, a decimal NaN or one wider than 38 digits) as their text, which
    the cast to the target column's type then takes or rejects row by row."""
    try:
        return pa.array(values)
    except (*ARROW_ERRORS, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def read_select(
    source: Target,
    query: Select[Any],
    *,
    fast: bool = True,
    unserved: Callable[[str], None] | None = None,
) -> pa.Table:
    """Any SELECT into Arrow: connectorx where it serves, else the driver. `fast=False`
    goes to the driver at once (connectorx already refused this table); `unserved` hears
    why connectorx refused."""
    # A checkout (pinged) first: where the source is gone it fails at once, while
    # connectorx's pool would retry the connection for 30 s.
    with source.connect():
        pass
    if fast:
        table, reason = _try_connectorx(source, query, return_type="arrow")
        if isinstance(table, pa.Table):
            return _unify(table)
        if reason and unserved is not None:
            unserved(reason)
    with source.connect() as conn:
        result = conn.execute(query)
        return _driver_rows(list(result.keys()), result.fetchall())


def source_ranges(
    source: Target,
    conn: Connection,
    plan: TablePlan,
    *,
    rows_per_chunk: int,
    where: Any = None,
) -> list[KeyRange]:
    """The key ranges a copy (and its dry run, and verify) splits a source table into: the
    statistics' row estimate where no `where` narrows the table (an exact count for small
    tables, for even chunks), key columns streamed through connectorx, a composite key
    split on its leading column where the statistics and the planner allow it."""
    adapter = source.adapter
    estimate = None if where is not None else adapter.estimated_rows(conn, plan.source.name)
    if estimate is not None and estimate < DEFAULT_CHUNK_ROWS:
        estimate = None
    return plan_ranges(
        conn,
        plan.source,
        plan.key,
        rows_per_chunk=rows_per_chunk,
        where=where,
        estimate=estimate,
        stream=key_stream(source),
        rows_per_leading=rows_per_leading(adapter, conn, plan.source.name, plan.key),
        explain=partial(adapter.explain_rows, conn),
    )


#: Rows per batch when a table's keys are read to plan its chunks (two or three columns).
KEY_BATCH_ROWS = 262_144


def key_stream(source: Target) -> KeyStream:
    """Key columns read through connectorx, for `plan_ranges`; None where connectorx cannot
    serve the query (the window function in the database then does it, not Python rows)."""

    def stream(query: Select[Any]) -> Iterator[pa.RecordBatch] | None:
        reader = _connectorx(source, query, return_type="arrow_stream", batch_size=KEY_BATCH_ROWS)
        return None if reader is None else _guarded(reader)

    return stream


def _guarded(reader: Any) -> Iterator[pa.RecordBatch]:
    """connectorx panics part-way on values it cannot type (a MySQL zero date in a key)."""
    try:
        yield from reader
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        raise KeyStreamError(str(error)) from error


def stream_select(source: Target, query: Select[Any], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Any SELECT as a stream of record batches of about `batch_rows` rows."""
    reader = _connectorx(source, query, return_type="arrow_stream", batch_size=batch_rows)
    if reader is not None:
        yield from reader
        return
    with source.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(query)
        names = list(result.keys())
        while rows := result.fetchmany(batch_rows):
            yield from _driver_rows(names, rows).to_batches()
