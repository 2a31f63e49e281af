"""Tests for migration versions: parsing, numeric ordering and equality."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferry.schema.version import Version


@pytest.mark.parametrize(
    ("text", "key", "shown"),
    [
        ("1", (1,), "1"),
        ("1.1", (1, 1), "1.1"),
        ("2024.01.15.1", (2024, 1, 15, 1), "2024.01.15.1"),
        ("1_1", (1, 1), "1.1"),
        ("1_2.3", (1, 2, 3), "1.2.3"),
        ("007", (7,), "007"),
        ("0", (0,), "0"),
        ("1.0", (1,), "1.0"),
        ("1.0.0", (1,), "1.0.0"),
        ("1.0.2", (1, 0, 2), "1.0.2"),
    ],
)
def test_parses(text: str, key: tuple[int, ...], shown: str) -> None:
    version = Version(text)
    assert version.key == key
    assert str(version) == shown
    assert Version.is_valid(text)


def test_repr_shows_the_text() -> None:
    assert repr(Version("1_2")) == "Version('1.2')"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a",
        "1.",
        ".1",
        "1..2",
        "1__2",
        "1.a",
        "v1",
        "-1",
        "1 ",
        " 1",
        "1.2-beta",
        "1,2",
        "1\n",  # `$` in a regex also matches before a trailing newline
        "\u0661",  # ARABIC-INDIC DIGIT ONE: `\d` is Unicode-aware, versions are ASCII
    ],
)
def test_invalid_strings_raise(text: str) -> None:
    assert not Version.is_valid(text)
    with pytest.raises(ValueError, match="is not a version"):
        Version(text)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("1.9", "1.10"),
        ("1.999", "2"),
        ("1", "1.0.1"),
        ("1", "1.1"),
        ("2024.01.15.1", "2024.01.15.2"),
        ("2024.01.15.9", "2024.1.16"),
        ("9", "10"),
        ("0", "1"),
    ],
)
def test_numeric_ordering(low: str, high: str) -> None:
    a, b = Version(low), Version(high)
    assert a < b
    assert b > a
    assert a <= b
    assert b >= a
    assert a != b
    assert max(a, b) is b


@pytest.mark.parametrize(
    ("a", "b"),
    [("1.0", "1"), ("1.0.0", "1"), ("1_1", "1.1"), ("01.02", "1.2"), ("2.0", "2.0.0.0")],
)
def test_equal_versions_hash_alike(a: str, b: str) -> None:
    assert Version(a) == Version(b)
    assert hash(Version(a)) == hash(Version(b))
    assert not Version(a) < Version(b)
    assert not Version(a) > Version(b)
    assert len({Version(a), Version(b)}) == 1
    assert {Version(a): "x"}[Version(b)] == "x"


def test_not_equal_to_other_types() -> None:
    assert Version("1") != "1"
    assert Version("1") != 1
    assert Version("1") != (1,)


def test_sorted_list() -> None:
    texts = ["10", "1.10", "1.9", "2", "1", "1.1", "1_2", "0.5"]
    assert [str(v) for v in sorted(Version(t) for t in texts)] == [
        "0.5",
        "1",
        "1.1",
        "1.2",
        "1.9",
        "1.10",
        "2",
        "10",
    ]


def _stripped(parts: list[int]) -> tuple[int, ...]:
    parts = list(parts)
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


_parts = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=5)


@given(
    st.lists(
        st.tuples(_parts, st.lists(st.sampled_from([".", "_"]), min_size=4, max_size=4)),
        max_size=20,
    )
)
def test_sorting_versions_equals_sorting_int_tuples(
    items: list[tuple[list[int], list[str]]],
) -> None:
    versions = []
    for parts, seps in items:
        text = str(parts[0])
        for part, sep in zip(parts[1:], seps, strict=False):
            text += f"{sep}{part}"
        versions.append(Version(text))
    assert [v.key for v in sorted(versions)] == sorted(_stripped(p) for p, _ in items)


@given(_parts, _parts)
def test_comparison_matches_int_tuples(a: list[int], b: list[int]) -> None:
    va = Version(".".join(map(str, a)))
    vb = Version(".".join(map(str, b)))
    ka, kb = _stripped(a), _stripped(b)
    assert (va < vb) == (ka < kb)
    assert (va == vb) == (ka == kb)
    if va == vb:
        assert hash(va) == hash(vb)
