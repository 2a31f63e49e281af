"""Review of the transform rules and bad-input handling: value maps whose keys YAML would
read as numbers or booleans, mixed and empty maps, rules naming columns that do not exist,
defaults of the wrong type, NULLs and whitespace in de-duplication keys, derived columns
that fail on single rows, and expression errors that name their key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool

from ferry.data.spec import parse_job
from ferry.errors import ConfigError
from tests.unit.test_transform import balanced, rejects, rows, transformer

JOB = Path("job.yaml")


@pytest.fixture
def engines() -> Iterator[tuple[Engine, Engine]]:
    source = create_engine("sqlite://", poolclass=StaticPool)
    target = create_engine("sqlite://", poolclass=StaticPool)
    yield source, target
    source.dispose()
    target.dispose()


def _spec(rules: str) -> str:
    body = "\n".join("    " + line for line in rules.strip().splitlines())
    return f"source: sqlite://\ntarget: sqlite://\ntables:\n  t:\n{body}\n"


# ------------------------------------------------------------------------------ value maps


def test_value_map_keys_with_leading_zeros_and_colons_stay_text(
    engines: tuple[Engine, Engine],
) -> None:
    # YAML 1.1 reads 010 as octal 8 and 1:30 as 90 (base 60): keys are source values.
    t = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, s VARCHAR(5))",
        "values: {s: {01: one, 010: eight, '02': two, 1:30: late}}",
    )
    out = t.apply(pa.table({"id": [1, 2, 3, 4], "s": ["01", "010", "02", "1:30"]}))
    assert rows(out) == [
        {"id": 1, "s": "one"},
        {"id": 2, "s": "eight"},
        {"id": 3, "s": "two"},
        {"id": 4, "s": "late"},
    ]
    assert balanced(out).rejected == 0


def test_value_map_with_boolean_keys_on_a_boolean_column(engines: tuple[Engine, Engine]) -> None:
    t = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, s BOOLEAN)",
        "values: {s: {true: yes, False: no}}",
    )
    out = t.apply(pa.table({"id": [1, 2, 3], "s": [True, False, None]}))
    assert rows(out) == [
        {"id": 1, "s": "yes"},
        {"id": 2, "s": "no"},
        {"id": 3, "s": None},
    ]
    assert balanced(out).rejected == 0


def test_value_map_with_boolean_keys_on_a_text_column(engines: tuple[Engine, Engine]) -> None:
    t = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, s VARCHAR(5))",
        "values: {s: {true: yes, false: no}}",
    )
    out = t.apply(pa.table({"id": [1, 2], "s": ["true", "false"]}))
    assert rows(out) == [{"id": 1, "s": "yes"}, {"id": 2, "s": "no"}]


def test_value_map_with_decimal_keys_on_an_integer_column(engines: tuple[Engine, Engine]) -> None:
    t = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, s INTEGER)",
        "values: {s: {1.0: one, 2: two}}",
    )
    out = t.apply(pa.table({"id": [1, 2], "s": [1, 2]}))
    assert rows(out) == [{"id": 1, "s": "one"}, {"id": 2, "s": "two"}]


def test_value_map_with_targets_of_mixed_types(engines: tuple[Engine, Engine]) -> None:
    t = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, s CHAR(1))",
        "values: {s: {A: 1, B: two, C: true}}",
    )
    out = t.apply(pa.table({"id": [1, 2, 3], "s": ["A", "B", "C"]}))
    assert rows(out) == [
        {"id": 1, "s": "1"},
        {"id": 2, "s": "two"},
        {"id": 3, "s": "true"},
    ]


def test_an_empty_value_map_rejects_every_value(engines: tuple[Engine, Engine]) -> None:
    t = transformer(
        engines, "CREATE TABLE t (id INTEGER PRIMARY KEY, s VARCHAR(3))", "values: {s: {}}"
    )
    out = t.apply(pa.table({"id": [1, 2], "s": ["A", None]}))
    assert rows(out) == [{"id": 2, "s": None}]
    assert [r[1] for r in rejects(out)] == ["value_map:s"]


def test_unmapped_keep_with_boolean_targets_on_an_integer_column(
    engines: tuple[Engine, Engine],
) -> None:
    # The column keeps the source's INTEGER type (5 must fit): mapped booleans become 1/0,
    # not the text 'true', which no integer column takes.
    t = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, s INTEGER)",
        "values: {s: {map: {1: true, 0: false}, unmapped: keep}}",
    )
    out = t.apply(pa.table({"id": [1, 2, 3], "s": [1, 0, 5]}))
    assert balanced(out).rejected == 0
    assert rows(out) == [{"id": 1, "s": 1}, {"id": 2, "s": 0}, {"id": 3, "s": 5}]


# -------------------------------------------------------------- rules naming other columns


@pytest.mark.parametrize(
    ("rules", "key"),
    [
        ("values: {stauts: {A: active}}", "values.stauts"),
        ("nulls: {stauts: inactive}", "nulls.stauts"),
        ("validate: {mail: email}", "validate.mail"),
        ("dedupe: {on: [mail]}", "dedupe.on"),
    ],
)
def test_a_rule_on_an_unknown_column_is_a_config_error(
    engines: tuple[Engine, Engine], rules: str, key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        transformer(engines, "CREATE TABLE t (id INTEGER PRIMARY KEY, status VARCHAR(3))", rules)
    assert caught.value.key == f"tables.t.{key}"
    assert "status" in str(caught.value)  # the columns there are


@pytest.mark.parametrize(
    ("rules", "where"),
    [
        ("nulls: {account_status: inactive}", "nulls"),
        ("values: {account_status: {A: active}}", "values"),
        ("validate: {account_status: email}", "validate"),
        ("dedupe: {on: [account_status]}", "dedupe"),
        ("types: {account_status: text}", "types"),
    ],
)
def test_a_rule_naming_a_source_column_after_a_rename_is_refused_when_parsed(
    rules: str, where: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job(_spec("columns: {id: id, account_status: status}\n" + rules), path=JOB)
    assert caught.value.file == JOB
    assert caught.value.key == f"tables.t.{where}.account_status" or (
        where == "dedupe" and caught.value.key == "tables.t.dedupe.on"
    )
    assert "status" in str(caught.value)


def test_a_default_of_the_wrong_type_is_a_config_error(engines: tuple[Engine, Engine]) -> None:
    with pytest.raises(ConfigError) as caught:
        transformer(
            engines, "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)", "nulls: {n: unknown}"
        )
    assert caught.value.key == "tables.t.nulls.n"
    assert "unknown" in str(caught.value)


def test_an_unknown_phone_region_is_refused_when_parsed() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job(_spec("validate: {phone: {rule: phone, region: UK}}"), path=JOB)
    assert caught.value.key == "tables.t.validate.phone"
    assert "GB" in str(caught.value)


# ---------------------------------------------------------------------------- de-duplication


def test_dedupe_null_keys_are_not_duplicates_of_each_other(engines: tuple[Engine, Engine]) -> None:
    t = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, e VARCHAR(30))",
        "dedupe: {on: [e]}",
    )
    out = t.apply(pa.table({"id": [1, 2, 3], "e": [None, None, "a@x.com"]}))
    second = t.apply(pa.table({"id": [4, 5], "e": [None, "a@x.com"]}))
    assert rows(out) == [{"id": 1, "e": None}, {"id": 2, "e": None}, {"id": 3, "e": "a@x.com"}]
    assert rows(second) == [{"id": 4, "e": None}]
    assert balanced(second).deduped == 1


def test_dedupe_merge_keeps_rows_with_null_keys_apart(engines: tuple[Engine, Engine]) -> None:
    t = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, e VARCHAR(30), n VARCHAR(5))",
        "dedupe: {on: [e], keep: merge}",
    )
    out = t.apply(
        pa.table(
            {
                "id": [1, 2, 3, 4],
                "e": [None, "a@x.com", None, "A@x.com"],
                "n": ["p", None, "q", "r"],
            }
        )
    )
    assert sorted(rows(out), key=lambda r: r["id"]) == [
        {"id": 1, "e": None, "n": "p"},
        {"id": 2, "e": "a@x.com", "n": "r"},
        {"id": 3, "e": None, "n": "q"},
    ]
    assert balanced(out).deduped == 1


def test_dedupe_ignores_surrounding_whitespace_as_it_ignores_case(
    engines: tuple[Engine, Engine],
) -> None:
    t = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, e VARCHAR(30))",
        "dedupe: {on: [e]}",
    )
    out = t.apply(pa.table({"id": [1, 2, 3], "e": ["a@x.com", " A@X.com ", "a@x.com\t"]}))
    assert rows(out) == [{"id": 1, "e": "a@x.com"}]
    assert balanced(out).deduped == 2


# ---------------------------------------------------------------------------- derived columns


def test_a_derived_column_failing_on_one_row_rejects_that_row(
    engines: tuple[Engine, Engine],
) -> None:
    t = transformer(
        engines,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER)",
        "derive: {r: 'a / b'}",
    )
    out = t.apply(pa.table({"id": [1, 2, 3, 4], "a": [4, 1, 9, None], "b": [2, 0, 3, 0]}))
    assert rows(out) == [
        {"id": 1, "a": 4, "b": 2, "r": 2},
        {"id": 3, "a": 9, "b": 3, "r": 3},
        {"id": 4, "a": None, "b": 0, "r": None},
    ]
    found = rejects(out)
    assert [(k, rule) for k, rule, _, _ in found] == [([2], "derive:r")]
    assert "divide by zero" in found[0][2]
    assert found[0][3] == {"id": 2, "a": 1, "b": 0}
    assert balanced(out).rejected == 1


def test_a_derive_syntax_error_names_the_file_and_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job(_spec("derive: {hour: 'HOUR(recorded_at'}"), path=JOB)
    assert caught.value.file == JOB
    assert caught.value.key == "tables.t.derive.hour"
    assert "syntax error" in str(caught.value)


def test_an_unknown_derive_function_names_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job(_spec("derive: {hour: 'HOURS(recorded_at)'}"), path=JOB)
    assert caught.value.key == "tables.t.derive.hour"
    assert "HOURS" in str(caught.value)


def test_an_aggregate_group_by_syntax_error_names_the_key() -> None:
    text = (
        "source: sqlite://\ntarget: sqlite://\naggregates:\n  hourly:\n    from: readings\n"
        "    group_by: {hour: \"DATE_TRUNC('hour', recorded_at\"}\n"
        "    measures: {n: 'count(*)'}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_job(text, path=JOB)
    assert caught.value.key == "aggregates.hourly.group_by.hour"


def test_a_derived_column_named_like_a_mapped_one_is_refused_when_parsed() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job(_spec("columns: {id: id, a: x}\nderive: {x: 'x + 1'}"), path=JOB)
    assert caught.value.key == "tables.t.derive.x"
    assert "already" in str(caught.value)


def test_a_derived_column_named_like_a_source_column_is_a_config_error(
    engines: tuple[Engine, Engine],
) -> None:
    # Without `columns` the clash shows only against the source table.
    with pytest.raises(ConfigError) as caught:
        transformer(
            engines,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER)",
            "derive: {a: 'b + 1'}",
        )
    assert caught.value.key == "tables.t.derive.a"


def test_a_derive_naming_a_source_column_after_a_rename_is_refused_when_parsed() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job(_spec("columns: {id: id, a: x}\nderive: {y: 'a + 1'}"), path=JOB)
    assert caught.value.key == "tables.t.derive.y"
    assert "`a`" in str(caught.value)


def test_a_refused_value_never_shows_the_password_env_expanded_into_it() -> None:
    text = "source: sqlite:///a.db\ntarget:\n  url: ${TGT}\ntables: {}\n"
    with pytest.raises(ConfigError) as caught:
        parse_job(text, path=JOB, env={"TGT": "postgresql://app:S3cretPW@db/x"})
    assert "S3cretPW" not in str(caught.value)
    assert "app:***@db" in str(caught.value)
