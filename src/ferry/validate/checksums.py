"""Checksums computed inside each database, on key ranges, like data-diff.

Both sides render every compared value as canonical text (`Adapter.checksum_text`: decimals
without trailing zeros, floats exactly, timestamps to microseconds in UTC, booleans as 1/0),
and each range is summarised as (row count, sum of 60 bits of each row's MD5). Equal
summaries prove a range equal without moving a row; a range whose summaries differ is split
by its keys and checked again, down to ranges small enough to read and compare row by row
(`ferry.validate.data`), which names the keys. Canonical text only decides speed, never the
verdict: a value two engines print differently sends its range down to the row comparison,
which canonicalises in Arrow.

This path serves tables whose job transforms keep values as they are (renames, column
filters, row filters, type mapping); value maps, null defaults, validation, derived columns
and de-duplication change rows in Arrow, so such tables are compared row by row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, and_, literal_column, select, text
from sqlalchemy import types as sat

from ferry.data.chunks import KeyRange, plan_ranges, range_predicate
from ferry.data.extract import key_stream
from ferry.data.tables import TablePlan
from ferry.data.transform import Transformer
from ferry.db.adapter import CanonKind, ChecksumPart
from ferry.db.target import Target
from ferry.validate.compare import Canon

#: Ranges with at most this many rows (on the larger side) are compared row by row.
LEAF_ROWS = 2_000
#: A differing range is split into this many parts at each level.
FAN_OUT = 16


#: Type families in the order they are tried: Float before Numeric, its base class.
_KINDS: tuple[tuple[type, CanonKind], ...] = (
    (sat.Boolean, "bool"),
    (sat.Integer, "int"),
    (sat.Float, "float"),
    (sat.Numeric, "decimal"),
    (sat.DateTime, "timestamp"),
    (sat.Date, "date"),
    (sat.Uuid, "uuid"),
    (sat._Binary, "bytes"),
    (sat.String, "string"),
)


def canon_kind(column_type: Any) -> CanonKind:
    """The canonical family of a (target) column type."""
    return next((kind for base, kind in _KINDS if isinstance(column_type, base)), "other")


def keeps_values(transformer: Transformer) -> bool:
    """The job copies this table's values as they are (only renamed, filtered, retyped)."""
    return not (
        transformer.value_maps
        or any(rule.action != "preserve" for rule in transformer.null_rules.values())
        or transformer.validations
        or transformer.derived
        or transformer.deduper is not None
    )


@dataclass(frozen=True)
class Summary:
    rows: int
    checksum: int


