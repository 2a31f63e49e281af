"""Data job specs (YAML): source, target, tables, mappings, cleaning, load, error limits.

```yaml
source: legacy                    # a target named in ferry.toml, or a URL
target: new
tables:
  users:
    to: users
    columns: {user_id: id, user_name: username, email_address: email, account_status: status}
    values:
      status: {map: {A: active, I: inactive, S: suspended}, unmapped: reject}
    nulls: {status: inactive}
    validate: {email: email}
    dedupe: {on: [username, email], keep: first}
```
Column names after `columns` are target names: `values`, `nulls`, `validate`, `dedupe`,
`types` and `derive` all speak of the target's columns.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ferry.config.expand import expand_tree
from ferry.errors import ConfigError, mask_secrets

DEFAULT_EXCLUDE = ["temp_*", "backup_*", "log_*"]


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2 booleans: only true/false are booleans.

    Under YAML 1.1, `on`, `off`, `yes`, `no`, `y` and `n` are booleans too, which would turn
    `dedupe: {on: [...]}` and value maps like `{Y: true, N: false}` into nonsense.

    Mapping keys are names and source values, so a plain (unquoted) key stays the text it
    is written as: YAML 1.1 would read the value-map key `010` as 8 (octal), `1:30` as 90
    (base 60) and `1.0` as 1.0, none of which is the source value the map names.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if (
                isinstance(key_node, yaml.ScalarNode)
                and key_node.style is None
                and key_node.tag in _TEXT_KEY_TAGS
            ):
                key: Any = key_node.value
            else:
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, Hashable):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        "found unhashable key",
                        key_node.start_mark,
                    )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


_TEXT_KEY_TAGS = frozenset(
    f"tag:yaml.org,2002:{kind}" for kind in ("bool", "int", "float", "null", "timestamp")
)


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Unmapped(StrEnum):
    REJECT = "reject"
    KEEP = "keep"
    NULL = "null"


class OnFail(StrEnum):
    REJECT = "reject"
    NULL = "null"
    FAIL = "fail"


class Rule(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    DATE = "date"
    NUMERIC = "numeric"


class Keep(StrEnum):
    FIRST = "first"
    LAST = "last"
    MERGE = "merge"  # the first row survives, its NULLs filled from later duplicates


class Mode(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"
    SAMPLE = "sample"
    DELTA = "delta"  # full copy, then `ferry sync` replays captured changes


class SampleMethod(StrEnum):
    RANDOM = "random"
    SYSTEMATIC = "systematic"
    STRATIFIED = "stratified"


class Sample(_Model):
    """A rehearsal subset: `rows` or `percent`; `by` names the strata column (source name)."""

    method: SampleMethod = SampleMethod.RANDOM
    rows: int | None = Field(default=None, ge=1)
    percent: float | None = Field(default=None, gt=0, le=100)
    by: str | None = None
    seed: int = 42


class LoadStrategy(StrEnum):
    BULK = "bulk"
    UPSERT = "upsert"
    STREAM = "stream"


class KeysWhen(StrEnum):
    """When the keys of the tables a copy creates are built."""

    #: once every table is loaded: builds never compete with the load for CPU (fastest where
    #: Ferry and the databases share a machine: 5.6 against 5.8 s for the employees sample)
    AFTER_LOAD = "after_load"
    #: each table's as soon as its own data is complete, as pgloader does (fastest where the
    #: target has cores to spare while the load waits on the source or the network)
    PER_TABLE = "per_table"


class OnConflict(StrEnum):
    UPDATE = "update"
    IGNORE = "ignore"
    FAIL = "fail"


class ValueMap(_Model):
    """Source value -> target value, and what to do with a value the map does not name."""

    map: dict[str, Any]
    unmapped: Unmapped = Unmapped.REJECT


class Validation(_Model):
    rule: Rule
    on_fail: OnFail = OnFail.REJECT
    region: str = Field(default="US", description="default region for phone numbers")

    @model_validator(mode="after")
    def _known_region(self) -> Validation:
        """A phone rule's region is checked with the spec, not when the first row meets it."""
        if self.rule is Rule.PHONE:
            import phonenumbers  # only phone rules need it (and its import time)

            if self.region.upper() not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(
                    f"unknown phone region {self.region!r}: use a two-letter ISO 3166 code "
                    "such as US, GB (not UK) or DE"
                )
        return self


class Dedupe(_Model):
    on: list[str] = Field(min_length=1)
    keep: Keep = Keep.FIRST


def _expression(text: str) -> str:
    """A derived column or group key: parsed and checked with the spec, so a syntax error
    or an unknown function names its key before anything runs."""
    from ferry.data.expressions import ExpressionError, compile_expression  # sqlglot: lazily

    try:
        compile_expression(text)
    except ExpressionError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        raise ValueError(f"{exc.problem}{hint}") from None
    return text


ExpressionText = Annotated[str, AfterValidator(_expression)]


