"""Which tables a job copies, and how each source table becomes a target table."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Engine,
    ForeignKeyConstraint,
    MetaData,
    Table,
    UniqueConstraint,
    inspect,
    literal,
    select,
    text,
)
from sqlalchemy import types as sat

from ferry.data.spec import JobSpec, Keep, LoadStrategy, Mode, TableSpec, check_column_names
from ferry.data.types import (
    LONG_TEXT,
    arrow_type,
    indexable,
    parse_type,
    sa_type_for_arrow,
    translate_type,
)
from ferry.db.adapter import adapter_for_dialect
from ferry.db.bookkeeping import FERRY_TABLES
from ferry.errors import ConfigError

#: Column types without an order to split a table into key ranges by: JSON documents, and
#: types SQLAlchemy could not reflect (geometry, say), whose order Ferry cannot know.
_UNSORTABLE = (sat.JSON, sat.NullType)


@dataclass(frozen=True)
class IndexSpec:
    name: str
    columns: list[str]
    unique: bool


@dataclass(frozen=True)
class ForeignKeySpec:
    name: str
    columns: list[str]
    referred_table: str
    referred_columns: list[str]
    #: The source's referential actions (CASCADE, SET NULL, ...); None is the default.
    ondelete: str | None = None
    onupdate: str | None = None

    def constraint(self) -> ForeignKeyConstraint:
        """The key as a constraint to add to its (target) table."""
        return ForeignKeyConstraint(
            self.columns,
            [f"{self.referred_table}.{c}" for c in self.referred_columns],
            name=self.name,
            ondelete=self.ondelete,
            onupdate=self.onupdate,
        )


@dataclass
class TablePlan:
    """One source table to copy: its columns, key, and the target table it fills."""

    source: Table
    spec: TableSpec
    target_name: str
    #: source column -> target column, in source order (the column filter applied).
    mapping: dict[str, str]
    key: list[str]  # source key columns (primary key, or spec.key)
    target: Table  # the target table (reflected if it exists, else to be created)
    target_exists: bool
    #: The table Ferry would create: its indexes and foreign keys are built after the load.
    designed: Table | None = None
    #: Secondary indexes and foreign keys to build after the load (tables Ferry creates).
    deferred_indexes: list[IndexSpec] = field(default_factory=list)
    deferred_fks: list[ForeignKeySpec] = field(default_factory=list)
    #: What of the source table a created target leaves out, for a person to carry.
    not_carried: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.source.name

    def target_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in self.target.columns])


def select_tables(names: list[str], spec: JobSpec) -> list[str]:
    """Source tables matching `include` and not `exclude`, Ferry's own tables left out."""
    return [
        n
        for n in names
        if n not in FERRY_TABLES
        and any(fnmatch.fnmatchcase(n, p) for p in spec.include)
        and not any(fnmatch.fnmatchcase(n, p) for p in spec.exclude)
    ]


