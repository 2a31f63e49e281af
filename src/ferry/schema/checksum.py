"""Checksums over normalised script content.

The algorithm's name is stored beside every checksum, so a later Ferry that normalises
differently still verifies old rows with the algorithm they were written with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

CURRENT_ALGORITHM = "sha256-norm1"


def normalise(content: bytes) -> str:
    """Text with BOM, line-ending and trailing-white-space differences removed."""
    text = content.decode("utf-8-sig", errors="replace")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def _sha256_norm1(content: bytes) -> str:
    return hashlib.sha256(normalise(content).encode("utf-8")).hexdigest()


ALGORITHMS: dict[str, Callable[[bytes], str]] = {CURRENT_ALGORITHM: _sha256_norm1}


def checksum(content: bytes, algorithm: str = CURRENT_ALGORITHM) -> str:
    """The checksum of script content under the named algorithm.

    Raises:
        KeyError: the algorithm is unknown to this Ferry (written by a newer one).
    """
    return ALGORITHMS[algorithm](content)
