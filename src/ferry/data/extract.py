"""Reading one chunk of a source table into Arrow.

connectorx (Rust) reads straight into Arrow buffers where it serves the database; otherwise
rows come through SQLAlchemy. Chunks are keyset ranges, read in key order.
"""

from __future__ import annotations

from typing import Any

import connectorx as cx
import pyarrow as pa
from sqlalchemy import Select, select, text

from ferry.data.chunks import KeyRange, range_predicate
from ferry.data.tables import TablePlan
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
) -> pa.Table:
    """Rows of one chunk; `extra` adds a predicate (an incremental window)."""
    query = chunk_query(source, plan, chunk, descending=descending, extra=extra)
    url = source.adapter.connectorx_url(source.url)
    if url is not None:
        try:
            table = cx.read_sql(url, render(source, query), return_type="arrow")
        except BaseException as error:  # connectorx panics are BaseExceptions
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            # connectorx cannot type some columns (SQLite's per-row types, NULL-only
            # columns): the same query through the driver reads them.
            table = None
        if isinstance(table, pa.Table):
            return _unify(table)
    with source.connect() as conn:
        result = conn.execute(query)
        names = list(result.keys())
        rows = result.fetchall()
    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})


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


def read_select(source: Target, query: Select[Any]) -> pa.Table:
    """Any SELECT into Arrow: connectorx where it serves, else the driver."""
    url = source.adapter.connectorx_url(source.url)
    if url is not None:
        try:
            table = cx.read_sql(url, render(source, query), return_type="arrow")
            if isinstance(table, pa.Table):
                return _unify(table)
        except BaseException as error:  # connectorx panics are BaseExceptions
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
    with source.connect() as conn:
        result = conn.execute(query)
        names = list(result.keys())
        rows = result.fetchall()
    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})