def plan_tables(
    spec: JobSpec, source: Engine, target: Engine, *, file: Any = None
) -> list[TablePlan]:
    """Reflect the source, apply the job's table and column rules, reflect or design targets.

    Raises:
        ConfigError: a table or column the spec names does not exist, naming the key.
    """
    source_meta = MetaData()
    source_inspector = inspect(source)
    all_names = source_inspector.get_table_names()
    for name in spec.tables:
        if name not in all_names:
            raise ConfigError(
                f"source has no table `{name}`",
                file=file,
                key=f"tables.{name}",
                hint="source tables: " + ", ".join(sorted(all_names)),
            )
    names = select_tables(all_names, spec)
    names += [n for n in spec.tables if n not in names]
    source_meta.reflect(bind=source, only=names)
    for reflected in source_meta.tables.values():
        reflected.info["ferry_dialect"] = source.dialect.name
    target_inspector = inspect(target)
    existing = set(target_inspector.get_table_names())
    target_meta = MetaData()
    design_meta = MetaData()
    plans: list[TablePlan] = []
    for name in names:
        table = source_meta.tables[name]
        table_spec = spec.tables.get(name) or TableSpec()
        mapping = _column_mapping(table, table_spec, file)
        key = table_spec.key or [c.name for c in table.primary_key.columns]
        for column in key:
            if column not in table.c:
                raise ConfigError(
                    f"key column `{column}` is not in source table `{name}`",
                    file=file,
                    key=f"tables.{name}.key",
                )
            if isinstance(table.c[column].type, _UNSORTABLE):
                # Chunks and verification walk key ranges: the key must have an order.
                raise ConfigError(
                    f"key column `{column}` of `{name}` is {table.c[column].type!r}, which "
                    "has no order to split the table into key ranges by",
                    file=file,
                    key=f"tables.{name}.key",
                    hint="set `key:` to columns of integers, text, dates and times or UUIDs "
                    "that identify a row",
                )
        _check_mode_columns(table, table_spec, spec, file)
        target_name = table_spec.to or name
        designed = _design_target(table, table_spec, target_name, mapping, key, design_meta, file)
        if target_name in existing:
            target_table = Table(target_name, target_meta, autoload_with=target)
            _check_target_columns(target_table, mapping, table_spec, file, name)
            designed.target = target_table
            designed.target_exists = True
        _conflict_key(designed, spec, target, file)
        plans.append(designed)
    _defer_foreign_keys(plans)
    return plans


def _column_mapping(table: Table, spec: TableSpec, file: Any) -> dict[str, str]:
    if spec.columns is None:
        return {c.name: c.name for c in table.columns}
    pairs = (
        spec.columns.items() if isinstance(spec.columns, dict) else ((c, c) for c in spec.columns)
    )
    mapping = {}
    for source_col, target_col in pairs:
        if source_col not in table.c:
            raise ConfigError(
                f"source table `{table.name}` has no column `{source_col}`",
                file=file,
                key=f"tables.{table.name}.columns.{source_col}",
                hint="columns: " + ", ".join(c.name for c in table.columns),
            )
        mapping[source_col] = target_col
    return mapping


def _check_target_columns(
    target: Table, mapping: dict[str, str], spec: TableSpec, file: Any, source_name: str
) -> None:
    wanted = list(mapping.values()) + list(spec.derive)
    for column in wanted:
        if column not in target.c:
            raise ConfigError(
                f"target table `{target.name}` has no column `{column}`",
                file=file,
                key=f"tables.{source_name}",
                hint="target columns: "
                + ", ".join(c.name for c in target.columns)
                + "; fix the mapping or add the column with a migration",
            )


def _check_mode_columns(table: Table, spec: TableSpec, job: JobSpec, file: Any) -> None:
    """The columns an incremental cursor and a stratified sample name are source columns,
    and a stream (read once, in key order) cannot keep the last of duplicates."""
    columns = ", ".join(c.name for c in table.columns)
    if spec.cursor and spec.cursor not in table.c:
        raise ConfigError(
            f"cursor column `{spec.cursor}` is not in source table `{table.name}`",
            file=file,
            key=f"tables.{table.name}.cursor",
            hint=f"name the source column that grows with every change; columns: {columns}",
        )
    by = spec.sample.by if spec.sample else None
    if by and by not in table.c:
        raise ConfigError(
            f"strata column `{by}` is not in source table `{table.name}`",
            file=file,
            key=f"tables.{table.name}.sample.by",
            hint=f"`by` names a source column (before `columns` renames it); columns: {columns}",
        )
    if (
        job.load.strategy is LoadStrategy.STREAM
        and spec.dedupe is not None
        and spec.dedupe.keep is Keep.LAST
    ):
        raise ConfigError(
            f"`dedupe: keep: last` on `{table.name}` cannot stream: a stream reads the table "
            "once in key order and writes each flush, so the last duplicate is not known "
            "when the first is written",
            file=file,
            key=f"tables.{table.name}.dedupe.keep",
            hint="use `load.strategy: bulk` for this job, or `keep: first`",
        )


