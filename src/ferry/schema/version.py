"""Migration versions: `1`, `1.1`, `2024.01.15.1`, compared numerically."""

from __future__ import annotations

import re
from functools import total_ordering

_VERSION = re.compile(r"[0-9]+(?:[._][0-9]+)*")


@total_ordering
class Version:
    """A dotted numeric version. `1.0` equals `1`; `1.10` sorts after `1.9`.

    Flyway writes `V1_1__x.sql` for version 1.1, so `_` separates parts too.
    """

    __slots__ = ("key", "text")

    def __init__(self, text: str) -> None:
        if not _VERSION.fullmatch(text):
            raise ValueError(f"`{text}` is not a version (use digits and dots, like 1.2.3)")
        self.text = text.replace("_", ".")
        parts = [int(part) for part in self.text.split(".")]
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        self.key: tuple[int, ...] = tuple(parts)

    @staticmethod
    def is_valid(text: str) -> bool:
        return bool(_VERSION.fullmatch(text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.key == other.key

    def __lt__(self, other: Version) -> bool:
        return self.key < other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"
