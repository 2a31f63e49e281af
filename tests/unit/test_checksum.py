"""Tests for checksums over normalised script content."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferry.schema.checksum import ALGORITHMS, CURRENT_ALGORITHM, checksum, normalise

BASE = b"CREATE TABLE t (\n    id INTEGER PRIMARY KEY\n);\nINSERT INTO t VALUES (1);"


def test_current_algorithm_name() -> None:
    assert CURRENT_ALGORITHM == "sha256-norm1"
    assert CURRENT_ALGORITHM in ALGORITHMS


def test_default_algorithm_is_current() -> None:
    assert checksum(BASE) == checksum(BASE, CURRENT_ALGORITHM)


def test_is_sha256_of_normalised_text() -> None:
    assert checksum(b"SELECT 1;  \r\n") == hashlib.sha256(b"SELECT 1;").hexdigest()
    assert len(checksum(BASE)) == 64


@pytest.mark.parametrize("algorithm", ["sha256", "md5", "sha256-norm2", "", "SHA256-NORM1"])
def test_unknown_algorithm_raises_key_error(algorithm: str) -> None:
    with pytest.raises(KeyError):
        checksum(BASE, algorithm)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(b"\xef\xbb\xbf" + BASE, id="bom"),
        pytest.param(BASE.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(BASE.replace(b"\n", b"\r"), id="cr"),
        pytest.param(BASE.replace(b"\n", b"  \n") + b"\t \t", id="trailing-spaces-tabs"),
        pytest.param(BASE + b"\n", id="final-newline"),
        pytest.param(BASE + b"\n\n\n", id="trailing-blank-lines"),
        pytest.param(BASE + b"\r\n  \r\n\t\r\n", id="trailing-white-lines"),
        pytest.param(b"\n\n" + BASE, id="leading-blank-lines"),
        pytest.param(
            b"\xef\xbb\xbf" + BASE.replace(b"\n", b" \t\r\n") + b"\r\n\r\n", id="all-at-once"
        ),
    ],
)
def test_insignificant_differences_keep_the_checksum(variant: bytes) -> None:
    assert checksum(variant) == checksum(BASE)
    assert normalise(variant) == normalise(BASE)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(BASE.replace(b"id", b"ID"), id="case"),
        pytest.param(BASE.replace(b"(1)", b"(2)"), id="value"),
        pytest.param(BASE.replace(b"    id", b"  id"), id="leading-indent"),
        pytest.param(BASE.replace(b"t (", b"t  ("), id="inner-space"),
        pytest.param(BASE.replace(b";\nINSERT", b"; INSERT"), id="line-joined"),
        pytest.param(BASE.replace(b"\n", b"\n\n", 1), id="blank-line-inside"),
        pytest.param(BASE + b"\n--", id="comment-added"),
        pytest.param(BASE[:-1], id="char-removed"),
    ],
)
def test_real_changes_change_the_checksum(variant: bytes) -> None:
    assert checksum(variant) != checksum(BASE)


def test_normalise_output() -> None:
    assert normalise(b"\xef\xbb\xbfa  \r\nb\t\rc\n\n") == "a\nb\nc"


def test_empty_and_white_content_agree() -> None:
    assert checksum(b"") == checksum(b"\n \n\t\r\n") == checksum(b"\xef\xbb\xbf")


# Lines without line-break characters (and without a BOM, which only counts at the start).
_line = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\ufeff", blacklist_categories=("Cs",)),
    max_size=30,
)
_lines = st.lists(_line, min_size=1, max_size=12)


def _encode(lines: list[str], newline: str) -> bytes:
    return newline.join(lines).encode("utf-8")


@given(
    _lines,
    st.sampled_from(["\r\n", "\r"]),
    st.lists(st.sampled_from([" ", "\t", " \t", ""]), min_size=12, max_size=12),
    st.integers(min_value=0, max_value=4),
    st.booleans(),
)
def test_normalisation_invariants(
    lines: list[str], newline: str, trailing: list[str], blank: int, bom: bool
) -> None:
    original = _encode(lines, "\n")
    padded = [line + pad for line, pad in zip(lines, trailing, strict=False)]
    variant = ("\ufeff" if bom else "") + newline.join(padded) + newline * blank
    assert checksum(variant.encode("utf-8")) == checksum(original)


@given(_lines, st.data())
def test_inserting_a_visible_character_changes_the_checksum(
    lines: list[str], data: st.DataObject
) -> None:
    original = _encode(lines, "\n")
    text = original.decode("utf-8")
    where = data.draw(st.integers(min_value=0, max_value=len(text)))
    char = data.draw(st.sampled_from(["x", ";", "0", "'", "("]))
    changed = (text[:where] + char + text[where:]).encode("utf-8")
    assert checksum(changed) != checksum(original)


@given(_lines)
def test_normalise_is_idempotent(lines: list[str]) -> None:
    once = normalise(_encode(lines, "\r\n"))
    assert normalise(once.encode("utf-8")) == once