def _conflict_key(plan: TablePlan, job: JobSpec, target: Engine, file: Any) -> None:
    """An upsert finds existing rows by its conflict columns, so they must be a unique key
    of the target during the load: a table Ferry creates gets it with the table (not after
    the data, with the other indexes); an existing table must have one already."""
    if job.load.strategy is not LoadStrategy.UPSERT and plan.spec.mode is not Mode.INCREMENTAL:
        return
    primary = [c.name for c in plan.target.primary_key.columns]
    conflict = plan.spec.conflict or job.load.conflict or primary
    if not conflict or any(c not in plan.target.c for c in conflict):
        return  # no conflict columns, or unknown ones: the copy names the problem
    wanted = set(conflict)
    if not plan.target_exists:
        if wanted == set(primary):
            return
        same = [i for i in plan.deferred_indexes if i.unique and set(i.columns) == wanted]
        name = same[0].name if same else f"{plan.target_name}_{'_'.join(conflict)}_key"[:63]
        plan.target.append_constraint(UniqueConstraint(*conflict, name=name))
        plan.deferred_indexes[:] = [i for i in plan.deferred_indexes if i not in same]
        return
    uniques = [set(primary)]
    uniques += [
        {c.name for c in u.columns}
        for u in plan.target.constraints
        if isinstance(u, UniqueConstraint)
    ]
    uniques += [{c.name for c in i.columns} for i in plan.target.indexes if i.unique]
    with target.connect() as conn:
        adapter = adapter_for_dialect(target.dialect.name)()
        uniques += adapter.unique_keys(conn, plan.target_name)
    if wanted in uniques:
        return
    named = ", ".join(f"`{c}`" for c in conflict)
    where = (
        f"tables.{plan.name}.conflict"
        if plan.spec.conflict
        else "load.conflict"
        if job.load.conflict
        else f"tables.{plan.name}"
    )
    raise ConfigError(
        f"conflict columns {named} are not the primary key or a unique key of target table "
        f"`{plan.target_name}`: an upsert could not find the existing rows by them",
        file=file,
        key=where,
        hint="name the columns of a unique key in `conflict:`, or add a unique constraint "
        "on them with a migration",
    )


def _value_map_type(values: dict[str, Any], extra: list[Any]) -> sat.TypeEngine[Any] | None:
    """A type for mapped values plus `extra` ones (a NULL default) the column must hold."""
    mapped = [v for v in [*values.values(), *extra] if v is not None]
    if mapped and all(isinstance(v, bool) for v in mapped):
        return sat.Boolean()
    if mapped and all(isinstance(v, int) and not isinstance(v, bool) for v in mapped):
        return sat.Integer()
    if mapped:
        return sat.String(max(len(str(v)) for v in mapped))
    return None


