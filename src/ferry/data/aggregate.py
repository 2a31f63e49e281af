"""Aggregate tables: summaries computed from copied rows, in Arrow, in bounded memory.

The copied table is read back from the target in batches; each batch is grouped and reduced
to partial sums and counts, partials are merged as they come, and averages are taken at the
end. Memory grows with the number of groups, not rows. The summary is rebuilt whole on every
run, in one transaction, so it always matches the rows it summarises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Column, MetaData, Table, delete, inspect, select

from ferry.data.extract import stream_select
from ferry.data.spec import MEASURE, AggregateSpec
from ferry.data.types import sa_type_for_arrow
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


def _batches(target: Target, table: Table, columns: list[str]) -> Any:
    return stream_select(target, select(*[table.c[c] for c in columns]), 200_000)


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
    for batch in _batches(target, source, columns):
        table = pa.Table.from_batches([batch])
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
                pa.concat_tables([partial, grouped]),
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
                conn.execute(delete(table))
                result = result.cast(
                    pa.schema([pa.field(c, _arrow(table.c[c].type)) for c in result.column_names])
                )
            else:
                table = Table(
                    name, meta, *[Column(f.name, sa_type_for_arrow(f.type)) for f in result.schema]
                )
                table.create(conn)
            target.adapter.bulk_insert(conn, table, result)


def _arrow(column_type: Any) -> pa.DataType:
    from ferry.data.types import arrow_type

    return arrow_type(column_type)
