"""Field validation for cleaning rules (`validate: {email: email}` in a job spec).

:func:`invalid_mask` answers, for a whole column at once, which values break a rule. Nulls
are never invalid: what to do with them is the business of the `nulls` rule. Values are
checked as they are, without trimming: ``" 12"`` is not numeric and ``""`` breaks every rule.

Everything is vectorised over Arrow. ``email``, ``numeric`` and ``date`` are regular
expressions (RE2, through :func:`pyarrow.compute.match_substring_regex`); ``date`` also checks
that the day exists in its month with Arrow arithmetic, so high-cardinality timestamp text
costs no Python per value. ``phone`` needs :mod:`phonenumbers`, which is Python: it runs once
per *distinct* value, and the answers are spread back over the rows with
:func:`pyarrow.compute.index_in` and :func:`pyarrow.compute.take`.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["RULES", "invalid_mask"]

RULES: tuple[str, ...] = ("email", "numeric", "date", "phone")

# Characters that never appear unquoted in an address: whitespace (ASCII and Unicode),
# control/format characters, '@' and the RFC 5322 specials.
_ATOM = r'[^\s\pZ\pC@.<>()\[\]\\,;:"]+'
# local@label.label...tld: one '@'; a local part without leading, trailing or double dots;
# domain labels of letters, digits and inner hyphens (Unicode letters allowed: IDNs); and a
# top-level domain of two or more characters that starts with a letter (xn--p1ai is fine).
_LABEL = r"[\pL\pN]([\pL\pN-]*[\pL\pN])?"
EMAIL_PATTERN = rf"^{_ATOM}(\.{_ATOM})*@({_LABEL}\.)+\pL[\pL\pN-]*[\pL\pN]$"

# Integer or decimal, optional sign, optional exponent: 12, -1.5, +.5, 1., 6.02e23, 1E-3.
NUMERIC_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"

# YYYY-MM-DD, optionally followed by HH:MM:SS[.ffffff] (a space or a 'T' between them).
# Months, days, hours, minutes and seconds are range-checked here; whether the day exists in
# its month (2024-02-30) is checked arithmetically in _impossible_days.
DATE_PATTERN = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"([ T]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?)?$"
)

_DAYS_IN_MONTH = pa.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], pa.int64())


def invalid_mask(
    rule: str, values: pa.Array | pa.ChunkedArray, *, region: str = "US"
) -> pa.BooleanArray | pa.ChunkedArray:
    """True where a non-null value breaks ``rule``; False for valid values and for nulls.

    Args:
        rule: ``email``, ``numeric``, ``date`` or ``phone`` (a ``Rule`` enum member works too).
        values: the column; strings are checked, other types as described per rule.
        region: the default region for phone numbers written without a country code.

    Numeric Arrow types always pass ``numeric``, and temporal ones always pass ``date``; any
    other non-string type is checked through its text form (a phone number stored as an
    integer is validated, a number is not an email).

    Raises:
        ValueError: unknown rule, or (for ``phone``) an unknown region.
    """
    rule = str(rule)
    if rule not in RULES:
        raise ValueError(f"unknown validation rule {rule!r}; expected one of {', '.join(RULES)}")
    if rule == "phone":
        import phonenumbers  # only phone rules need it (and its import time)

        region = region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"unknown phone region {region!r}; use a two-letter ISO 3166 code such as US, "
                "GB or DE"
            )

    value_type = values.type
    if pa.types.is_dictionary(value_type):
        value_type = value_type.value_type
        values = values.cast(value_type)
    if pa.types.is_null(value_type):
        return _all_valid(values)
    if rule == "numeric" and _is_number(value_type):
        return _all_valid(values)
    if rule == "date" and pa.types.is_temporal(value_type):
        return _all_valid(values)
    text = _as_text(values)

    if rule == "email":
        return _not_matching(text, EMAIL_PATTERN)
    if rule == "numeric":
        return _not_matching(text, NUMERIC_PATTERN)
    if rule == "date":
        return pc.or_(_not_matching(text, DATE_PATTERN), _impossible_days(text))
    return _invalid_phones(text, region)


def _is_number(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _as_text(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return values
    return pc.cast(values, pa.string())


def _all_valid(values: pa.Array | pa.ChunkedArray) -> pa.BooleanArray | pa.ChunkedArray:
    """Every entry False, with the length and chunking of ``values``."""
    return pc.and_(pc.is_null(values), pc.is_valid(values))


def _not_matching(
    text: pa.Array | pa.ChunkedArray, pattern: str
) -> pa.BooleanArray | pa.ChunkedArray:
    matches = pc.match_substring_regex(text, pattern=pattern)
    return pc.fill_null(pc.invert(matches), False)


def _impossible_days(text: pa.Array | pa.ChunkedArray) -> pa.BooleanArray | pa.ChunkedArray:
    """True where a well-formed date names a day its month does not have (or year 0000).

    Rows that fail DATE_PATTERN are swapped for a harmless date first, so the integer casts
    below only ever see digits.
    """
    well_formed = pc.fill_null(pc.match_substring_regex(text, pattern=DATE_PATTERN), False)
    safe = pc.if_else(well_formed, text, pa.scalar("2000-01-01", text.type))
    year = pc.cast(pc.utf8_slice_codeunits(safe, start=0, stop=4), pa.int64())
    month = pc.cast(pc.utf8_slice_codeunits(safe, start=5, stop=7), pa.int64())
    day = pc.cast(pc.utf8_slice_codeunits(safe, start=8, stop=10), pa.int64())

    leap = pc.and_(
        pc.equal(pc.remainder(year, 4), 0),
        pc.or_(pc.not_equal(pc.remainder(year, 100), 0), pc.equal(pc.remainder(year, 400), 0)),
    )
    days_in_month = pc.add(
        pc.take(_DAYS_IN_MONTH, month),
        pc.cast(pc.and_(leap, pc.equal(month, 2)), pa.int64()),
    )
    impossible = pc.or_(pc.greater(day, days_in_month), pc.equal(year, 0))
    return pc.fill_null(pc.and_(well_formed, impossible), False)


def _invalid_phones(
    text: pa.Array | pa.ChunkedArray, region: str
) -> pa.BooleanArray | pa.ChunkedArray:
    distinct = pc.unique(text)
    if isinstance(distinct, pa.ChunkedArray):
        distinct = distinct.combine_chunks()
    verdicts = [
        value is not None and not _is_valid_phone(value, region) for value in distinct.to_pylist()
    ]
    invalid_per_distinct = pa.array(verdicts, pa.bool_())
    positions = pc.index_in(text, value_set=distinct)  # null only where the row is null
    return pc.fill_null(pc.take(invalid_per_distinct, positions), False)


def _is_valid_phone(value: str, region: str) -> bool:
    import phonenumbers

    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))
