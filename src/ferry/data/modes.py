"""Extraction modes beyond a full copy: incremental windows on a cursor column, and samples.

Incremental: each run copies rows with `last <= cursor <= high`, where `high` is the cursor's
maximum when the run planned its chunks; `last` is kept in the target's checkpoint table.
Samples are decided per chunk from a seed, so a resumed run samples the same rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Column, Connection, and_, func, or_, select, text
from sqlalchemy import types as sat
from sqlalchemy.sql.elements import ColumnElement

from ferry.data.chunks import KeyRange
from ferry.data.spec import Mode, SampleMethod
from ferry.data.tables import TablePlan
from ferry.data.types import ARROW_ERRORS
from ferry.db.adapter import adapter_for_dialect


@dataclass(frozen=True)
class Window:
    """Cursor bounds of one incremental run (JSON-encoded values as stored)."""

    last: str | None
    high: str | None

    def predicate(self, column: Column[Any]) -> ColumnElement[bool] | None:
        adapter = adapter_for_dialect(str(column.table.info.get("ferry_dialect", "")))()
        parts = []
        if self.last is not None:
            # >=: a row written in the same tick as the last run's maximum (a DATETIME keeps
            # whole seconds) carries that maximum too. The tied rows are copied again,
            # which the upsert of an increment makes harmless (at least once, as Airbyte).
            left, last = adapter.ordered(column, decode(column, self.last))
            parts.append(left >= last)
        if self.high is not None:
            left, high = adapter.ordered(column, decode(column, self.high))
            upper = left <= high
            # The first run also takes rows whose cursor was never set.
            parts.append(upper if self.last is not None else or_(upper, column.is_(None)))
        return and_(*parts) if parts else None


def encode(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return json.dumps(value.isoformat())
    if isinstance(value, Decimal):
        return json.dumps(str(value))
    return json.dumps(value)


def decode(column: Column[Any], raw: str) -> Any:
    value = json.loads(raw)
    if isinstance(column.type, sat.DateTime):
        return datetime.fromisoformat(value)
    if isinstance(column.type, sat.Date):
        return date.fromisoformat(value)
    if isinstance(column.type, sat.Numeric) and not isinstance(column.type, sat.Float):
        return Decimal(value)
    return value


def current_high(conn: Connection, plan: TablePlan) -> str | None:
    assert plan.spec.cursor is not None
    column = plan.source.c[plan.spec.cursor]
    query = select(func.max(column)).select_from(plan.source)
    if plan.spec.where:
        query = query.where(text(f"({plan.spec.where})"))
    return encode(conn.execute(query).scalar())


def source_rows(conn: Connection, plan: TablePlan) -> int:
    query = select(func.count()).select_from(plan.source)
    if plan.spec.where:
        query = query.where(text(f"({plan.spec.where})"))
    return int(conn.execute(query).scalar() or 0)


@dataclass(frozen=True)
class Strata:
    #: Rows per stratum, keyed by the source's value (None: the NULL stratum).
    counts: dict[Any, int]
    #: One key per stratum (its smallest) that every stratified sample keeps: a value for
    #: a one-column key, a tuple for a composite one.
    anchors: list[Any]


def strata_counts(conn: Connection, plan: TablePlan, by: str) -> Strata:
    column = plan.source.c[by]
    measures: list[Any] = [func.count()]
    single_key = len(plan.key) == 1
    if single_key:
        measures.append(func.min(plan.source.c[plan.key[0]]))
    query = select(column, *measures).select_from(plan.source).group_by(column)
    if plan.spec.where:
        query = query.where(text(f"({plan.spec.where})"))
    counts: dict[Any, int] = {}
    anchors: list[Any] = []
    for row in conn.execute(query):
        counts[row[0]] = int(row[1])
        if single_key:
            anchors.append(row[2])
    if plan.key and not single_key:
        anchors = _composite_anchors(conn, plan, by)
    return Strata(counts, anchors)


def _composite_anchors(conn: Connection, plan: TablePlan, by: str) -> list[tuple[Any, ...]]:
    """Each stratum's smallest composite key: MIN() takes one column at a time, so a
    window numbers each stratum's rows in key order and the first is kept."""
    keys = [plan.source.c[k] for k in plan.key]
    first = func.row_number().over(partition_by=plan.source.c[by], order_by=keys)
    inner = select(*[k.label(f"k{i}") for i, k in enumerate(keys)], first.label("n"))
    if plan.spec.where:
        inner = inner.where(text(f"({plan.spec.where})"))
    numbered = inner.select_from(plan.source).subquery()
    query = select(*[numbered.c[f"k{i}"] for i in range(len(keys))]).where(numbered.c.n == 1)
    return [tuple(row) for row in conn.execute(query)]


