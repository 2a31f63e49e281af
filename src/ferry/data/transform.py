"""Per-batch transforms on Arrow tables: rename, map values, handle nulls, validate, derive,
de-duplicate, cast to the target's types. Vectorised with pyarrow.compute; Python touches
single values only for rejected rows (to record them) and on the rare failed-cast path.

Every row read ends in exactly one bucket: written, rejected, filtered or de-duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import types as sat

from ferry.data.spec import Keep, OnFail, Unmapped, ValueMap, check_column_names
from ferry.data.state import Counts, Reject
from ferry.data.tables import TablePlan
from ferry.data.types import ARROW_ERRORS, arrow_type
from ferry.data.validators import invalid_mask
from ferry.errors import ConfigError, FerryError

if TYPE_CHECKING:
    from ferry.data.expressions import Expression

ROW = "__ferry_row"
_SEP = "\x1f"


class DataError(FerryError):
    """Data that the job's rules say must stop the run (a `fail` rule, an error threshold)."""

    exit_code = 7


@dataclass
class Transformed:
    table: pa.Table  # target columns and types, plus ROW (position in the batch read)
    counts: Counts
    rejects: list[Reject] = field(default_factory=list)
    #: merge de-duplication: values for NULL columns of rows written by earlier batches,
    #: keyed by the target's primary key
    fills: pa.Table | None = None


class _Marks:
    """Rows leaving the batch: rejected (with rule and reason) or filtered.

    Masks are Arrow arrays over the batch's original rows; Python only walks the rows that
    leave, to record why.
    """

    def __init__(self, n: int) -> None:
        self.all_rows = pa.array(np.arange(n, dtype=np.int64))
        self.gone = pa.array(np.zeros(n, dtype=bool))
        self.filtered = pa.array(np.zeros(n, dtype=bool))
        self.reasons: dict[int, tuple[str, str]] = {}
        #: whether any row has left (most batches lose none: nothing to filter then)
        self.any_gone = False

    def _fresh(self, mask: Any, rows: Any) -> Any:
        """Rows of `rows[mask]` that have not left the batch already."""
        mask = pc.and_(pc.fill_null(mask, False), pc.invert(pc.take(self.gone, rows)))
        return pc.filter(rows, mask), mask

    def reject(
        self, mask: Any, rows: Any, rule: str, message: str, values: Any | None = None
    ) -> None:
        """Reject `rows[mask]`. `message` may contain `{value}`, filled from `values`."""
        chosen, mask = self._fresh(mask, rows)
        if len(chosen) == 0:
            return
        shown = pc.filter(values, mask).to_pylist() if values is not None else [None] * len(chosen)
        for row, value in zip(chosen.to_pylist(), shown, strict=True):
            self.reasons[row] = (rule, message.format(value=value))
        self.gone = pc.or_(self.gone, pc.is_in(self.all_rows, value_set=chosen))
        self.any_gone = True

    def filter_out(self, mask: Any, rows: Any) -> None:
        chosen, _ = self._fresh(mask, rows)
        if len(chosen):
            hit = pc.is_in(self.all_rows, value_set=chosen)
            self.filtered = pc.or_(self.filtered, hit)
            self.gone = pc.or_(self.gone, hit)
            self.any_gone = True