class NullRule(_Model):
    """`preserve` keeps NULL, `default` puts `value`, `remove` drops the row (filtered)."""

    action: str = Field(pattern="^(preserve|default|remove)$")
    value: Any = None


class TableSpec(_Model):
    to: str | None = None
    columns: dict[str, str] | list[str] | None = None
    where: str | None = None
    types: dict[str, str] = {}
    values: dict[str, Annotated[ValueMap | dict[str, Any], Field(union_mode="left_to_right")]] = {}
    nulls: dict[
        str, Annotated[NullRule | str | int | float | bool, Field(union_mode="left_to_right")]
    ] = {}
    validate_: dict[str, Annotated[Validation | Rule, Field(union_mode="left_to_right")]] = Field(
        default={}, alias="validate"
    )
    dedupe: Dedupe | None = None
    derive: dict[str, ExpressionText] = {}
    key: list[str] | None = None
    mode: Mode = Mode.FULL
    cursor: str | None = Field(default=None, description="incremental: source column")
    sample: Sample | None = None
    conflict: list[str] | None = Field(default=None, description="upsert: target columns")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("values", mode="before")
    @classmethod
    def _value_maps(cls, value: Any) -> Any:
        """Map keys are source values as text (YAML may read `1:` as a number); a block
        with `map` is a ValueMap, whose `unmapped: null` YAML reads as None."""
        if not isinstance(value, dict):
            return value
        fixed: dict[str, Any] = {}
        for column, rule in value.items():
            if isinstance(rule, dict) and isinstance(rule.get("map"), dict):
                rule = dict(rule)
                rule["map"] = {str(k): v for k, v in rule["map"].items()}
                if "unmapped" in rule and rule["unmapped"] is None:
                    rule["unmapped"] = "null"
                fixed[column] = ValueMap.model_validate(rule)
            elif isinstance(rule, dict):
                fixed[column] = {str(k): v for k, v in rule.items()}
            else:
                fixed[column] = rule
        return fixed

    @model_validator(mode="after")
    def _mode_needs(self) -> TableSpec:
        if self.mode is Mode.INCREMENTAL and not self.cursor:
            raise ValueError(
                "mode `incremental` needs `cursor`: the column that grows "
                "with every change, such as updated_at"
            )
        if self.mode is Mode.SAMPLE:
            if self.sample is None or (self.sample.rows is None) == (self.sample.percent is None):
                raise ValueError(
                    "mode `sample` needs `sample` with exactly one of `rows` or `percent`"
                )
            if self.sample.method is SampleMethod.STRATIFIED and not self.sample.by:
                raise ValueError("a stratified sample needs `by`, the column of the strata")
        return self

    def value_maps(self) -> dict[str, ValueMap]:
        return {
            col: v if isinstance(v, ValueMap) else ValueMap(map=v) for col, v in self.values.items()
        }

    def null_rules(self) -> dict[str, NullRule]:
        rules = {}
        for col, rule in self.nulls.items():
            if isinstance(rule, NullRule):
                rules[col] = rule
            elif rule in ("preserve", "remove"):
                rules[col] = NullRule(action=str(rule))
            else:
                rules[col] = NullRule(action="default", value=rule)
        return rules

    def validations(self) -> dict[str, Validation]:
        return {
            col: v if isinstance(v, Validation) else Validation(rule=v)
            for col, v in self.validate_.items()
        }


class LoadSpec(_Model):
    strategy: LoadStrategy = LoadStrategy.BULK
    conflict: list[str] = []
    on_conflict: OnConflict = OnConflict.UPDATE
    #: rows per chunk (and per stream flush); unset: about 16 MB of source rows per chunk,
    #: from the source's statistics (ferry.data.chunks.auto_chunk_rows)
    batch_size: int | None = Field(default=None, ge=1)
    workers: int = Field(default=2, ge=1, le=64)
    defer_indexes: bool = True
    keys: KeysWhen = KeysWhen.AFTER_LOAD
    create_tables: bool = True
    #: stream: batches read ahead at most (back-pressure beyond that), and seconds after
    #: which a partial buffer is flushed anyway
    buffer_batches: int = Field(default=4, ge=1, le=1000)
    flush_interval: float = Field(default=5.0, gt=0)


class ErrorLimits(_Model):
    max_errors: int | None = Field(default=None, ge=0)
    max_error_rate: float = Field(default=0.05, ge=0, le=1)