class Sampler:
    """Which rows of a chunk belong to the sample (deterministic per chunk)."""

    def __init__(self, plan: TablePlan, total: int, strata: Strata | None) -> None:
        assert plan.spec.sample is not None
        self.plan = plan
        self.sample = plan.spec.sample
        if self.sample.percent is not None:
            self.fraction = self.sample.percent / 100
        else:
            self.fraction = min(1.0, (self.sample.rows or 0) / total) if total else 0.0
        self.strata = strata.counts if strata else {}
        self.anchors = strata.anchors if strata else []

    def _rng(self, chunk: KeyRange) -> np.random.Generator:
        seed = hashlib.sha256(f"{self.sample.seed}:{self.plan.name}:{chunk.index}".encode())
        return np.random.default_rng(int.from_bytes(seed.digest()[:8], "big"))

    def _systematic(self, batch: pa.Table, chunk: KeyRange) -> pa.Array:
        """Every (1/fraction)-th row, also for a fraction whose interval is no whole number:
        row p (1-based) is kept when floor(p * fraction) steps up, so 75 % keeps three rows
        of four, not every row.

        A chunk of consecutive integer keys counts positions by the key itself: the same
        rows whatever the chunking (ids 10, 20, 30 ... at 10 %). Any other chunk (gaps in
        the keys, as with ids stepped by 10, or a key that is no integer) counts its rows
        from a start drawn from the seed, so keys in step with the interval cannot make
        the sample all or nothing.
        """
        n = batch.num_rows
        if self.fraction >= 1:
            return pa.array(np.ones(n, dtype=bool))
        if self.fraction <= 0 or n == 0:
            return pa.array(np.zeros(n, dtype=bool))
        share = Fraction(self.fraction).limit_denominator(1_000_000)
        num, den = share.numerator, share.denominator
        key = self.plan.key[0] if len(self.plan.key) == 1 else None
        positions: np.ndarray[Any, np.dtype[np.int64]] | None = None
        if key is not None and pa.types.is_integer(batch[key].type):
            keys = batch[key].to_numpy().astype(np.int64)
            if len(np.unique(keys)) == n and int(keys.max()) - int(keys.min()) + 1 == n:
                positions = keys
        if positions is None:
            start = int(self._rng(chunk).integers(den))
            positions = np.arange(start + 1, start + n + 1, dtype=np.int64)
        # floor(p * num / den) depends on p modulo den only: no overflow for large keys.
        p = np.mod(positions, den)
        return pa.array((p * num) // den > ((p - 1) * num) // den)

    def keep(self, batch: pa.Table, chunk: KeyRange) -> pa.Array:
        n = batch.num_rows
        method = self.sample.method
        if method is SampleMethod.SYSTEMATIC:
            return self._systematic(batch, chunk)
        draws = self._rng(chunk).random(n)
        if method is SampleMethod.RANDOM or not self.sample.by:
            return pa.array(draws < self.fraction)
        # Stratified: each stratum keeps its share, and even a small one keeps a row.
        values = batch[self.sample.by]
        anchored = bool(self.anchors)
        fractions = {}
        for stratum, count in self.strata.items():
            wanted = max(1, round(count * self.fraction))  # each stratum's share, at least 1
            if anchored:  # one row is the anchor; the rest are drawn from the others
                fractions[stratum] = (wanted - 1) / (count - 1) if count > 1 else 0.0
            elif count:
                fractions[stratum] = min(1.0, wanted / count)
        value_set = _value_set(list(fractions), values.type)
        if value_set is None:  # no common type: both sides as text
            values = pc.cast(values, pa.string())
            value_set = pa.array([None if v is None else str(v) for v in fractions], pa.string())
        index = pc.index_in(values, value_set=value_set)
        shares = pc.take(pa.array(list(fractions.values()), pa.float64()), index)
        per_row = pc.fill_null(shares, self.fraction).to_numpy(zero_copy_only=False)
        chosen = pa.array(draws < per_row)
        if anchored:
            # Even a stratum smaller than one sampled row keeps one: its smallest key.
            chosen = pc.or_(chosen, self._anchor_rows(batch))
        return chosen

    def _anchor_rows(self, batch: pa.Table) -> pa.Array:
        key = self.plan.key
        if len(key) == 1:
            anchors = pa.array(self.anchors).cast(batch[key[0]].type)
            return pc.is_in(batch[key[0]], value_set=anchors)
        # A composite key matches as one text: its columns, each as the batch holds it,
        # joined by a separator no key text contains.
        columns = [
            pa.array([anchor[i] for anchor in self.anchors]).cast(batch[k].type)
            for i, k in enumerate(key)
        ]
        wanted = _joined([pc.cast(c, pa.string()) for c in columns])
        rows = _joined([pc.cast(batch[k], pa.string()) for k in key])
        return pc.fill_null(pc.is_in(rows, value_set=wanted), False)


def _joined(texts: list[Any]) -> Any:
    return pc.binary_join_element_wise(*texts, "\x1f")


def _value_set(values: list[Any], kind: pa.DataType) -> pa.Array | None:
    """Strata values as the batch's column holds them, so each row finds its own stratum
    (as text, a boolean stratum read `True` against a column's `true`); NULL matches NULL.
    None where they have no common type."""
    try:
        return pa.array(values).cast(kind)
    except ARROW_ERRORS:
        return None


def is_incremental(plan: TablePlan) -> bool:
    return plan.spec.mode is Mode.INCREMENTAL


def is_sample(plan: TablePlan) -> bool:
    return plan.spec.mode is Mode.SAMPLE
