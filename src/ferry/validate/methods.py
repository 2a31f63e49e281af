"""Verify's comparison methods, apart from ferry.validate.data so the CLI can offer them
without importing pyarrow and the copy pipeline."""

from __future__ import annotations

from enum import StrEnum


class Method(StrEnum):
    """How verify compares: checksums inside the databases where the job keeps values as
    they are (`auto`), checksums or an error (`checksum`), or every row read (`rows`)."""

    AUTO = "auto"
    CHECKSUM = "checksum"
    ROWS = "rows"
