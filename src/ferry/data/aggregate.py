"""Aggregate tables: summaries computed from copied rows, in Arrow, in bounded memory.

The copied table is read back from the target in pages by its primary key (one query each:
a single streamed query would be read ahead whole by connectorx); each page is grouped and
reduced to partial sums and counts, partials are merged as they come, and averages are taken
at the end. Memory grows with the number of groups, not rows (a table without a primary key
is streamed in one query, which connectorx may read ahead). The summary is rebuilt whole on every
run, in one transaction, so it always matches the rows it summarises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Column, MetaData, Table, delete, inspect, select

from ferry.data.chunks import KeyRange, range_predicate
from ferry.data.extract import stream_select
from ferry.data.spec import MEASURE, AggregateSpec
from ferry.data.stream import key_pages
from ferry.data.transform import DataError
from ferry.data.types import ARROW_ERRORS, sa_type_for_arrow
from ferry.db.target import Target
from ferry.errors import ConfigError


@dataclass(frozen=True)
class AggregateReport:
    table: str
    source: str
    groups: int
    rows_read: int


def _measures(spec: AggregateSpec) -> list[tuple[str, str, str]]:
    """(output, function, column or '*') for each measure."""
    found = []
    for name, text in spec.measures.items():
        match = MEASURE.match(text.strip())
        assert match is not None  # validated with the spec
        found.append((name, match.group(1).lower(), match.group(2)))
    return found


#: Rows per page read back from the summarised table.
READ_ROWS = 65_536


def _batches(target: Target, table: Table, columns: list[str]) -> Any:
    key = [c.name for c in table.primary_key.columns]
    if not key:
        return stream_select(target, select(*[table.c[c] for c in columns]), READ_ROWS)
    wanted = [table.c[c] for c in dict.fromkeys([*columns, *key])]
    order = [table.c[k] for k in key]

    def ranged(lo: list[Any] | None, hi: list[Any] | None) -> Any:
        query = select(*wanted).order_by(*order)
        predicate = range_predicate(table, key, KeyRange(0, lo, hi))
        return query if predicate is None else query.where(predicate)

    return key_pages(target, ranged, key, READ_ROWS, None, unique=True)


def build(target: Target, name: str, spec: AggregateSpec, *, key: str) -> AggregateReport:
    """Compute the aggregate `name` and replace its rows in the target.

    Raises:
        ConfigError: the source table or a column does not exist in the target.
    """
    meta = MetaData()
    with target.connect() as conn:
        if not inspect(conn).has_table(spec.from_):
            raise ConfigError(
                f"aggregate source `{spec.from_}` is not a table in the target", key=f"{key}.from"
            )
        source = Table(spec.from_, meta, autoload_with=conn)
    from ferry.data.expressions import compile_expression  # sqlglot: only when used

    groups = {out: compile_expression(text) for out, text in spec.group_by.items()}
    measures = _measures(spec)
    needed = set().union(*(g.columns() for g in groups.values()))
    needed |= {col for _, _, col in measures if col != "*"}
    lowered = {c.name.lower(): c.name for c in source.columns}
    missing = sorted(c for c in needed if c.lower() not in lowered)
    if missing:
        raise ConfigError(
            f"`{spec.from_}` has no column {', '.join(missing)}",
            key=key,
            hint="group_by and measures name the target table's columns",
        )
    columns = sorted({lowered[c.lower()] for c in needed})
    parts = _partials(measures)
    keys = list(groups)
    partial: pa.Table | None = None
    rows_read = 0
    pages = iter(_batches(target, source, columns))
    while True:
        batch = next(pages, None)
        if batch is None:
            if partial is not None:
                break
            # No rows: an empty page typed like the table, so the summary's columns get
            # the types rows would give them (not text and floats a later run inherits).
            batch = pa.table({c: pa.array([], _arrow(source.c[c].type)) for c in columns})
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        rows_read += table.num_rows
        work: dict[str, Any] = {out: expr.evaluate(table) for out, expr in groups.items()}
        for part, _, _, col, as_float in parts:
            values = (
                pa.array(np.ones(table.num_rows, dtype=np.int64))
                if col == "*"
                else table[lowered[col.lower()]]
            )
            work[part] = pc.cast(values, pa.float64()) if as_float else values
        grouped = _group(pa.table(work), keys, [(p, fn) for p, fn, _, _, _ in parts])
        if partial is not None:
            grouped = _group(
                # a page the driver read may type an all-NULL column as null
                pa.concat_tables([partial, grouped], promote_options="permissive"),
                keys,
                [(p, merge) for p, _, merge, _, _ in parts],
            )
        partial = grouped
    result = _finish(partial, keys, measures)
    _write(target, name, result)
    return AggregateReport(name, spec.from_, result.num_rows, rows_read)


def _partials(measures: list[tuple[str, str, str]]) -> list[tuple[str, str, str, str, bool]]:
    """(partial column, per-batch function, merge function, input column, as float)."""
    parts = []
    for out, fn, col in measures:
        if fn == "avg":
            parts += [
                (f"__{out}_s", "sum", "sum", col, True),
                (f"__{out}_n", "count", "sum", col, False),
            ]
        elif fn == "count":
            parts.append((f"__{out}", "sum" if col == "*" else "count", "sum", col, False))
        else:
            parts.append((f"__{out}", fn, fn, col, False))
    return parts


def _group(table: pa.Table, keys: list[str], functions: list[tuple[str, str]]) -> pa.Table:
    grouped = table.group_by(keys).aggregate(functions)
    renamed = {f"{column}_{fn}": column for column, fn in functions}
    return grouped.rename_columns([renamed.get(c, c) for c in grouped.column_names])


def _finish(
    partial: pa.Table | None, keys: list[str], measures: list[tuple[str, str, str]]
) -> pa.Table:
    if partial is None:
        return pa.table(
            {k: pa.array([], pa.string()) for k in keys}
            | {out: pa.array([], pa.float64()) for out, _, _ in measures}
        )
    columns: dict[str, Any] = {k: partial[k] for k in keys}
    for out, fn, _ in measures:
        if fn == "avg":
            columns[out] = pc.divide(
                partial[f"__{out}_s"], pc.cast(partial[f"__{out}_n"], pa.float64())
            )
        else:
            columns[out] = partial[f"__{out}"]
    return pa.table(columns)


def _write(target: Target, name: str, result: pa.Table) -> None:
    meta = MetaData()
    with target.connect() as conn:
        exists = inspect(conn).has_table(name)
        conn.commit()
        with conn.begin():
            if exists:
                table = Table(name, meta, autoload_with=conn)
                missing = [c for c in result.column_names if c not in table.c]
                if missing:
                    raise ConfigError(
                        f"aggregate table `{name}` has no column {', '.join(missing)}",
                        key=f"aggregates.{name}",
                    )
                result = _fitted(name, table, result)
                conn.execute(delete(table))
            else:
                table = Table(
                    name, meta, *[Column(f.name, sa_type_for_arrow(f.type)) for f in result.schema]
                )
                table.create(conn)
            target.adapter.bulk_insert(conn, table, result)


def _fitted(name: str, table: Table, result: pa.Table) -> pa.Table:
    """The summary in the existing table's column types; a NULL group or measure its column
    refuses, or a value its type cannot hold, is a DataError naming the column (before the
    old summary is deleted), not the driver's error halfway through the load."""
    hint = (
        "the table keeps its previous rows; widen or relax the column in a migration, or "
        "filter the rows the summary reads"
    )
    columns = {}
    for column_name in result.column_names:
        column = table.c[column_name]
        values = result[column_name]
        if not column.nullable and values.null_count:
            raise DataError(
                f"aggregate `{name}`: {values.null_count} group(s) have NULL in "
                f"`{column_name}`, which the table's column refuses (NOT NULL)",
                hint=hint,
            )
        try:
            columns[column_name] = values.cast(_arrow(column.type))
        except ARROW_ERRORS as error:
            reason = str(error).strip().splitlines()[0]
            raise DataError(
                f"aggregate `{name}`: column `{column_name}` ({column.type}) cannot hold the "
                f"summary's values: {reason}",
                hint=hint,
            ) from error
    return pa.table(columns)


def _arrow(column_type: Any) -> pa.DataType:
    from ferry.data.types import arrow_type

    return arrow_type(column_type)