@dataclass
class Side:
    """One database's half of a table comparison: its table, key and canonical texts."""

    target: Target
    table: Table
    key: list[str]
    texts: list[ChecksumPart]
    where: Any = None  # the job's row filter, on the source side

    def summarise(self, chunk: KeyRange) -> Summary:
        adapter = self.target.adapter
        query = select(
            literal_column("count(*)", sat.BigInteger()),
            literal_column(adapter.row_checksum_sql(self.texts), sat.Numeric()),
        ).select_from(self.table)
        for predicate in (self.where, range_predicate(self.table, self.key, chunk)):
            if predicate is not None:
                query = query.where(predicate)
        with self.target.connect() as conn:
            for statement in adapter.checksum_session_sql():
                conn.exec_driver_sql(statement)
            rows, checksum = conn.execute(query).one()
        return Summary(int(rows), int(checksum or 0))

    def split(self, chunk: KeyRange, rows: int) -> list[KeyRange]:
        """Parts of `chunk` of about rows / FAN_OUT rows each, bounded by this side's keys."""
        predicate = range_predicate(self.table, self.key, chunk)
        parts = [p for p in (self.where, predicate) if p is not None]
        with self.target.connect() as conn:
            pieces = plan_ranges(
                conn,
                self.table,
                self.key,
                rows_per_chunk=max(LEAF_ROWS // 2, rows // FAN_OUT),
                where=and_(*parts) if parts else None,
                stream=key_stream(self.target),
            )
        # plan_ranges leaves the outer ends open: close them at the parent's bounds.
        return [
            KeyRange(
                chunk.index,
                piece.lo if piece.lo is not None else chunk.lo,
                piece.hi if piece.hi is not None else chunk.hi,
            )
            for piece in pieces
        ]


def sides(
    source: Target, target: Target, plan: TablePlan, canon: Canon
) -> tuple[Side, Side] | None:
    """The two halves of an in-database comparison of `plan`'s table, or None where either
    database cannot checksum inside."""
    source_quote = source.engine.dialect.identifier_preparer.quote
    target_quote = target.engine.dialect.identifier_preparer.quote
    source_texts: list[ChecksumPart] = []
    target_texts: list[ChecksumPart] = []
    for source_name, target_name in plan.mapping.items():
        if target_name not in plan.target.c:
            continue
        kind = canon_kind(plan.target.c[target_name].type)
        if canon_kind(plan.source.c[source_name].type) == "bool":
            kind = "bool"  # a boolean kept in MariaDB's TINYINT(1)
        left = source.adapter.checksum_text(
            source_quote(source_name), plan.source.c[source_name].type, kind
        )
        right = target.adapter.checksum_text(
            target_quote(target_name), plan.target.c[target_name].type, kind
        )
        if left is None or right is None:
            return None
        if kind == "string" and canon.ignore_trailing_spaces:
            left, right = f"rtrim({left})", f"rtrim({right})"
        if kind == "string" and canon.ignore_case:
            left, right = f"lower({left})", f"lower({right})"
        free = kind in ("string", "bytes", "other")
        nullable = bool(plan.source.c[source_name].nullable or plan.target.c[target_name].nullable)
        source_texts.append(ChecksumPart(left, nullable, free))
        target_texts.append(ChecksumPart(right, nullable, free))
    where = text(f"({plan.spec.where})").self_group() if plan.spec.where else None
    target_key = [plan.mapping[k] for k in plan.key]
    return (
        Side(source, plan.source, plan.key, source_texts, where),
        Side(target, plan.target, target_key, target_texts),
    )


@dataclass
class Located:
    """What the checksums proved, and the small ranges left to compare row by row."""

    equal_rows: int = 0  # rows in ranges whose checksums matched
    ranges: int = 0  # ranges summarised on both sides
    leaves: list[KeyRange] = field(default_factory=list)


def locate(
    pair: tuple[Side, Side],
    ranges: list[KeyRange],
    run: Callable[[Callable[[tuple[Side, KeyRange]], Summary], list[Any]], list[Summary]],
) -> Located:
    """Summarise `ranges` on both sides and bisect those that differ down to leaves.

    `run` maps a function over (side, range) pairs (a thread pool's map): each level of the
    descent runs its summaries side by side, both databases at once.
    """
    source, target = pair
    found = Located()
    level = ranges
    while level:
        found.ranges += len(level)
        work = [(side, chunk) for chunk in level for side in (source, target)]
        done = run(lambda job: job[0].summarise(job[1]), work)
        differing: list[tuple[KeyRange, int, int]] = []
        for chunk, left, right in zip(level, done[0::2], done[1::2], strict=True):
            if left == right:
                found.equal_rows += left.rows
            else:
                differing.append((chunk, left.rows, right.rows))
        next_level: list[KeyRange] = []
        for chunk, left_rows, right_rows in differing:
            rows = max(left_rows, right_rows)
            if rows <= LEAF_ROWS:
                found.leaves.append(chunk)
                continue
            # Split by the side with more rows: extra rows on either side get narrowed too.
            parts = (source if left_rows >= right_rows else target).split(chunk, rows)
            if len(parts) <= 1:
                found.leaves.append(chunk)
            else:
                next_level.extend(parts)
        level = next_level
    return found
