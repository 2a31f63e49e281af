"""Tests for the vectorised field validators of cleaning rules."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import phonenumbers
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferry.data.spec import Rule
from ferry.data.validators import RULES, invalid_mask


def fullwidth(text: str) -> str:
    """ASCII digits as FULLWIDTH DIGITs (U+FF10..U+FF19), spelled out to keep the source ASCII."""
    return text.translate({ord(str(d)): 0xFF10 + d for d in range(10)})


def invalid(rule: str, values: list[Any], **kwargs: Any) -> list[bool]:
    mask = invalid_mask(rule, pa.array(values, pa.string()), **kwargs)
    assert mask.type == pa.bool_()
    assert mask.null_count == 0
    assert len(mask) == len(values)
    return list(mask.to_pylist())


def is_invalid(rule: str, value: str, **kwargs: Any) -> bool:
    return invalid(rule, [value], **kwargs)[0]


# ----------------------------------------------------------------------------------- email

VALID_EMAILS = [
    "a@b.co",
    "user@example.com",
    "First.Last@Example.COM",
    "user+tag@example.com",
    "o'brien@example.ie",
    "x_y-z@sub.domain.co.uk",
    "1234@numbers.net",
    "a@my-host.example.org",
    "ü@例子.广告",  # internationalised local part and domain
    "josé@café.fr",
    "user@xn--p1ai.xn--p1ai",
]

INVALID_EMAILS = [
    "",
    " ",
    "plain",
    "a@b",  # no top-level domain
    "@example.com",
    "user@",
    "user@@example.com",
    "a@b@example.com",
    "a b@example.com",
    "user@exa mple.com",
    " user@example.com",
    "user@example.com ",
    "user@example.com\n",
    "user\u00a0name@example.com",  # no-break space
    "user\u3000@example.com",  # ideographic space
    "user\t@example.com",
    ".user@example.com",
    "user.@example.com",
    "us..er@example.com",
    "user@.example.com",
    "user@example..com",
    "user@example.com.",
    "user@-.com",
    "user@example.c",  # one-letter TLD
    "user@example.123",  # numeric TLD
    "us<er@example.com",
    "us,er@example.com",
    'us"er@example.com',
]


@pytest.mark.parametrize("value", VALID_EMAILS)
def test_valid_emails(value: str) -> None:
    assert not is_invalid("email", value)


@pytest.mark.parametrize("value", INVALID_EMAILS)
def test_invalid_emails(value: str) -> None:
    assert is_invalid("email", value)


# --------------------------------------------------------------------------------- numeric

VALID_NUMBERS = [
    "0",
    "12",
    "-1",
    "+7",
    "1.5",
    "-0.25",
    ".5",
    "+.5",
    "1.",
    "6.02e23",
    "1E-3",
    "-2.5e+10",
    "007",
]
INVALID_NUMBERS = [
    "",
    " ",
    " 1",
    "1 ",
    "1 000",
    "1,000",
    "1_000",
    "abc",
    "12abc",
    ".",
    "-",
    "+",
    "e5",
    "1e",
    "1e+",
    "1.2.3",
    "--1",
    "NaN",
    "inf",
    "0x1F",
    "١٢",  # Arabic-Indic digits
    fullwidth("12"),
]


@pytest.mark.parametrize("value", VALID_NUMBERS)
def test_valid_numbers(value: str) -> None:
    assert not is_invalid("numeric", value)


@pytest.mark.parametrize("value", INVALID_NUMBERS)
def test_invalid_numbers(value: str) -> None:
    assert is_invalid("numeric", value)


@pytest.mark.parametrize(
    "array",
    [
        pa.array([1, -2, None], pa.int8()),
        pa.array([1, 2**40, None], pa.int64()),
        pa.array([1, 2, None], pa.uint32()),
        pa.array([1.5, float("nan"), float("inf"), None], pa.float64()),
        pa.array([1.5, None], pa.float32()),
        pa.array([Decimal("1.50"), None], pa.decimal128(5, 2)),
    ],
)
def test_numeric_arrow_types_are_always_valid(array: pa.Array) -> None:
    assert invalid_mask("numeric", array).to_pylist() == [False] * len(array)


# ------------------------------------------------------------------------------------ date

VALID_DATES = [
    "2024-01-01",
    "2024-12-31",
    "2024-02-29",  # leap year
    "2000-02-29",  # divisible by 400
    "1999-04-30",
    "0001-01-01",
    "9999-12-31",
    "2024-01-01 00:00:00",
    "2024-01-01 23:59:59",
    "2024-06-15 12:34:56.7",
    "2024-06-15 12:34:56.123456",
    "2024-06-15T12:34:56",
]
INVALID_DATES = [
    "",
    " ",
    " 2024-01-01",
    "2024-01-01 ",
    "2024-02-30",
    "2023-02-29",  # not a leap year
    "1900-02-29",  # divisible by 100, not by 400
    "2024-04-31",
    "2024-06-31",
    "2024-09-31",
    "2024-11-31",
    "2024-13-01",
    "2024-00-10",
    "2024-01-00",
    "2024-01-32",
    "0000-01-01",
    "2024-1-1",
    "24-01-01",
    "2024/01/01",
    "01-02-2024",
    "20240101",
    "2024-01-01 24:00:00",
    "2024-01-01 12:60:00",
    "2024-01-01 12:00:60",
    "2024-01-01 12:00",
    "2024-01-01 12:00:00.1234567",
    "2024-01-01 12:00:00.",
    "2024-01-01 12:00:00+02:00",
    "2024-02-30 10:00:00",
    fullwidth("2024") + "-01-01",
    "yesterday",
]


@pytest.mark.parametrize("value", VALID_DATES)
def test_valid_dates(value: str) -> None:
    assert not is_invalid("date", value)


@pytest.mark.parametrize("value", INVALID_DATES)
def test_invalid_dates(value: str) -> None:
    assert is_invalid("date", value)


@pytest.mark.parametrize(
    "array",
    [
        pa.array([dt.date(2024, 2, 29), None], pa.date32()),
        pa.array([dt.date(2024, 2, 29), None], pa.date64()),
        pa.array([dt.datetime(2024, 2, 29, 10), None], pa.timestamp("us")),
        pa.array([dt.datetime(2024, 2, 29, 10), None], pa.timestamp("ns", tz="UTC")),
    ],
)
def test_temporal_arrow_types_are_always_valid(array: pa.Array) -> None:
    assert invalid_mask("date", array).to_pylist() == [False, False]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=9999),
    st.integers(min_value=0, max_value=13),
    st.integers(min_value=0, max_value=32),
)
def test_date_rule_agrees_with_python_calendar(year: int, month: int, day: int) -> None:
    text = f"{year:04d}-{month:02d}-{day:02d}"
    try:
        dt.date(year, month, day)
        exists = True
    except ValueError:
        exists = False
    assert is_invalid("date", text) is not exists
    assert is_invalid("date", text + " 08:09:10") is not exists


def test_many_distinct_timestamps_are_validated_without_python_per_value() -> None:
    base = dt.datetime(2020, 1, 1)
    values = [(base + dt.timedelta(minutes=i)).isoformat(sep=" ") for i in range(50_000)]
    values[123] = "2021-02-29 00:00:00"
    mask = invalid_mask("date", pa.array(values))
    assert mask.to_pylist().count(True) == 1
    assert mask[123].as_py() is True


# ----------------------------------------------------------------------------------- phone

VALID_PHONES_US = [
    "+1 201-555-0123",
    "(201) 555-0123",
    "201.555.0123",
    "2015550123",
    "+44 20 7946 0958",  # an international number ignores the default region
    "+49 30 123456",
    fullwidth("2015550123"),  # phonenumbers normalises Unicode digits
]
INVALID_PHONES_US = [
    "",
    " ",
    "12",
    "abc",
    "555-0123",  # too short
    "+1 201-555-01234567",
    "+999 123 456",  # no such country code
    "020 7946 0958",  # a UK national number is not a US number
]


@pytest.mark.parametrize("value", VALID_PHONES_US)
def test_valid_phones(value: str) -> None:
    assert not is_invalid("phone", value)


@pytest.mark.parametrize("value", INVALID_PHONES_US)
def test_invalid_phones(value: str) -> None:
    assert is_invalid("phone", value)


def test_phone_region_is_the_default_for_national_numbers() -> None:
    assert is_invalid("phone", "020 7946 0958", region="US")
    assert not is_invalid("phone", "020 7946 0958", region="GB")
    assert not is_invalid("phone", "020 7946 0958", region="gb")


def test_unknown_phone_region_raises() -> None:
    with pytest.raises(ValueError, match="unknown phone region 'XX'"):
        invalid_mask("phone", pa.array(["2015550123"]), region="XX")


def test_phone_numbers_stored_as_integers_are_checked() -> None:
    mask = invalid_mask("phone", pa.array([2015550123, None, 12], pa.int64()))
    assert mask.to_pylist() == [False, False, True]


def test_phone_parses_each_distinct_value_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_parse = phonenumbers.parse

    def counting_parse(number: str, region: str | None = None) -> Any:
        calls.append(number)
        return real_parse(number, region)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    pattern = ["+1 201-555-0123", "12", None, "(201) 555-0123"]
    values = pa.array(pattern * 25_000)
    assert len(values) == 100_000

    mask = invalid_mask("phone", values)

    assert len(calls) <= 3
    assert sorted(calls) == sorted(["+1 201-555-0123", "12", "(201) 555-0123"])
    assert mask.to_pylist() == [False, True, False, False] * 25_000


def test_phone_distinct_path_over_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_parse = phonenumbers.parse

    def counting_parse(number: str, region: str | None = None) -> Any:
        calls.append(number)
        return real_parse(number, region)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    chunk = pa.array(["2015550123", "12", None] * 1000)
    values = pa.chunked_array([chunk, chunk, chunk[:7], pa.array([], pa.string())])

    mask = invalid_mask("phone", values)

    assert len(calls) == 2
    assert isinstance(mask, pa.ChunkedArray)
    assert len(mask) == len(values)
    assert mask.to_pylist() == [False, True, False] * 2000 + [False, True, False] * 2 + [False]


# ------------------------------------------------------------------- every rule, edge cases


@pytest.mark.parametrize("rule", RULES)
def test_empty_string_is_invalid_for_every_rule(rule: str) -> None:
    assert is_invalid(rule, "")


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("value", [" ", "\t", "\n", "\u00a0", "   "])
def test_whitespace_only_is_invalid_for_every_rule(rule: str, value: str) -> None:
    assert is_invalid(rule, value)


@pytest.mark.parametrize("rule", RULES)
def test_nulls_are_never_invalid(rule: str) -> None:
    assert invalid(rule, [None, None]) == [False, False]
    assert invalid_mask(rule, pa.nulls(3)).to_pylist() == [False] * 3
    assert invalid_mask(rule, pa.array([None], pa.int64())).to_pylist() == [False]


@pytest.mark.parametrize(
    ("rule", "good", "bad"),
    [
        ("email", "a@b.co", "nope"),
        ("numeric", "1.5", "1,5"),
        ("date", "2024-02-29", "2023-02-29"),
        ("phone", "2015550123", "12"),
    ],
)
def test_mixed_column_keeps_row_positions(rule: str, good: str, bad: str) -> None:
    assert invalid(rule, [good, None, bad, good, "", None]) == [
        False,
        False,
        True,
        False,
        True,
        False,
    ]


@pytest.mark.parametrize("rule", RULES)
def test_empty_array(rule: str) -> None:
    assert invalid_mask(rule, pa.array([], pa.string())).to_pylist() == []
    assert len(invalid_mask(rule, pa.chunked_array([], pa.string()))) == 0


@pytest.mark.parametrize("arrow_type", [pa.large_string(), pa.string_view()])
@pytest.mark.parametrize(
    ("rule", "good", "bad"),
    [
        ("email", "a@b.co", "nope"),
        ("numeric", "1.5", "x"),
        ("date", "2024-02-29", "2024-02-30"),
        ("phone", "2015550123", "12"),
    ],
)
def test_other_string_types(rule: str, good: str, bad: str, arrow_type: pa.DataType) -> None:
    values = pa.array([good, bad, None], arrow_type)
    assert invalid_mask(rule, values).to_pylist() == [False, True, False]


@pytest.mark.parametrize("rule", RULES)
def test_dictionary_encoded_strings(rule: str) -> None:
    good = {"email": "a@b.co", "numeric": "1", "date": "2024-01-01", "phone": "2015550123"}[rule]
    values = pa.array([good, "", None, good]).dictionary_encode()
    assert invalid_mask(rule, values).to_pylist() == [False, True, False, False]


@pytest.mark.parametrize("rule", RULES)
def test_chunked_input_gives_chunked_output(rule: str) -> None:
    values = pa.chunked_array([["", None], ["x"]])
    mask = invalid_mask(rule, values)
    assert isinstance(mask, pa.ChunkedArray)
    assert mask.to_pylist() == [True, False, True]


def test_non_string_values_are_checked_as_text() -> None:
    assert invalid_mask("email", pa.array([1, None])).to_pylist() == [True, False]
    assert invalid_mask("date", pa.array([20240101])).to_pylist() == [True]
    assert invalid_mask("numeric", pa.array([True, None])).to_pylist() == [True, False]


def test_rule_enum_is_accepted() -> None:
    for rule in Rule:
        assert invalid_mask(rule, pa.array([""])).to_pylist() == [True]


@pytest.mark.parametrize("rule", ["", "Email", "url", "uuid", "phone_number"])
def test_unknown_rule_raises_value_error(rule: str) -> None:
    with pytest.raises(ValueError, match="unknown validation rule"):
        invalid_mask(rule, pa.array(["x"]))


def test_rules_match_the_spec_enum() -> None:
    assert set(RULES) == {rule.value for rule in Rule}