def _design_target(
    table: Table,
    spec: TableSpec,
    target_name: str,
    mapping: dict[str, str],
    key: list[str],
    meta: MetaData,
    file: Any,
) -> TablePlan:
    # The rules name target columns; without `columns:` listed, known only now.
    check_column_names(table.name, spec, file=file, mapped=list(mapping.values()))
    value_maps = spec.value_maps()
    null_rules = spec.null_rules()
    source_is_sqlite = _dialect_of(table) == "sqlite"
    columns = []
    pk = {c.name for c in table.primary_key.columns}
    for source_col, target_col in mapping.items():
        src = table.c[source_col]
        if target_col in spec.types:
            col_type = parse_type(
                spec.types[target_col], key=f"tables.{table.name}.types.{target_col}"
            )
        elif target_col in value_maps:
            rule = null_rules.get(target_col)
            extra = [rule.value] if rule is not None and rule.action == "default" else []
            col_type = _value_map_type(value_maps[target_col].map, extra) or translate_type(
                src.type
            )
            if value_maps[target_col].unmapped == "keep":
                # Unmapped source values stay as they are: the column must hold them too.
                source_type = translate_type(src.type)
                if not isinstance(col_type, sat.String) or not isinstance(source_type, sat.String):
                    col_type = source_type if not isinstance(col_type, sat.String) else LONG_TEXT
                elif col_type.length and (source_type.length or 0) > col_type.length:
                    col_type = source_type
        else:
            col_type = translate_type(src.type)
        if source_is_sqlite and isinstance(col_type, sat.Float):
            col_type = sat.Double()  # SQLite's REAL is 8 bytes, whatever the declared name
        if source_col in pk:
            col_type = indexable(col_type)
        single_key = source_col in pk and len(pk) == 1
        # SQLite reflects its rowid-alias INTEGER PRIMARY KEY as "auto"; it does number rows.
        auto = src.autoincrement is True or (
            source_is_sqlite and src.autoincrement == "auto" and isinstance(src.type, sat.Integer)
        )
        columns.append(
            Column(
                target_col,
                col_type,
                primary_key=source_col in pk,
                nullable=src.nullable if source_col not in pk else False,
                autoincrement=bool(auto and single_key),
                server_default=translate_default(src, col_type),
            )
        )
    # A derived column's type is what its expression yields on the mapped columns.
    empty = pa.schema([pa.field(c.name, arrow_type(c.type)) for c in columns]).empty_table()
    for name, expression in spec.derive.items():
        if name in spec.types:
            col_type = parse_type(spec.types[name], key=f"tables.{table.name}.types.{name}")
        else:
            from ferry.data.expressions import ExpressionError, compile_expression

            try:
                result = compile_expression(expression).evaluate(empty)
            except ExpressionError as error:
                raise ConfigError(
                    str(error.message),
                    file=file,
                    key=f"tables.{table.name}.derive.{name}",
                    hint=error.hint,
                ) from error
            col_type = sa_type_for_arrow(result.type)
        columns.append(Column(name, col_type))
    target = Table(target_name, meta, *columns)
    indexes: list[IndexSpec] = []
    seen: set[tuple[str, ...]] = set()
    uniques = [
        (list(u.columns), True) for u in table.constraints if isinstance(u, UniqueConstraint)
    ]
    plain = [i for i in table.indexes if not _index_gap(i)]
    for cols_, unique in [(list(i.columns), bool(i.unique)) for i in plain] + uniques:
        cols = [mapping[c.name] for c in cols_ if c.name in mapping]
        if not cols or len(cols) != len(cols_) or tuple(cols) in seen:
            continue
        seen.add(tuple(cols))
        name = f"{target_name}_{'_'.join(cols)}_{'key' if unique else 'idx'}"[:63]
        indexes.append(IndexSpec(name, cols, unique))
    plan = TablePlan(table, spec, target_name, mapping, key, target, False, target, indexes)
    plan.not_carried = _not_carried(table, mapping, target)
    return plan


def _index_gap(index: Any) -> str | None:
    """Why an index is not built on the target: one on an expression, or a partial one
    (built whole, a unique one could refuse the rows the source allows)."""
    if len(index.expressions) != len(index.columns):
        return "on an expression"
    if any(k.endswith("_where") and v is not None for k, v in index.dialect_kwargs.items()):
        return "partial (with a WHERE)"
    return None


def _not_carried(table: Table, mapping: dict[str, str], target: Table) -> list[str]:
    """What of the source table the created target leaves out: a person carries it over
    with a migration (a report line each, not a silent loss)."""
    gaps = [
        f"index {i.name} on {table.name}: {gap}"
        for i in table.indexes
        if (gap := _index_gap(i)) is not None
    ]
    gaps += [
        f"check constraint {c.name or '(unnamed)'} on {table.name}: {c.sqltext}"
        for c in table.constraints
        if isinstance(c, CheckConstraint)
    ]
    for source_name, target_name in mapping.items():
        column = table.c[source_name]
        if column.computed is not None:
            gaps.append(
                f"generated column {table.name}.{source_name}: copied as values, without "
                f"its expression {column.computed.sqltext}"
            )
            continue
        default = column.server_default
        if default is None:
            continue
        raw = str(getattr(default, "arg", default)).strip()
        kept = target.c[target_name].server_default is not None
        if kept and _ON_UPDATE.search(raw):
            gaps.append(f"ON UPDATE of {table.name}.{source_name}: {raw}")
        elif not kept and target.c[target_name].autoincrement is not True:
            gaps.append(f"default of {table.name}.{source_name}: {raw}")
    return gaps


