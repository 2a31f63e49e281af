"""Row-by-row comparison in Arrow (ferry.validate.compare): which keys are missing, extra or
different (and in which columns), and the canonicalisation that keeps engines' representations
of floats, timestamps, decimals and text from raising false alarms."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from ferry.validate.compare import Canon, Diff, compare


def table(columns: dict[str, Any], types: dict[str, pa.DataType] | None = None) -> pa.Table:
    types = types or {}
    return pa.table({name: pa.array(values, types.get(name)) for name, values in columns.items()})


def diff(
    expected: pa.Table,
    actual: pa.Table,
    key: list[str] | None = None,
    *,
    max_keys: int = 20,
    **canon: Any,
) -> Diff:
    return compare(expected, actual, key or ["id"], canon=Canon(**canon), max_keys=max_keys)


def different(found: Diff) -> list[tuple[Any, list[str]]]:
    return [(k, sorted(c)) for k, c in found.different]


def assert_same(found: Diff, rows: int) -> None:
    assert (found.missing, found.extra, found.different) == ([], [], [])
    assert (found.missing_count, found.extra_count, found.different_count) == (0, 0, 0)
    assert found.compared == rows


# ------------------------------------------------------------ missing, extra, different


def test_identical_tables_have_no_difference() -> None:
    rows = {"id": [1, 2, 3], "name": ["a", "b", "c"], "n": [10, None, 30]}
    assert_same(diff(table(rows), table(rows)), 3)


def test_missing_extra_and_different_rows_by_key() -> None:
    expected = table({"id": [1, 2, 3, 4], "name": ["a", "b", "c", "d"], "n": [1, 2, 3, 4]})
    actual = table({"id": [5, 4, 2, 1], "name": ["e", "d", "B", "a"], "n": [5, 40, 2, 1]})

    found = diff(expected, actual)

    assert found.missing == [{"id": 3}]
    assert found.extra == [{"id": 5}]
    assert different(found) == [({"id": 2}, ["name"]), ({"id": 4}, ["n"])]
    assert (found.missing_count, found.extra_count, found.different_count) == (1, 1, 2)
    assert found.compared == 3


def test_row_order_does_not_matter() -> None:
    expected = table({"id": [3, 1, 2], "v": ["c", "a", "b"]})
    actual = table({"id": [1, 2, 3], "v": ["a", "b", "c"]})
    assert_same(diff(expected, actual), 3)


def test_only_columns_both_sides_have_are_compared() -> None:
    expected = table({"id": [1], "v": ["a"], "dropped": ["x"]})
    actual = table({"id": [1], "v": ["a"], "added": ["y"]})
    assert_same(diff(expected, actual), 1)


def test_nothing_matches_in_a_range() -> None:
    """Every expected row missing and every target row extra: nothing is left to compare."""
    found = diff(table({"id": [1, 2], "v": ["a", "b"]}), table({"id": [3], "v": ["c"]}))
    assert (found.missing, found.extra, found.different) == (
        [{"id": 1}, {"id": 2}],
        [{"id": 3}],
        [],
    )
    assert (found.missing_count, found.extra_count, found.different_count) == (2, 1, 0)
    assert found.compared == 0


def test_an_empty_range_on_both_sides() -> None:
    empty = table({"id": [], "v": []}, {"id": pa.int64(), "v": pa.string()})
    assert_same(diff(empty, empty), 0)


def test_tables_of_several_batches() -> None:
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])
    expected = pa.Table.from_batches(
        [
            pa.record_batch([pa.array([1, 2]), pa.array(["a", "b"])], schema=schema),
            pa.record_batch([pa.array([3, 4]), pa.array(["c", "d"])], schema=schema),
        ]
    )
    actual = pa.Table.from_batches(
        [
            pa.record_batch([pa.array([4]), pa.array(["d"])], schema=schema),
            pa.record_batch([pa.array([1, 2, 3]), pa.array(["a", "x", "c"])], schema=schema),
        ]
    )
    found = diff(expected, actual)
    assert different(found) == [({"id": 2}, ["v"])]
    assert found.compared == 4


# ----------------------------------------------------------------------------- NULLs


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (pa.string(), "x"),
        (pa.int64(), 7),
        (pa.bool_(), True),
        (pa.date32(), dt.date(2024, 1, 2)),
        (pa.timestamp("us"), dt.datetime(2024, 1, 2, 3, 4, 5)),
        (pa.decimal128(10, 2), Decimal("1.25")),
        (pa.binary(), b"\x00\x01"),
    ],
    ids=lambda v: str(v),
)
def test_null_equals_null_and_differs_from_a_value(kind: pa.DataType, value: Any) -> None:
    expected = table({"id": [1, 2, 3, 4], "v": [None, None, value, value]}, {"v": kind})
    actual = table({"id": [1, 2, 3, 4], "v": [None, value, None, value]}, {"v": kind})

    found = diff(expected, actual)

    assert different(found) == [({"id": 2}, ["v"]), ({"id": 3}, ["v"])]
    assert found.different_count == 2


def test_null_and_value_in_float_columns() -> None:
    expected = table({"id": [1, 2, 3], "v": [None, None, 1.5]}, {"v": pa.float64()})
    actual = table({"id": [1, 2, 3], "v": [None, 1.5, None]}, {"v": pa.float64()})
    assert different(diff(expected, actual)) == [({"id": 2}, ["v"]), ({"id": 3}, ["v"])]


def test_a_null_only_column_against_a_typed_one() -> None:
    """A driver hands out a column of NULLs without a type; it equals typed NULLs."""
    expected = table({"id": [1, 2], "v": [None, None]}, {"v": pa.string()})
    actual = table({"id": [1, 2], "v": [None, None]}, {"v": pa.null()})
    assert_same(diff(expected, actual), 2)
    assert_same(diff(actual, expected), 2)


# ---------------------------------------------------------------------------- floats


def test_floats_within_the_relative_tolerance_are_equal() -> None:
    values = [0.1 + 0.2, 1 / 3, 1e20, -2.5e-8, 0.0]
    expected = table({"id": [1, 2, 3, 4, 5], "v": [0.3, 1 / 3, 1e20 * (1 + 1e-12), -2.5e-8, 0.0]})
    actual = table({"id": [1, 2, 3, 4, 5], "v": values})
    assert_same(diff(expected, actual), 5)


def test_floats_beyond_the_tolerance_differ() -> None:
    expected = table({"id": [1, 2, 3], "v": [1.0, 1e6, 0.0]})
    actual = table({"id": [1, 2, 3], "v": [1.000001, 1e6 + 1, 1e-6]})
    found = diff(expected, actual)
    assert [k["id"] for k, _ in found.different] == [1, 2, 3]


def test_the_float_tolerance_is_configurable() -> None:
    expected = table({"id": [1, 2], "v": [100.0, 100.0]})
    actual = table({"id": [1, 2], "v": [100.05, 101.0]})
    assert [k["id"] for k, _ in diff(expected, actual).different] == [1, 2]
    loose = diff(expected, actual, float_tolerance=1e-3)
    assert different(loose) == [({"id": 2}, ["v"])]


def test_single_precision_floats() -> None:
    """A REAL column read on both sides as float32 (or one side widened to float64)."""
    values = [0.1, 1 / 3, 123456.789, None]
    single = table({"id": [1, 2, 3, 4], "v": values}, {"v": pa.float32()})
    widened = table(
        {"id": [1, 2, 3, 4], "v": single["v"].cast(pa.float64()).to_pylist()},
        {"v": pa.float64()},
    )
    assert_same(diff(single, single), 4)
    assert_same(diff(single, widened), 4)
    assert_same(diff(widened, single), 4)


def test_floats_against_integers_and_decimals() -> None:
    expected = table({"id": [1, 2, 3], "v": [2.0, 0.5, -3.0]})
    as_decimal = table(
        {"id": [1, 2, 3], "v": [Decimal("2"), Decimal("0.50"), Decimal("-3.00")]},
        {"v": pa.decimal128(10, 2)},
    )
    assert_same(diff(expected, as_decimal), 3)
    integers = table({"id": [1, 3], "v": [2, -3]})
    assert_same(diff(table({"id": [1, 3], "v": [2.0, -3.0]}), integers), 2)


# ------------------------------------------------------------------------ timestamps


def test_aware_timestamps_compare_as_utc_instants() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    expected = table(
        {
            "id": [1, 2],
            "at": [
                dt.datetime(2024, 3, 10, 9, 15, 0, 123456, tzinfo=plus_two),
                dt.datetime(2024, 7, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
            ],
        },
        {"at": pa.timestamp("us", tz="Europe/Berlin")},
    )
    # A DATETIME target holding UTC wall time, read without a zone.
    naive_utc = table(
        {
            "id": [1, 2],
            "at": [dt.datetime(2024, 3, 10, 7, 15, 0, 123456), dt.datetime(2024, 7, 2, 6, 30)],
        },
        {"at": pa.timestamp("us")},
    )
    assert_same(diff(expected, naive_utc), 2)
    # The same instants in another zone.
    tokyo = naive_utc.set_column(
        1,
        "at",
        naive_utc["at"]
        .cast(pa.timestamp("us", tz="UTC"))
        .cast(pa.timestamp("us", tz="Asia/Tokyo")),
    )
    assert_same(diff(expected, tokyo), 2)
    # Local wall time instead of UTC is a difference.
    local = table(
        {
            "id": [1, 2],
            "at": [dt.datetime(2024, 3, 10, 9, 15, 0, 123456), dt.datetime(2024, 7, 2, 6, 30)],
        },
        {"at": pa.timestamp("us")},
    )
    assert different(diff(expected, local)) == [({"id": 1}, ["at"])]


def test_timestamp_units_are_normalised_to_microseconds() -> None:
    stamps = [dt.datetime(2024, 2, 29, 23, 59, 59, 999999), dt.datetime(2024, 1, 1)]
    nanos = table({"id": [1, 2], "at": stamps}, {"at": pa.timestamp("ns")})
    micros = table({"id": [1, 2], "at": stamps}, {"at": pa.timestamp("us")})
    seconds = table({"id": [2], "at": stamps[1:]}, {"at": pa.timestamp("s")})
    assert_same(diff(nanos, micros), 2)
    assert_same(diff(micros, nanos), 2)
    assert_same(diff(micros.slice(1), seconds), 1)


def test_one_microsecond_is_a_difference() -> None:
    expected = table({"id": [1], "at": [dt.datetime(2030, 6, 1, 8, 0, 0, 1)]})
    actual = table({"id": [1], "at": [dt.datetime(2030, 6, 1, 8, 0, 0, 2)]})
    assert different(diff(expected, actual)) == [({"id": 1}, ["at"])]


# -------------------------------------------------------------------------- decimals


def test_decimals_compare_by_value_whatever_the_scale() -> None:
    values = ["1.5", "0", "-12.34", "99999999.99", None]
    expected = table(
        {"id": [1, 2, 3, 4, 5], "v": [Decimal(v) if v else None for v in values]},
        {"v": pa.decimal128(10, 2)},
    )
    wider = table(
        {"id": [1, 2, 3, 4, 5], "v": [Decimal(v) if v else None for v in values]},
        {"v": pa.decimal128(14, 4)},
    )
    widest = table(
        {"id": [1, 2, 3, 4, 5], "v": [Decimal(v) if v else None for v in values]},
        {"v": pa.decimal128(38, 10)},
    )
    assert_same(diff(expected, wider), 5)
    assert_same(diff(wider, expected), 5)
    assert_same(diff(expected, widest), 5)
    assert_same(diff(widest, expected), 5)


def test_a_decimal_difference_names_only_its_row() -> None:
    """One value the narrower scale cannot hold must not make equal rows look different."""
    expected = table(
        {"id": [1, 2, 3], "v": [Decimal("1.25"), Decimal("1.23"), Decimal("0")]},
        {"v": pa.decimal128(10, 2)},
    )
    actual = table(
        {"id": [1, 2, 3], "v": [Decimal("1.2500"), Decimal("1.2345"), Decimal("0.0000")]},
        {"v": pa.decimal128(12, 4)},
    )
    found = diff(expected, actual)
    assert different(found) == [({"id": 2}, ["v"])]
    assert found.different_count == 1


def test_decimal_against_integer() -> None:
    expected = table({"id": [1, 2], "v": [Decimal("3"), Decimal("4")]}, {"v": pa.decimal128(10, 0)})
    actual = table({"id": [1, 2], "v": [3, 5]})
    assert different(diff(expected, actual)) == [({"id": 2}, ["v"])]


# ------------------------------------------------------------------------------ text


TEXT_EXPECTED = {"id": [1, 2, 3, 4, 5], "v": ["Hello", "world  ", "Third", "same", " lead"]}
TEXT_ACTUAL = {"id": [1, 2, 3, 4, 5], "v": ["HELLO", "world", "THIRD   ", "same", "lead"]}


@pytest.mark.parametrize(
    ("flags", "ids"),
    [
        ({}, [1, 2, 3, 5]),
        ({"ignore_case": True}, [2, 3, 5]),
        ({"ignore_trailing_spaces": True}, [1, 3, 5]),
        ({"ignore_case": True, "ignore_trailing_spaces": True}, [5]),  # leading space counts
    ],
    ids=["strict", "case", "trailing-spaces", "both"],
)
def test_case_and_trailing_spaces(flags: dict[str, bool], ids: list[int]) -> None:
    found = diff(table(TEXT_EXPECTED), table(TEXT_ACTUAL), **flags)
    assert [k["id"] for k, _ in found.different] == ids
    assert found.different_count == len(ids)


def test_text_flags_apply_to_large_strings_too() -> None:
    expected = table(TEXT_EXPECTED, {"v": pa.large_string()})
    found = diff(expected, table(TEXT_ACTUAL), ignore_case=True, ignore_trailing_spaces=True)
    assert [k["id"] for k, _ in found.different] == [5]


def test_string_and_large_string_are_equal() -> None:
    rows = {"id": [1, 2], "v": ["a", None]}
    assert_same(diff(table(rows, {"v": pa.large_string()}), table(rows)), 2)


# --------------------------------------------------------------------- max_keys


def test_max_keys_truncates_the_lists_not_the_counts() -> None:
    expected = table({"id": list(range(1, 10)), "v": list(range(1, 10))})
    # missing 1, 3, 5; different 2, 4, 6, 8; extra 11, 12, 13
    actual = table(
        {
            "id": [2, 4, 6, 7, 8, 9, 11, 12, 13],
            "v": [-2, -4, -6, 7, -8, 9, 0, 0, 0],
        }
    )

    found = diff(expected, actual, max_keys=2)

    assert (found.missing_count, found.extra_count, found.different_count) == (3, 3, 4)
    assert found.missing == [{"id": 1}, {"id": 3}]
    assert found.extra == [{"id": 11}, {"id": 12}]
    assert different(found) == [({"id": 2}, ["v"]), ({"id": 4}, ["v"])]
    assert found.compared == 6

    everything = diff(expected, actual, max_keys=100)
    assert len(everything.missing) == 3
    assert len(everything.extra) == 3
    assert len(everything.different) == 4


# ------------------------------------------------------------------------ keys


def test_composite_keys() -> None:
    expected = table(
        {
            "site": ["north", "north", "south", "south", "west"],
            "shelf": [1, 2, 1, 10, 1],
            "qty": [10, 20, 10, 100, 10],
            "note": [None, None, None, None, None],
        },
        {"shelf": pa.int32(), "note": pa.string()},
    )
    actual = table(
        {
            "site": ["west", "south", "south", "north", "west"],
            "shelf": [1, 10, 1, 1, 12],
            "qty": [10, 7, 10, 10, 1],
            "note": ["only note", "set", None, None, None],
        },
        {"shelf": pa.int64()},
    )

    found = diff(expected, actual, ["site", "shelf"])

    assert found.missing == [{"site": "north", "shelf": 2}]
    assert found.extra == [{"site": "west", "shelf": 12}]
    assert sorted(different(found), key=lambda d: (d[0]["site"], d[0]["shelf"])) == [
        ({"site": "south", "shelf": 10}, ["note", "qty"]),
        ({"site": "west", "shelf": 1}, ["note"]),
    ]
    assert found.compared == 4


def test_composite_key_parts_do_not_run_together() -> None:
    """("ab", "c") and ("a", "bc") are different keys."""
    expected = table({"a": ["ab", "a", "x"], "b": ["c", "bc", "y"], "v": [1, 2, 3]})
    actual = table({"a": ["x", "a", "ab"], "b": ["y", "bc", "c"], "v": [3, 2, 1]})
    assert_same(diff(expected, actual, ["a", "b"]), 3)
    swapped = table({"a": ["ab", "a", "x"], "b": ["bc", "c", "y"], "v": [1, 2, 3]})
    found = diff(expected, swapped, ["a", "b"])
    assert (found.missing_count, found.extra_count, found.compared) == (2, 2, 1)


def test_string_keys_are_case_sensitive() -> None:
    expected = table({"code": ["a", "B"], "v": [1, 2]})
    actual = table({"code": ["A", "B"], "v": [1, 2]})
    found = diff(expected, actual, ["code"])
    assert (found.missing, found.extra) == ([{"code": "a"}], [{"code": "A"}])


def test_integer_keys_of_different_widths_match() -> None:
    expected = table({"id": [1, 2], "v": ["a", "b"]}, {"id": pa.int32()})
    actual = table({"id": [2, 1], "v": ["b", "a"]}, {"id": pa.int64()})
    assert_same(diff(expected, actual), 2)