class Deduper:
    """Keeps the first row per key over the whole table, not per batch.

    Keys seen so far live here; a resumed copy seeds them from rows already in the target.
    Keys compare without regard to case or surrounding whitespace (`Bob@x.com ` is
    `bob@x.com`). NULL equals NULL within a key that has a value elsewhere (`(bob, NULL)`
    twice is one row), but a row whose key columns are all NULL has nothing to compare on
    and duplicates no other: `on: [email]` keeps every row without an e-mail.
    """

    def __init__(self, columns: list[str], *, merge_key: list[str] | None = None) -> None:
        self.columns = columns
        self.seen: pa.Array = pa.array([], pa.string())
        #: merge: the target primary key of the row kept for each seen key
        self.merge_key = merge_key
        self.kept: pa.Table | None = None

    def key(self, table: pa.Table) -> pa.Array:
        """The comparison key of each row: NULL where every key column is NULL."""
        texts = [pc.utf8_trim_whitespace(pc.cast(table[c], pa.string())) for c in self.columns]
        parts = [pc.fill_null(t, "\x00") for t in texts]
        joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, _SEP)
        nothing = pc.is_null(texts[0])
        for text in texts[1:]:
            nothing = pc.and_(nothing, pc.is_null(text))
        key = pc.if_else(nothing, pa.scalar(None, pa.string()), pc.utf8_lower(joined))
        return key.combine_chunks() if isinstance(key, pa.ChunkedArray) else key

    def seed(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self.merge_key:
            self._remember(table.filter(pc.is_valid(self.key(table))))
        else:
            self.seen = pc.unique(pa.concat_arrays([self.seen, pc.drop_null(self.key(table))]))

    def _remember(self, rows: pa.Table) -> None:
        assert self.merge_key is not None
        keys = self.key(rows)
        self.seen = pa.concat_arrays([self.seen, keys])
        kept = pa.table({c: rows[c] for c in self.merge_key})
        self.kept = kept if self.kept is None else pa.concat_tables([self.kept, kept])

    def merge(self, table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        """Rows to insert (one per new key, NULLs filled from its duplicates in the batch)
        and fills for rows that earlier batches wrote. Rows with a NULL key pass as they
        are."""
        assert self.merge_key is not None
        keys = self.key(table)
        columns = [c for c in table.column_names if c != ROW]
        apart = pc.is_null(keys)
        if pc.any(apart).as_py():
            alone = table.filter(apart).select([*columns, ROW])
            rest, fills = self.merge(table.filter(pc.invert(apart)))
            merged = pa.concat_tables([rest, alone]) if rest.num_rows else alone
            return merged.sort_by(ROW), fills
        if not table.num_rows:
            return table.select([*columns, ROW]), None
        work = table.append_column("__key", keys)
        # "first" skips NULLs: the first non-NULL value of each column, in key order.
        grouped = work.group_by("__key", use_threads=False).aggregate(
            [(c, "first") for c in columns] + [(ROW, "min")]
        )
        grouped = grouped.rename_columns(
            [
                c.removesuffix("_first").removesuffix("_min") if c != "__key" else c
                for c in grouped.column_names
            ]
        )
        known = pc.is_in(grouped["__key"], value_set=self.seen)
        fresh = grouped.filter(pc.invert(known)).drop_columns(["__key"])
        fills = None
        if pc.any(known).as_py() and self.kept is not None:
            old = grouped.filter(known)
            where = pc.index_in(old["__key"], value_set=self.seen)
            fills = pa.table(
                {c: pc.take(self.kept[c], where) for c in self.merge_key}
                | {c: old[c] for c in columns if c not in self.merge_key}
            )
        if fresh.num_rows:
            self._remember(fresh)
        return fresh.select([*columns, ROW]), fills

    def keep_mask(self, table: pa.Table) -> pa.Array:
        keys = self.key(table)
        index = pa.array(np.arange(len(keys), dtype=np.int64))
        first = pa.table({"k": keys, "i": index}).group_by("k").aggregate([("i", "min")])
        first_in_batch = pc.is_in(index, value_set=first["i_min"])
        unseen = pc.invert(pc.is_in(keys, value_set=self.seen))
        keep = pc.and_(first_in_batch, unseen)
        self.seen = pa.concat_arrays([self.seen, pc.filter(keys, keep)])
        return pc.or_(keep, pc.is_null(keys))  # a NULL key duplicates nothing


def _as_text(value: Any) -> str:
    """A map target as text, as Arrow writes it (booleans are `true` and `false`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _CompiledMap:
    """A value map as Arrow arrays: source values (text) and what they become.

    Keys are the source values as written in the spec. A column that is not text is also
    matched by value, the keys cast to its type, so `1.0` finds the integer 1, `True` the
    boolean true and `1` the decimal 1.00.
    """

    def __init__(self, rule: ValueMap) -> None:
        self.rule = rule
        self.keys = pa.array(list(rule.map), pa.string())
        values = list(rule.map.values())
        try:
            self.targets = pa.array(values)
        except ARROW_ERRORS:  # mixed types: the column is text (see tables._value_map_type)
            self.targets = pa.array(
                [None if v is None else _as_text(v) for v in values], pa.string()
            )
        self._typed: dict[pa.DataType, tuple[pa.Array, pa.Array]] = {}

    def typed_keys(self, wanted: pa.DataType) -> tuple[pa.Array, pa.Array]:
        """The keys that convert to `wanted`, converted, and their positions in the map."""
        if wanted not in self._typed:
            found: list[Any] = []
            positions: list[int] = []
            for position, key in enumerate(self.keys.to_pylist()):
                text = pa.scalar(key, pa.string())
                for route in ((wanted,), (pa.float64(), wanted)):
                    try:
                        value = text
                        for step in route:
                            value = value.cast(step)
                    except ARROW_ERRORS:
                        continue
                    found.append(value.as_py())
                    positions.append(position)
                    break
            self._typed[wanted] = (pa.array(found, wanted), pa.array(positions, pa.int32()))
        return self._typed[wanted]

    def index(self, original: Any, as_text: Any) -> Any:
        """Position in the map of each value (NULL: not in the map)."""
        index = pc.index_in(as_text, value_set=self.keys)
        kind = original.type
        if not (
            pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
            or pa.types.is_null(kind)
            or pa.types.is_dictionary(kind)
        ):
            keys, positions = self.typed_keys(kind)
            if len(keys):
                index = pc.coalesce(
                    index, pc.take(positions, pc.index_in(original, value_set=keys))
                )
        return index


class Transformer:
    """The job's rules for one table, compiled once and applied to every batch.

    Raises:
        ConfigError: a rule names a column the table does not have, or a NULL default
            does not fit its column's type (naming the key).
    """

    def __init__(self, plan: TablePlan) -> None:
        self.plan = plan
        spec = plan.spec
        # With `columns` listed, parse_job checked these names already; without, the
        # mapped columns are the source's, known only now.
        check_column_names(plan.name, spec, file=None, mapped=list(plan.mapping.values()))
        self.value_maps = spec.value_maps()
        self.maps = {column: _CompiledMap(rule) for column, rule in self.value_maps.items()}
        self.null_rules = spec.null_rules()
        self.validations = spec.validations()
        self.derived: dict[str, Expression] = {}
        if spec.derive:
            from ferry.data.expressions import compile_expression  # sqlglot: only when used

            self.derived = {name: compile_expression(text) for name, text in spec.derive.items()}
        merging = bool(spec.dedupe and spec.dedupe.keep is Keep.MERGE)
        key = [c.name for c in plan.target.primary_key.columns]
        if merging and not key:
            raise DataError(
                f"`dedupe: keep: merge` on `{plan.name}` needs a primary key on the target "
                f"table `{plan.target_name}` to fill rows written earlier",
                hint="use keep: first, or give the target table a primary key",
            )
        self.deduper = (
            Deduper(spec.dedupe.on, merge_key=key if merging else None) if spec.dedupe else None
        )
        self.descending = bool(spec.dedupe and spec.dedupe.keep is Keep.LAST)
        wanted = list(plan.mapping.values()) + list(spec.derive)
        self.load_columns = [c for c in plan.target.columns if c.name in wanted]
        self.target_types = {c.name: arrow_type(c.type) for c in self.load_columns}
        self._check_defaults()

    def _check_defaults(self) -> None:
        """A NULL default must fit its column: a misfit would fail every batch with NULLs."""
        for column, rule in self.null_rules.items():
            wanted = self.target_types.get(column)
            if rule.action != "default" or wanted is None:
                continue
            try:
                pa.scalar(rule.value).cast(wanted)
            except ARROW_ERRORS as error:
                raise ConfigError(
                    f"the default {rule.value!r} does not fit `{column}`, a {wanted} column "
                    f"of target table `{self.plan.target_name}` ({error})",
                    key=f"tables.{self.plan.name}.nulls.{column}",
                    hint=f"give a default of the column's type, or set "
                    f"tables.{self.plan.name}.types.{column}",
                ) from None

    def apply(self, batch: pa.Table, keep: pa.Array | None = None) -> Transformed:
        """Transform one batch; rows outside `keep` (a sample) count as filtered."""
        n = batch.num_rows
        rows = pa.array(np.arange(n, dtype=np.int64))
        marks = _Marks(n)
        if keep is not None:
            marks.filter_out(pc.invert(keep), rows)
        work = pa.table(
            {target: batch[source] for source, target in self.plan.mapping.items()} | {ROW: rows}
        )
        work = self._map_values(work, marks)
        work = self._nulls(work, marks)
        work = self._validate(work, marks)
        if self.derived:
            work = self._drop_marked(work, marks)
        for name, expression in self.derived.items():
            work = work.append_column(name, self._derive(name, expression, work, marks))
        work = self._drop_marked(work, marks)
        work = self._cast(work, marks)
        work = self._drop_marked(work, marks)
        # Last, so a row refused by any rule never claims its key from a valid duplicate.
        deduped = 0
        fills = None
        if self.deduper is not None and self.deduper.merge_key and work.num_rows:
            before = work.num_rows
            work, fills = self.deduper.merge(work)
            deduped = before - work.num_rows
        elif self.deduper is not None and work.num_rows:
            keep = self.deduper.keep_mask(work)
            deduped = work.num_rows - pc.sum(keep).as_py()
            work = work.filter(keep)
        filtered = pc.sum(marks.filtered).as_py() or 0
        found = self._rejects(batch, marks)
        written = work.num_rows
        counts = Counts(
            read=n, written=written, rejected=len(found), filtered=filtered, deduped=deduped
        )
        return Transformed(work, counts, found, fills)

    # --- steps ---

    def _map_values(self, work: pa.Table, marks: _Marks) -> pa.Table:
        for column, compiled in self.maps.items():
            rule = compiled.rule
            original = work[column]
            as_text = pc.cast(original, pa.string())
            index = compiled.index(original, as_text)
            mapped = pc.take(compiled.targets, index)
            unmapped = pc.and_(pc.is_null(index), pc.is_valid(original))
            if pc.any(unmapped).as_py():
                if rule.unmapped is Unmapped.REJECT:
                    marks.reject(
                        unmapped,
                        work[ROW],
                        f"value_map:{column}",
                        f"value {{value!r}} of `{column}` is not in the value map",
                        as_text,
                    )
                elif rule.unmapped is Unmapped.KEEP:
                    mapped = self._keep(column, original, as_text, mapped, unmapped)
            work = work.set_column(work.schema.get_field_index(column), column, mapped)
        return work

    def _keep(self, column: str, original: Any, as_text: Any, mapped: Any, unmapped: Any) -> Any:
        """Mapped values where the map has them, the source's elsewhere: in the target
        column's type when both convert to it (booleans into an INTEGER column that keeps
        the source's numbers are 1 and 0), else as text for the cast to judge per row."""
        wanted = self.target_types.get(column)
        if wanted is not None:
            try:
                return pc.if_else(unmapped, pc.cast(original, wanted), pc.cast(mapped, wanted))
            except ARROW_ERRORS:
                pass
        texts = mapped if pa.types.is_null(mapped.type) else pc.cast(mapped, pa.string())
        return pc.if_else(unmapped, as_text, pc.cast(texts, pa.string()))

    def _nulls(self, work: pa.Table, marks: _Marks) -> pa.Table:
        for column, rule in self.null_rules.items():
            if column not in work.column_names:
                continue
            values = work[column]
            if rule.action == "remove":
                marks.filter_out(pc.is_null(values), work[ROW])
            elif rule.action == "default":
                scalar = pa.scalar(rule.value)
                try:
                    fill = pc.cast(scalar, values.type) if values.type != pa.null() else scalar
                except ARROW_ERRORS:
                    # The source's type cannot hold the default, the target's can (checked
                    # with the rules): as text, the cast to the target converts both.
                    values, fill = pc.cast(values, pa.string()), pc.cast(scalar, pa.string())
                filled = pc.fill_null(values, fill)
                work = work.set_column(work.schema.get_field_index(column), column, filled)
        return work

    def _derive(self, name: str, expression: Expression, work: pa.Table, marks: _Marks) -> Any:
        """A derived column. Rows it cannot be computed for (a division by zero, an
        overflow, a failed CAST) are rejected; the others keep their values. Those rows are
        found by halving, so a clean batch costs one evaluation."""
        from ferry.data.expressions import ExpressionError

        try:
            return expression.evaluate(work)
        except ExpressionError as error:
            first = error
        key = f"tables.{self.plan.name}.derive.{name}"
        try:
            kind = _plain(expression.evaluate(work.slice(0, 0))).type
        except ExpressionError as error:  # no row could be computed: the rule is wrong
            raise ConfigError(str(error.message), key=key, hint=error.hint) from error
        pieces: list[pa.Array] = []
        problems: list[str | None] = []

        def walk(part: pa.Table) -> None:
            try:
                values = _plain(expression.evaluate(part))
            except ExpressionError as error:
                if part.num_rows > 1:
                    half = part.num_rows // 2
                    walk(part.slice(0, half))
                    walk(part.slice(half))
                    return
                pieces.append(pa.nulls(1, kind))
                problems.append(error.problem)
                return
            pieces.append(values if values.type == kind else values.cast(kind))
            problems.extend([None] * part.num_rows)

        walk(work)
        if all(p is None for p in problems):  # failed whole, computed in parts: odd, but fine
            raise ConfigError(str(first.message), key=key, hint=first.hint) from first
        reasons = pa.array(problems, pa.string())
        marks.reject(
            pc.is_valid(reasons),
            work[ROW],
            f"derive:{name}",
            f"`{name}` cannot be computed: {{value}}",
            reasons,
        )
        return pa.concat_arrays(pieces)

    def _validate(self, work: pa.Table, marks: _Marks) -> pa.Table:
        for column, check in self.validations.items():
            bad = invalid_mask(
                check.rule.value,
                work[column],
                region=check.region,
            )
            if not pc.any(bad).as_py():
                continue
            # Rows already filtered or rejected are out of the batch: they cannot fail it.
            bad = pc.and_(pc.fill_null(bad, False), pc.invert(pc.take(marks.gone, work[ROW])))
            if not pc.any(bad).as_py():
                continue
            if check.on_fail is OnFail.FAIL:
                first = pc.filter(work[ROW], bad)[0].as_py()
                raise DataError(
                    f"table `{self.plan.name}`, row {first} of the batch: column `{column}` "
                    f"fails the `{check.rule.value}` rule",
                    hint=f"set `on_fail: reject` for tables.{self.plan.name}.validate.{column} "
                    "to keep going and record such rows in ferry_rejects",
                )
            if check.on_fail is OnFail.NULL:
                nulls = pa.nulls(len(bad), work[column].type)
                fixed = pc.if_else(bad, nulls, work[column])
                work = work.set_column(work.schema.get_field_index(column), column, fixed)
            else:
                marks.reject(
                    bad,
                    work[ROW],
                    f"validate:{column}:{check.rule.value}",
                    f"`{column}` value {{value!r}} is not a valid {check.rule.value}",
                    work[column],
                )
        return work

    def _drop_marked(self, work: pa.Table, marks: _Marks) -> pa.Table:
        if not marks.any_gone:
            return work
        return work.filter(pc.invert(pc.take(marks.gone, work[ROW])))

    def _cast(self, work: pa.Table, marks: _Marks) -> pa.Table:
        out: dict[str, Any] = {}
        for column in self.load_columns:
            values = work[column.name]
            wanted = arrow_type(column.type)
            out[column.name] = self._cast_column(values, wanted, column.name, work[ROW], marks)
            if isinstance(column.type, sat.String) and column.type.length:
                too_long = pc.fill_null(
                    pc.greater(
                        pc.utf8_length(pc.cast(out[column.name], pa.string())), column.type.length
                    ),
                    False,
                )
                if pc.any(too_long).as_py():
                    marks.reject(
                        too_long,
                        work[ROW],
                        f"length:{column.name}",
                        f"`{column.name}` is longer than {column.type.length} "
                        "characters: {value!r}",
                        out[column.name],
                    )
            if (
                not column.nullable
                and column.server_default is None
                and not (column.primary_key and column.autoincrement is True)
            ):
                missing = pc.is_null(out[column.name])
                if pc.any(missing).as_py():
                    marks.reject(
                        missing,
                        work[ROW],
                        f"not_null:{column.name}",
                        f"`{column.name}` is NULL but the target column is NOT NULL",
                    )
        out[ROW] = work[ROW]
        return pa.table(out)

    def _cast_column(
        self, values: Any, wanted: pa.DataType, name: str, rows: pa.Array, marks: _Marks
    ) -> Any:
        if values.type == wanted:
            return values
        try:
            return pc.cast(values, wanted)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        # Rare path: find the values that do not convert, one by one.
        converted: list[Any] = []
        bad = []
        for value in values.to_pylist():
            try:
                converted.append(
                    pa.scalar(value).cast(wanted).as_py() if value is not None else None
                )
                bad.append(False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                converted.append(None)
                bad.append(True)
        marks.reject(
            pa.array(bad),
            rows,
            f"cast:{name}",
            f"`{name}` value {{value!r}} cannot be converted to {wanted}",
            values,
        )
        return pa.array(converted, wanted)

    def _rejects(self, batch: pa.Table, marks: _Marks) -> list[Reject]:
        if not marks.reasons:
            return []
        positions = sorted(marks.reasons)
        chosen = python_rows(batch.take(pa.array(positions, pa.int64())))
        key = self.plan.key
        found = []
        for position, row in zip(positions, chosen, strict=True):
            rule, error = marks.reasons[position]
            source_key = [row.get(k) for k in key] if key else None
            found.append(Reject(self.plan.name, source_key, rule, error, row))
        return found


def python_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as Python values, for a reject's record; a date Python cannot hold (PostgreSQL's
    infinity, which connectorx reads as year 262142) said in words."""
    for i, kind in enumerate(table.schema):
        bounds = _python_range(kind.type)
        if bounds is None:
            continue
        whole = pa.int32() if pa.types.is_date32(kind.type) else pa.int64()
        counts = pc.min_max(table.column(i).cast(whole))
        low, high = counts["min"].as_py(), counts["max"].as_py()
        if high is not None and (low < bounds[0] or high > bounds[1]):
            ints = table.column(i).cast(whole)
            text = pc.if_else(
                pc.greater(ints, bounds[1]),
                pa.scalar("after 9999-12-31 (infinity?)"),
                pc.if_else(
                    pc.less(ints, bounds[0]),
                    pa.scalar("before 0001-01-01 (-infinity?)"),
                    pc.cast(table.column(i), pa.string()),
                ),
            )
            table = table.set_column(i, kind.name, text)
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
#: Seconds from 1970 to Python's first and past its last datetime (years 1 and 10000).
_PYTHON_SECONDS = (-62_135_596_800, 253_402_300_800)


def _python_range(kind: pa.DataType) -> tuple[int, int] | None:
    """The integer range (in the type's own unit) Python's dates and datetimes hold."""
    if pa.types.is_timestamp(kind) or pa.types.is_date64(kind):
        per = _PER_SECOND[kind.unit] if pa.types.is_timestamp(kind) else 1_000
        return _PYTHON_SECONDS[0] * per, _PYTHON_SECONDS[1] * per - 1
    if pa.types.is_date32(kind):
        return _PYTHON_SECONDS[0] // 86_400, _PYTHON_SECONDS[1] // 86_400 - 1
    return None


def _plain(values: Any) -> pa.Array:
    """One Arrow array, whatever the chunking."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values
