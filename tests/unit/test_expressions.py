"""Tests for derived-column expressions evaluated over Arrow tables."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pickle
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferry.data.expressions import (
    SUPPORTED_FUNCTIONS,
    Expression,
    ExpressionError,
    compile_expression,
)
from ferry.errors import FerryError

TS = pa.timestamp("us")


@pytest.fixture
def table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, None, 4], pa.int64()),
            "name": pa.array(["ab", None, "Zé", " pad "], pa.string()),
            "recorded_at": pa.array(
                [
                    dt.datetime(2024, 1, 7, 10, 30, 5),  # a Sunday
                    None,
                    dt.datetime(2024, 2, 29, 23, 59, 59),  # a Thursday
                    dt.datetime(2023, 12, 31, 0, 0, 0),
                ],
                TS,
            ),
            "x": pa.array([1.25, -2.5, None, 10.0], pa.float64()),
            "flag": pa.array([True, None, False, True], pa.bool_()),
            "d": pa.array([dt.date(2024, 3, 15), None, dt.date(2024, 1, 1), dt.date(2024, 2, 29)]),
        }
    )


def run(text: str, table: pa.Table) -> list[Any]:
    result = compile_expression(text).evaluate(table)
    assert len(result) == table.num_rows
    return list(result.to_pylist())


def result_type(text: str, table: pa.Table) -> pa.DataType:
    return compile_expression(text).evaluate(table).type


# ----------------------------------------------------------------------- the spec examples


def test_spec_examples(table: pa.Table) -> None:
    assert run("HOUR(recorded_at)", table) == [10, None, 23, 0]
    assert run("DATE_TRUNC('hour', recorded_at)", table) == [
        dt.datetime(2024, 1, 7, 10),
        None,
        dt.datetime(2024, 2, 29, 23),
        dt.datetime(2023, 12, 31),
    ]
    assert run("UPPER(name) || '-' || CAST(id AS VARCHAR)", table) == [
        "AB-1",
        None,
        None,
        " PAD -4",
    ]


# ------------------------------------------------------------------------- leaves, literals


def test_column_reference_returns_the_column(table: pa.Table) -> None:
    assert run("id", table) == [1, 2, None, 4]
    assert run("(id)", table) == [1, 2, None, 4]


@pytest.mark.parametrize(
    ("text", "expected", "arrow_type"),
    [
        ("42", 42, pa.int64()),
        ("1.5", 1.5, pa.float64()),
        ("1.5e3", 1500.0, pa.float64()),
        ("'it''s'", "it's", pa.string()),
        ("'ünï ☃'", "ünï ☃", pa.string()),
        ("TRUE", True, pa.bool_()),
        ("FALSE", False, pa.bool_()),
        ("NULL", None, pa.null()),
        ("-3", -3, pa.int64()),
        ("99999999999999999999", 1e20, pa.float64()),
    ],
)
def test_literal_broadcasts_to_table_length(
    table: pa.Table, text: str, expected: Any, arrow_type: pa.DataType
) -> None:
    result = compile_expression(text).evaluate(table)
    assert isinstance(result, pa.Array)
    assert result.type == arrow_type
    assert result.to_pylist() == [expected] * table.num_rows


def test_literal_on_empty_table() -> None:
    empty = pa.table({"a": pa.array([], pa.int64())})
    assert run("1 + 1", empty) == []
    assert run("a + 1", empty) == []


def test_table_without_columns_broadcasts_literals() -> None:
    no_columns = pa.table({"a": [1, 2]}).drop_columns(["a"])
    assert no_columns.num_rows == 2
    assert run("'x'", no_columns) == ["x", "x"]


def test_chunked_columns_keep_working(table: pa.Table) -> None:
    chunked = pa.concat_tables([table, table])
    assert chunked.column("id").num_chunks == 2
    expected = ["small", None, "small", " pad "] * 2
    assert run("CASE WHEN id > 1 THEN name ELSE 'small' END", chunked) == expected
    assert run("COALESCE(id, 0) + 1", chunked) == [2, 3, 1, 5] * 2


def test_string_view_and_dictionary_columns_are_read_as_strings() -> None:
    t = pa.table(
        {
            "v": pa.array(["a", None], pa.string_view()),
            "k": pa.array(["x", "y"]).dictionary_encode(),
        }
    )
    assert run("UPPER(v) || k", t) == ["Ax", None]


def test_large_string_mixes_with_string() -> None:
    t = pa.table({"s": pa.array(["a", "b"], pa.large_string())})
    assert run("s || '-' || 1", t) == ["a-1", "b-1"]


# ------------------------------------------------------------------------------ arithmetic


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id + 1", [2, 3, None, 5]),
        ("id - 1", [0, 1, None, 3]),
        ("id * 3", [3, 6, None, 12]),
        ("id / 2", [0, 1, None, 2]),  # integer operands: integer quotient (pyarrow divide)
        ("-id / 4", [0, 0, None, -1]),  # truncated toward zero
        ("x / 2", [0.625, -1.25, None, 5.0]),
        ("id / 2.0", [0.5, 1.0, None, 2.0]),
        ("id % 3", [1, 2, None, 1]),
        ("-id % 3", [-1, -2, None, -1]),  # sign of the dividend, as in SQL
        ("x % 2", [1.25, -0.5, None, 0.0]),
        ("id + x", [2.25, -0.5, None, 14.0]),
        ("-x", [-1.25, 2.5, None, -10.0]),
        ("1 + 2 * 3", [7] * 4),
        ("(1 + 2) * 3", [9] * 4),
        ("id + NULL", [None] * 4),
        ("NULL * NULL", [None] * 4),
    ],
)
def test_arithmetic(table: pa.Table, text: str, expected: list[Any]) -> None:
    assert run(text, table) == expected


def test_integer_division_by_zero_raises(table: pa.Table) -> None:
    with pytest.raises(ExpressionError, match="divide by zero") as info:
        compile_expression("id / 0").evaluate(table)
    assert "`id / 0`" in str(info.value)


def test_float_division_by_zero_follows_pyarrow(table: pa.Table) -> None:
    assert run("x / 0", table)[:2] == [float("inf"), float("-inf")]


def test_integer_overflow_raises_instead_of_wrapping() -> None:
    t = pa.table({"n": pa.array([2**62], pa.int64())})
    with pytest.raises(ExpressionError, match="overflow"):
        compile_expression("n * 4").evaluate(t)


# ------------------------------------------------------------------------------ comparisons


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id = 2", [False, True, None, False]),
        ("id <> 2", [True, False, None, True]),
        ("id != 2", [True, False, None, True]),
        ("id < 2", [True, False, None, False]),
        ("id <= 2", [True, True, None, False]),
        ("id > 2", [False, False, None, True]),
        ("id >= 2", [False, True, None, True]),
        ("name = 'ab'", [True, None, False, False]),
        ("id = NULL", [None] * 4),
        ("NULL = NULL", [None] * 4),
        ("id = '2'", [False, True, None, False]),  # a string literal takes the column's type
        ("recorded_at >= '2024-01-01'", [True, None, True, False]),
        ("d = '2024-02-29'", [False, None, False, True]),
        ("flag = 'true'", [True, None, False, True]),
    ],
)
def test_comparisons(table: pa.Table, text: str, expected: list[Any]) -> None:
    assert run(text, table) == expected


def test_comparing_text_with_number_column_that_is_not_a_literal_fails(table: pa.Table) -> None:
    with pytest.raises(ExpressionError, match="does not apply"):
        compile_expression("name = id").evaluate(table)


def test_string_literal_that_does_not_fit_the_column_type_fails(table: pa.Table) -> None:
    with pytest.raises(ExpressionError, match="cannot evaluate"):
        compile_expression("id = 'two'").evaluate(table)


# -------------------------------------------------------------------------- boolean logic


def test_three_valued_logic() -> None:
    t = pa.table(
        {
            "a": pa.array([True, True, True, False, False, False, None, None, None]),
            "b": pa.array([True, False, None, True, False, None, True, False, None]),
        }
    )
    assert run("a AND b", t) == [True, False, None, False, False, False, None, False, None]
    assert run("a OR b", t) == [True, True, True, True, False, None, True, None, None]
    assert run("NOT a", t) == [False] * 3 + [True] * 3 + [None] * 3
    assert run("a AND NULL", t) == [None] * 3 + [False] * 3 + [None] * 3
    assert run("a OR NULL", t) == [True] * 3 + [None] * 6
    assert run("NOT NULL", t) == [None] * 9


def test_is_null_and_is_not_null(table: pa.Table) -> None:
    assert run("id IS NULL", table) == [False, False, True, False]
    assert run("id IS NOT NULL", table) == [True, True, False, True]
    assert run("NULL IS NULL", table) == [True] * 4
    assert run("name || 'x' IS NULL", table) == [False, True, False, False]


def test_is_true_and_is_false_never_return_null(table: pa.Table) -> None:
    assert run("flag IS TRUE", table) == [True, False, False, True]
    assert run("flag IS NOT TRUE", table) == [False, True, True, False]
    assert run("flag IS FALSE", table) == [False, False, True, False]


def test_logic_on_comparisons(table: pa.Table) -> None:
    assert run("id > 1 AND x > 0", table) == [False, False, None, True]
    assert run("id = 1 OR name IS NULL", table) == [True, True, None, False]


def test_and_on_non_boolean_fails(table: pa.Table) -> None:
    with pytest.raises(ExpressionError, match="does not apply"):
        compile_expression("id AND flag").evaluate(table)


# -------------------------------------------------------------------------------- strings


def test_concat_operator_propagates_null(table: pa.Table) -> None:
    assert run("name || '!'", table) == ["ab!", None, "Zé!", " pad !"]
    assert run("name || NULL", table) == [None] * 4
    assert run("'a' || 'b'", table) == ["ab"] * 4


def test_concat_operator_converts_non_strings(table: pa.Table) -> None:
    assert run("id || ':' || flag", table) == ["1:true", None, None, "4:true"]
    assert run("'on ' || d", table) == ["on 2024-03-15", None, "on 2024-01-01", "on 2024-02-29"]


def test_concat_function(table: pa.Table) -> None:
    assert run("CONCAT(name, '-', id)", table) == ["ab-1", None, None, " pad -4"]
    assert run("CONCAT(name)", table) == ["ab", None, "Zé", " pad "]
    assert run("CONCAT(COALESCE(name, ''), '-', COALESCE(id, 0))", table) == [
        "ab-1",
        "-2",
        "Zé-0",
        " pad -4",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("UPPER(name)", ["AB", None, "ZÉ", " PAD "]),
        ("LOWER(name)", ["ab", None, "zé", " pad "]),
        ("LOWER('ÀÉÎ')", ["àéî"] * 4),
        ("TRIM(name)", ["ab", None, "Zé", "pad"]),
        ("LTRIM(name)", ["ab", None, "Zé", "pad "]),
        ("RTRIM(name)", ["ab", None, "Zé", " pad"]),
        ("TRIM(BOTH 'a' FROM name)", ["b", None, "Zé", " pad "]),
        ("TRIM(LEADING 'a' FROM 'aaxa')", ["xa"] * 4),
        ("TRIM(TRAILING 'a' FROM 'aaxa')", ["aax"] * 4),
        ("LENGTH(name)", [2, None, 2, 5]),
        ("LENGTH('☃☃')", [2] * 4),
        ("LENGTH('')", [0] * 4),
        ("UPPER(NULL)", [None] * 4),
        ("LENGTH(NULL)", [None] * 4),
    ],
)
def test_string_functions(table: pa.Table, text: str, expected: list[Any]) -> None:
    assert run(text, table) == expected


def test_trim_removes_spaces_only_like_sql() -> None:
    t = pa.table({"s": ["\t x \n", "  y  "]})
    assert run("TRIM(s)", t) == ["\t x \n", "y"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SUBSTRING(s, 1, 3)", "héç"),
        ("SUBSTRING(s, 2, 3)", "éçl"),
        ("SUBSTRING(s, 2)", "éçlo"),
        ("SUBSTR(s, 4)", "lo"),
        ("SUBSTRING(s, 5, 10)", "o"),
        ("SUBSTRING(s, 6)", ""),
        ("SUBSTRING(s, 0, 3)", "hé"),  # positions 0..2: only 1 and 2 exist
        ("SUBSTRING(s, -1, 3)", "h"),
        ("SUBSTRING(s, -5, 3)", ""),
        ("SUBSTRING(s, 2, 0)", ""),
        ("SUBSTRING(s FROM 2 FOR 2)", "éç"),
    ],
)
def test_substring_is_one_based_and_counts_characters(text: str, expected: str) -> None:
    t = pa.table({"s": ["héçlo", None]})
    assert run(text, t) == [expected, None]


def test_substring_rejects_negative_length() -> None:
    with pytest.raises(ExpressionError, match="must not be negative"):
        compile_expression("SUBSTRING(s, 1, -1)")


def test_substring_needs_literal_positions() -> None:
    with pytest.raises(ExpressionError, match="integer literal"):
        compile_expression("SUBSTRING(s, n)")
    with pytest.raises(ExpressionError, match="start position"):
        compile_expression("SUBSTRING(s)")


def test_string_function_on_number_fails_with_cast_hint(table: pa.Table) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("UPPER(id)").evaluate(table)
    assert "`UPPER(id)`" in info.value.message
    assert info.value.hint is not None
    assert "CAST(x AS VARCHAR)" in info.value.hint


# ------------------------------------------------------------------- CASE / IF / COALESCE


def test_searched_case(table: pa.Table) -> None:
    text = "CASE WHEN id > 2 THEN 'big' WHEN id IS NULL THEN 'none' ELSE 'small' END"
    assert run(text, table) == ["small", "small", "none", "big"]


def test_case_first_true_branch_wins(table: pa.Table) -> None:
    assert run("CASE WHEN id >= 1 THEN 'a' WHEN id >= 2 THEN 'b' END", table) == [
        "a",
        "a",
        None,
        "a",
    ]


def test_case_null_condition_counts_as_false(table: pa.Table) -> None:
    assert run("CASE WHEN flag THEN 'yes' ELSE 'no' END", table) == ["yes", "no", "no", "yes"]


def test_case_without_else_gives_null(table: pa.Table) -> None:
    assert run("CASE WHEN id = 1 THEN x END", table) == [1.25, None, None, None]


def test_simple_case(table: pa.Table) -> None:
    text = "CASE id WHEN 1 THEN 'one' WHEN 2 THEN 'two' ELSE 'many' END"
    assert run(text, table) == ["one", "two", "many", "many"]


def test_simple_case_with_null_subject_matches_nothing(table: pa.Table) -> None:
    assert run("CASE NULL WHEN 1 THEN 'one' ELSE 'other' END", table) == ["other"] * 4


def test_case_results_of_mixed_numeric_types_and_nulls(table: pa.Table) -> None:
    result = compile_expression("CASE WHEN id = 1 THEN 1 WHEN id = 2 THEN NULL ELSE 2.5 END")
    values = result.evaluate(table)
    assert values.type == pa.float64()
    assert values.to_pylist() == [1.0, None, 2.5, 2.5]


def test_case_with_only_null_results(table: pa.Table) -> None:
    assert run("CASE WHEN flag THEN NULL END", table) == [None] * 4


def test_case_with_literal_conditions(table: pa.Table) -> None:
    assert run("CASE WHEN 1 = 1 THEN 'a' ELSE 'b' END", table) == ["a"] * 4


def test_case_with_incompatible_results_fails(table: pa.Table) -> None:
    with pytest.raises(ExpressionError, match="CASE"):
        compile_expression("CASE WHEN flag THEN 'a' ELSE 1 END").evaluate(table)


def test_if_function(table: pa.Table) -> None:
    assert run("IF(flag, 'y', 'n')", table) == ["y", "n", "n", "y"]
    assert run("IF(id > 1, id)", table) == [None, 2, None, 4]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("COALESCE(id, 0)", [1, 2, 0, 4]),
        ("COALESCE(name, 'n/a')", ["ab", "n/a", "Zé", " pad "]),
        ("COALESCE(NULL, id, 9)", [1, 2, 9, 4]),
        ("COALESCE(id)", [1, 2, None, 4]),
        ("COALESCE(NULL, NULL)", [None] * 4),
        ("IFNULL(id, -1)", [1, 2, -1, 4]),
        ("COALESCE(id, x)", [1.0, 2.0, None, 4.0]),
        ("NULLIF(id, 2)", [1, None, None, 4]),
        ("NULLIF(id, NULL)", [1, 2, None, 4]),
        ("NULLIF(NULL, 1)", [None] * 4),
        ("NULLIF(name, 'ab')", [None, None, "Zé", " pad "]),
    ],
)
def test_coalesce_and_nullif(table: pa.Table, text: str, expected: list[Any]) -> None:
    assert run(text, table) == expected


# ----------------------------------------------------------------------------------- CAST


@pytest.mark.parametrize(
    ("text", "arrow_type", "expected"),
    [
        ("CAST(id AS VARCHAR)", pa.string(), ["1", "2", None, "4"]),
        ("CAST(id AS TEXT)", pa.string(), ["1", "2", None, "4"]),
        ("CAST(name AS VARCHAR(1))", pa.string(), ["a", None, "Z", " "]),
        ("CAST(id AS INTEGER)", pa.int32(), [1, 2, None, 4]),
        ("CAST(id AS BIGINT)", pa.int64(), [1, 2, None, 4]),
        ("CAST(id AS DOUBLE)", pa.float64(), [1.0, 2.0, None, 4.0]),
        ("CAST(x AS INTEGER)", pa.int32(), [1, -3, None, 10]),  # halves away from zero
        (
            "CAST(x AS DECIMAL(6, 1))",
            pa.decimal128(6, 1),
            [Decimal("1.3"), Decimal("-2.5"), None, Decimal("10.0")],
        ),
        ("CAST(flag AS VARCHAR)", pa.string(), ["true", None, "false", "true"]),
        (
            "CAST(recorded_at AS DATE)",
            pa.date32(),
            [dt.date(2024, 1, 7), None, dt.date(2024, 2, 29), dt.date(2023, 12, 31)],
        ),
        (
            "CAST(d AS TIMESTAMP)",
            TS,
            [dt.datetime(2024, 3, 15), None, dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 29)],
        ),
        ("CAST(NULL AS INTEGER)", pa.int32(), [None] * 4),
        ("CAST(' 12 ' AS INTEGER)", pa.int32(), [12] * 4),
        ("CAST('2.50' AS DECIMAL(4, 2))", pa.decimal128(4, 2), [Decimal("2.50")] * 4),
        ("CAST('true' AS BOOLEAN)", pa.bool_(), [True] * 4),
        ("CAST('2024-05-06' AS DATE)", pa.date32(), [dt.date(2024, 5, 6)] * 4),
        ("CAST('2024-05-06 07:08:09' AS DATE)", pa.date32(), [dt.date(2024, 5, 6)] * 4),
        ("CAST('2024-05-06 07:08:09' AS TIMESTAMP)", TS, [dt.datetime(2024, 5, 6, 7, 8, 9)] * 4),
        ("CAST(1 AS DECIMAL(40, 2))", pa.decimal256(40, 2), [Decimal("1.00")] * 4),
        ("id::BIGINT", pa.int64(), [1, 2, None, 4]),
    ],
)
def test_cast(table: pa.Table, text: str, arrow_type: pa.DataType, expected: list[Any]) -> None:
    result = compile_expression(text).evaluate(table)
    assert result.type == arrow_type
    assert result.to_pylist() == expected


def test_cast_keeps_timestamp_precision() -> None:
    t = pa.table({"ts": pa.array([1_700_000_000_000_000_001], pa.timestamp("ns"))})
    assert result_type("CAST(ts AS TIMESTAMP)", t) == pa.timestamp("ns")


def test_cast_failure_names_the_cast(table: pa.Table) -> None:
    with pytest.raises(ExpressionError, match="Failed to parse string") as info:
        compile_expression("CAST(name AS INTEGER)").evaluate(table)
    assert "CAST(name AS INT)" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CAST(a AS BLOB)", "cannot CAST to VARBINARY"),
        ("CAST(a AS DECIMAL)", "DECIMAL needs a precision and scale"),
        ("CAST(a AS DECIMAL(3, 5))", "invalid precision or scale"),
        ("CAST(a AS TIME)", "cannot CAST to TIME"),
        ("TRY_CAST(a AS INT)", "TRY_CAST"),
    ],
)
def test_unsupported_casts(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        compile_expression(text)


# ------------------------------------------------------------------------------------ maths


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ROUND(x)", [1.0, -3.0, None, 10.0]),  # halves away from zero, as in SQL
        ("ROUND(x, 1)", [1.3, -2.5, None, 10.0]),
        ("ROUND(id, -1)", [0, 0, None, 0]),
        ("ROUND(1234, -2)", [1200] * 4),
        ("ROUND(2.5)", [3.0] * 4),
        ("ROUND(-0.5)", [-1.0] * 4),
        ("ABS(x)", [1.25, 2.5, None, 10.0]),
        ("ABS(-id)", [1, 2, None, 4]),
        ("ABS(NULL)", [None] * 4),
        ("ROUND(NULL)", [None] * 4),
    ],
)
def test_math_functions(table: pa.Table, text: str, expected: list[Any]) -> None:
    assert run(text, table) == expected


def test_round_digits_must_be_literal() -> None:
    with pytest.raises(ExpressionError, match="ROUND digits"):
        compile_expression("ROUND(x, id)")


# ------------------------------------------------------------------------------ date, time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("YEAR(recorded_at)", [2024, None, 2024, 2023]),
        ("MONTH(recorded_at)", [1, None, 2, 12]),
        ("DAY(recorded_at)", [7, None, 29, 31]),
        ("HOUR(recorded_at)", [10, None, 23, 0]),
        ("MINUTE(recorded_at)", [30, None, 59, 0]),
        ("SECOND(recorded_at)", [5, None, 59, 0]),
        ("QUARTER(recorded_at)", [1, None, 1, 4]),
        ("DAYOFWEEK(recorded_at)", [1, None, 5, 1]),  # 1 = Sunday ... 7 = Saturday
        ("EXTRACT(YEAR FROM recorded_at)", [2024, None, 2024, 2023]),
        ("EXTRACT(month FROM recorded_at)", [1, None, 2, 12]),
        ("EXTRACT(HOUR FROM recorded_at)", [10, None, 23, 0]),
        ("EXTRACT(DOW FROM recorded_at)", [0, None, 4, 0]),  # 0 = Sunday
        ("EXTRACT(ISODOW FROM recorded_at)", [7, None, 4, 7]),  # 7 = Sunday
        ("EXTRACT(DOY FROM recorded_at)", [7, None, 60, 365]),
        ("YEAR(d)", [2024, None, 2024, 2024]),
        ("DAY(d)", [15, None, 1, 29]),
        ("HOUR(d)", [0, None, 0, 0]),  # a date is midnight
        ("HOUR(NULL)", [None] * 4),
    ],
)
def test_date_parts(table: pa.Table, text: str, expected: list[Any]) -> None:
    assert run(text, table) == expected


def test_date_function(table: pa.Table) -> None:
    result = compile_expression("DATE(recorded_at)").evaluate(table)
    assert result.type == pa.date32()
    assert result.to_pylist() == [
        dt.date(2024, 1, 7),
        None,
        dt.date(2024, 2, 29),
        dt.date(2023, 12, 31),
    ]
    assert run("DATE('2024-05-06 10:00:00')", table) == [dt.date(2024, 5, 6)] * 4
    assert run("DATE(d)", table) == table.column("d").to_pylist()


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("minute", dt.datetime(2024, 2, 29, 23, 59)),
        ("hour", dt.datetime(2024, 2, 29, 23)),
        ("day", dt.datetime(2024, 2, 29)),
        ("week", dt.datetime(2024, 2, 26)),  # weeks start on Monday
        ("month", dt.datetime(2024, 2, 1)),
        ("quarter", dt.datetime(2024, 1, 1)),
        ("year", dt.datetime(2024, 1, 1)),
        ("second", dt.datetime(2024, 2, 29, 23, 59, 59)),
    ],
)
def test_date_trunc(unit: str, expected: dt.datetime) -> None:
    t = pa.table({"ts": pa.array([dt.datetime(2024, 2, 29, 23, 59, 59, 123456), None], TS)})
    assert run(f"DATE_TRUNC('{unit}', ts)", t) == [expected, None]
    assert run(f"DATE_TRUNC('{unit.upper()}', ts)", t) == [expected, None]


def test_date_trunc_keeps_the_input_type(table: pa.Table) -> None:
    assert result_type("DATE_TRUNC('hour', recorded_at)", table) == TS
    assert run("DATE_TRUNC('month', d)", table) == [
        dt.date(2024, 3, 1),
        None,
        dt.date(2024, 1, 1),
        dt.date(2024, 2, 1),
    ]


def test_timestamp_trunc_spelling(table: pa.Table) -> None:
    assert run("TIMESTAMP_TRUNC(recorded_at, DAY)", table)[0] == dt.datetime(2024, 1, 7)


def test_date_functions_on_strings_fail_with_cast_hint(table: pa.Table) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("HOUR(name)").evaluate(table)
    assert info.value.hint is not None
    assert "CAST(x AS TIMESTAMP)" in info.value.hint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DATE_TRUNC('fortnight', ts)", "unit `fortnight` is not supported"),
        ("DATE_TRUNC('hour', ts, 'UTC')", "`zone` argument is not supported"),
        ("EXTRACT(EPOCH FROM ts)", "EXTRACT\\(EPOCH FROM ...\\) is not supported"),
    ],
)
def test_unsupported_date_arguments(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        compile_expression(text)


# -------------------------------------------------------------------------- null propagation


@pytest.mark.parametrize(
    "text",
    [
        "UPPER(name)",
        "LOWER(name)",
        "TRIM(name)",
        "LENGTH(name)",
        "SUBSTRING(name, 1, 1)",
        "name || 'x'",
        "CONCAT('x', name)",
        "CAST(name AS VARCHAR)",
        "ABS(id)",
        "ROUND(id)",
        "id + 1",
        "id - 1",
        "id * 1",
        "id / 1",
        "id % 2",
        "-id",
        "id = 1",
        "id < 1",
        "NOT (id = 1)",
        "HOUR(recorded_at)",
        "YEAR(recorded_at)",
        "DATE(recorded_at)",
        "DATE_TRUNC('day', recorded_at)",
        "NULLIF(id, 1)",
        "COALESCE(id, NULL)",
    ],
)
def test_null_in_null_out(text: str) -> None:
    t = pa.table(
        {
            "name": pa.array([None], pa.string()),
            "id": pa.array([None], pa.int64()),
            "recorded_at": pa.array([None], TS),
        }
    )
    assert run(text, t) == [None]


# ------------------------------------------------------------------------------- columns()


def test_columns_lists_every_reference() -> None:
    e = compile_expression(
        "CASE WHEN a > 1 THEN UPPER(b) ELSE \"Weird Col\" END || CAST(c AS VARCHAR) || 'lit'"
    )
    assert e.columns() == {"a", "b", "c", "Weird Col"}
    assert compile_expression("1 + 2").columns() == set()


def test_columns_returns_a_copy() -> None:
    e = compile_expression("a + b")
    e.columns().add("zzz")
    assert e.columns() == {"a", "b"}


def test_expression_is_frozen_and_keeps_its_text() -> None:
    e = compile_expression("a + 1")
    assert isinstance(e, Expression)
    assert e.text == "a + 1"
    assert str(e) == "a + 1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.text = "b"  # type: ignore[misc]


def test_expression_pickles_by_recompiling() -> None:
    e = compile_expression("UPPER(a) || '!'")
    copy = pickle.loads(pickle.dumps(e))
    assert copy.text == e.text
    assert copy.evaluate(pa.table({"a": ["x"]})).to_pylist() == ["X!"]


def test_compiled_expression_is_reusable_across_tables() -> None:
    e = compile_expression("a * 2")
    assert e.evaluate(pa.table({"a": [1]})).to_pylist() == [2]
    assert e.evaluate(pa.table({"a": [1.5, 2.0]})).to_pylist() == [3.0, 4.0]


# ---------------------------------------------------------------------- column resolution


def test_quoted_column_names() -> None:
    t = pa.table({"Weird Col": [1, 2], "a.b": [3, 4]})
    assert run('"Weird Col" + 1', t) == [2, 3]
    assert run('"a.b"', t) == [3, 4]


def test_unquoted_names_match_case_insensitively() -> None:
    t = pa.table({"Name": ["x"], "id": [1]})
    assert run("UPPER(name)", t) == ["X"]
    assert run("ID", t) == [1]


def test_quoted_names_match_exactly() -> None:
    t = pa.table({"Name": ["x"]})
    with pytest.raises(ExpressionError, match="unknown column `name`"):
        compile_expression('"name"').evaluate(t)


def test_exact_match_wins_over_case_insensitive() -> None:
    t = pa.table({"a": [1], "A": [2]})
    assert run("a", t) == [1]
    assert run("A", t) == [2]
    with pytest.raises(ExpressionError, match="ambiguous"):
        compile_expression("UPPER(CAST(aa AS VARCHAR)) || a").evaluate(
            pa.table({"AA": [1], "aA": [2], "a": [3]})
        )


def test_unknown_column_names_it_and_lists_available(table: pa.Table) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("UPPER(nmae) || nope").evaluate(table)
    err = info.value
    assert "UPPER(nmae) || nope" in err.message
    assert "`nmae`" in err.message
    assert "`nope`" in err.message
    assert err.hint is not None
    assert "available columns: id, name, recorded_at, x, flag, d" in err.hint


def test_unknown_column_is_reported_even_in_an_unused_branch(table: pa.Table) -> None:
    with pytest.raises(ExpressionError, match="unknown column `ghost`"):
        compile_expression("CASE WHEN FALSE THEN ghost ELSE 1 END").evaluate(table)


def test_qualified_column_is_rejected() -> None:
    with pytest.raises(ExpressionError, match=r"qualified column `t\.a`"):
        compile_expression("t.a + 1")


# ------------------------------------------------------------------------ compile errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FOO(a)", "unknown function FOO()"),
        ("weekday(a)", "unknown function WEEKDAY()"),
        ("SUM(a)", "function SUM() is not supported"),
        ("SQRT(a)", "function SQRT() is not supported"),
        ("COUNT(*)", "function COUNT() is not supported"),
        ("a BETWEEN 1 AND 2", "is not supported"),
        ("a IN (1, 2)", "is not supported"),
        ("a LIKE 'x%'", "is not supported"),
        ("*", "is not supported"),
        ("a AS b", "alias"),
        ("a b", "alias"),
        ("SELECT a", "single expression"),
        ("a; b", "single expression"),
    ],
)
def test_unsupported_constructs(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert message in info.value.message
    assert f"`{text}`" in info.value.message


@pytest.mark.parametrize(
    "text",
    ["a +", "HOUR(", "UPPER()", "(a", "a, b", "CAST(a AS)", "CASE WHEN a END", "'open", "1 +* 2"],
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(ExpressionError, match="syntax error") as info:
        compile_expression(text)
    assert f"`{text}`" in info.value.message
    assert "\x1b[" not in str(info.value)  # no terminal colour codes from sqlglot


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_expression(text: str) -> None:
    with pytest.raises(ExpressionError, match="empty"):
        compile_expression(text)


def test_error_hint_lists_supported_functions() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("FROBNICATE(a)")
    hint = info.value.hint
    assert hint is not None
    for name in ("UPPER", "DATE_TRUNC", "COALESCE", "CAST", "SUBSTRING", "HOUR"):
        assert name in hint
    assert set(SUPPORTED_FUNCTIONS) <= set(hint.replace(",", " ").split())


def test_expression_error_is_a_ferry_error_with_exit_code_2() -> None:
    with pytest.raises(FerryError) as info:
        compile_expression("FOO(a)")
    assert isinstance(info.value, ExpressionError)
    assert info.value.exit_code == 2
    assert "hint:" in str(info.value)


def test_compile_does_not_need_a_table() -> None:
    # Checking happens at compile time: a typo in a function fails before any data moves.
    e = compile_expression("DATE_TRUNC('day', never_seen_column)")
    assert e.columns() == {"never_seen_column"}


# --------------------------------------------------------------------------- properties


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.integers(min_value=-(10**9), max_value=10**9)),
        min_size=0,
        max_size=30,
    )
)
def test_arithmetic_matches_python_for_ints(values: list[int | None]) -> None:
    t = pa.table({"a": pa.array(values, pa.int64())})
    assert run("a * 2 + 1", t) == [None if v is None else v * 2 + 1 for v in values]
    assert run("COALESCE(a, 0) - a", t) == [None if v is None else 0 for v in values]
    assert run("a IS NULL", t) == [v is None for v in values]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=1, max_size=20))
def test_string_functions_match_python(values: list[str | None]) -> None:
    t = pa.table({"s": pa.array(values, pa.string())})
    assert run("LENGTH(s)", t) == [None if v is None else len(v) for v in values]
    assert run("SUBSTRING(s, 2, 3)", t) == [None if v is None else v[1:4] for v in values]
    assert run("s || '|'", t) == [None if v is None else v + "|" for v in values]


@pytest.mark.parametrize(
    "text", ["HOUR(recorded_at)", "YEAR(d)", "EXTRACT(DOW FROM recorded_at)", "HOUR(NULL)"]
)
def test_date_parts_are_integers(table: pa.Table, text: str) -> None:
    # a derived hour becomes an INTEGER column, as MySQL's HOUR() returns
    assert compile_expression(text).evaluate(table).type == pa.int32()