_ON_UPDATE = re.compile(r"\bon\s+update\b", re.I)


def _dialect_of(table: Table) -> str:
    return str(table.info.get("ferry_dialect", ""))


_LITERAL_DEFAULT = re.compile(
    r"^\(?('(?:[^']|'')*'|-?\d+(?:\.\d+)?|true|false)\)?(?:::[\w ]+)?$", re.I
)
#: now() as each database spells it; MariaDB adds the precision and any ON UPDATE clause
#: (`current_timestamp(6) ON UPDATE current_timestamp(6)`), which only the default outlives.
_NOW = re.compile(
    r"^(current_timestamp(\(\d*\))?|now\(\d*\)|localtimestamp(\(\d*\))?)"
    r"(\s+on\s+update\s+.*)?$",
    re.I,
)


def translate_default(column: Column[Any], target_type: sat.TypeEngine[Any]) -> Any:
    """Literal and now() defaults, in a form every database reads; others are left out
    (a sequence or a function call belongs to the source)."""
    default = column.server_default
    if default is None:
        return None
    raw = str(getattr(default, "arg", default)).strip()
    if _NOW.match(raw):
        return text("CURRENT_TIMESTAMP")
    match = _LITERAL_DEFAULT.match(raw)
    if match is None:
        return None
    literal_text = match.group(1)
    if literal_text.lower() in ("true", "false") and not isinstance(target_type, sat.Boolean):
        return None  # a boolean keyword for a column that is no longer boolean
    if isinstance(target_type, sat.Boolean):
        value = literal_text.strip("'").lower()
        if value in ("1", "t", "true", "y", "yes"):
            return text("TRUE")
        if value in ("0", "f", "false", "n", "no"):
            return text("FALSE")
        return None
    return text(literal_text)


def _defer_foreign_keys(plans: list[TablePlan]) -> None:
    by_source = {p.name: p for p in plans}
    for plan in plans:
        if plan.designed is None:
            continue
        for fk in plan.source.foreign_key_constraints:
            referred = by_source.get(fk.referred_table.name)
            if referred is None:
                continue
            local = [plan.mapping.get(c.name) for c in fk.columns]
            remote = [referred.mapping.get(e.column.name) for e in fk.elements]
            if None in local or None in remote:
                continue
            plan.deferred_fks.append(
                ForeignKeySpec(
                    name=f"{plan.target_name}_{'_'.join(c for c in local if c)}_fkey"[:63],
                    columns=[c for c in local if c],
                    referred_table=referred.target_name,
                    referred_columns=[c for c in remote if c],
                    ondelete=_action(fk.ondelete),
                    onupdate=_action(fk.onupdate),
                )
            )


def _action(action: str | None) -> str | None:
    """A referential action other than the default NO ACTION, as the source states it."""
    if action is None or action.upper() == "NO ACTION":
        return None
    return action.upper()


def occupancy(conn: Connection, plans: list[TablePlan]) -> dict[str, str]:
    """Per target table, before a run writes: `absent`, `empty` or `rows` (one indexed probe
    per table). `ferry rollback` drops what was absent and empties what was empty."""
    found: dict[str, str] = {}
    for plan in plans:
        if not plan.target_exists:
            found[plan.target_name] = "absent"
            continue
        probe = select(literal(1)).select_from(plan.target).limit(1)
        found[plan.target_name] = "empty" if conn.execute(probe).first() is None else "rows"
    return found