class AggregateSpec(_Model):
    """A summary table computed from a copied table once its rows are in the target.

    `group_by` and `measures` name target columns; group keys may be expressions
    (`DATE_TRUNC('hour', recorded_at)`), measures are sum|count|avg|min|max of a column,
    or count(*).
    """

    from_: str = Field(alias="from", description="a target table of this job")
    group_by: dict[str, ExpressionText]
    measures: dict[str, str]

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("measures")
    @classmethod
    def _measures(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not MEASURE.match(text.strip()):
                raise ValueError(
                    f"measure `{name}`: {text!r} is not sum|count|avg|min|max(column) or count(*)"
                )
        return value


MEASURE = re.compile(r"^(sum|count|avg|min|max)\(\s*(\*|[A-Za-z_][\w]*)\s*\)$", re.I)


class JobSpec(_Model):
    name: str | None = None
    source: str
    target: str
    include: list[str] = ["*"]
    exclude: list[str] = DEFAULT_EXCLUDE
    tables: dict[str, TableSpec | None] = {}
    load: LoadSpec = LoadSpec()
    errors: ErrorLimits = ErrorLimits()
    aggregates: dict[str, AggregateSpec] = {}

    @field_validator("tables", mode="before")
    @classmethod
    def _empty_tables(cls, value: Any) -> Any:
        return value or {}


def parse_job(text: str, *, path: Path, env: dict[str, str] | None = None) -> JobSpec:
    """Parse and validate a job spec.

    Raises:
        ConfigError: YAML syntax (with its line), unknown or invalid keys (dotted path).
    """
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where}: {exc}", file=path) from exc
    if not isinstance(raw, dict):
        raise ConfigError("a job spec is a mapping with `source`, `target` and `tables`", file=path)
    raw = expand_tree(raw, env=env)
    raw.setdefault("name", path.stem)
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function-",)))
        key = key.replace("validate_", "validate")
        if first["type"] == "extra_forbidden":
            raise ConfigError(
                "unknown key",
                file=path,
                key=key,
                hint="check the spelling against the job spec reference in ferry/data/spec.py",
            ) from exc
        if first["type"] == "missing":
            raise ConfigError("required key is missing", file=path, key=key) from exc
        message = first["msg"].removeprefix("Value error, ")
        # The value may hold a password that `${ENV}` expanded: never quoted as it is.
        shown = mask_secrets(repr(first.get("input")))
        raise ConfigError(f"invalid value {shown}: {message}", file=path, key=key) from exc
    for name, table in spec.tables.items():
        if table is not None:
            check_column_names(name, table, file=path)
    return spec


def check_column_names(
    name: str, table: TableSpec, *, file: Path | None, mapped: list[str] | None = None
) -> None:
    """The rules of a table name its target columns (`columns` renames the source's).

    `mapped` is the target columns the source fills; without it, they are known only when
    `columns` lists them (else they are the source's, which the spec alone does not know).

    Raises:
        ConfigError: a rule names a column the table will not have, or a derived column
            takes the name of a mapped one; naming the key.
    """
    if mapped is None:
        if table.columns is None:
            return
        mapped = list(table.columns.values() if isinstance(table.columns, dict) else table.columns)
    derived = list(table.derive)
    listed = ", ".join(mapped)
    hint = f"rules name the target's columns, after `columns` renames the source's: {listed}" + (
        f"; derived: {', '.join(derived)}" if derived else ""
    )
    folded = {c.lower() for c in mapped}
    for column in derived:
        if column.lower() in folded:
            raise ConfigError(
                f"derived column `{column}` is already a column the source fills",
                file=file,
                key=f"tables.{name}.derive.{column}",
                hint="give the derived column another name, or leave the source column out "
                "of `columns`",
            )
    rules: list[tuple[str, list[str], list[str]]] = [
        ("values", list(table.values), mapped),
        ("nulls", list(table.nulls), mapped),
        ("validate", list(table.validate_), mapped),
        ("types", list(table.types), mapped + derived),
    ]
    for rule, columns, allowed in rules:
        for column in columns:
            if column not in allowed:
                raise ConfigError(
                    f"`{column}` is not a column of the target table",
                    file=file,
                    key=f"tables.{name}.{rule}.{column}",
                    hint=hint,
                )
    if table.dedupe is not None:
        for column in table.dedupe.on:
            if column not in mapped + derived:
                raise ConfigError(
                    f"`{column}` is not a column of the target table",
                    file=file,
                    key=f"tables.{name}.dedupe.on",
                    hint=hint,
                )
    if derived:
        from ferry.data.expressions import compile_expression  # sqlglot: only when used

        known = set(folded)
        for column, text in table.derive.items():
            # a derived column may use those derived before it
            unknown = sorted(
                c for c in compile_expression(text).columns() if c.lower() not in known
            )
            known.add(column.lower())
            if unknown:
                raise ConfigError(
                    f"expression `{text}` names {', '.join(f'`{c}`' for c in unknown)}, "
                    "not a column the source fills",
                    file=file,
                    key=f"tables.{name}.derive.{column}",
                    hint=hint,
                )


def load_job(path: Path) -> JobSpec:
    if not path.is_file():
        raise ConfigError(
            "job spec not found",
            file=path,
            hint="pass the path of a YAML job spec: `ferry copy job.yaml`",
        )
    return parse_job(path.read_text(encoding="utf-8"), path=path)
