"""Free disk space against what a run needs, where the database can tell.

What a run needs is estimated from the catalog's table sizes: a table-rewriting ALTER needs
about the table's size again, a copy about the source size of what it loads, a backup on the
database's own disk about the size of what it backs up. An estimate, meant to stop a run that
would surely fill the disk, not to promise that one fits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ferry.db.target import Target
from ferry.errors import InsufficientSpace


@dataclass(frozen=True)
class SpaceCheck:
    target: str
    needed: int
    #: free bytes on the disk of the database's files; None when the database cannot tell
    free: int | None
    what: str

    @property
    def enough(self) -> bool:
        return self.free is None or self.free >= self.needed

    def warning(self) -> str | None:
        """The precondition warning when free space is unknown."""
        if self.free is not None:
            return None
        return (
            f"free disk space of target `{self.target}` is unknown (a remote server, or its "
            f"data directory is not readable); {self.what} needs about {self.needed:,} bytes"
        )

    def error(self) -> InsufficientSpace:
        """The error to raise when there is not enough space."""
        return InsufficientSpace(
            self.target, needed=self.needed, free=self.free or 0, what=self.what
        )

    def raise_if_short(self) -> None:
        """Raises:
        InsufficientSpace: less free space than needed."""
        if not self.enough:
            raise self.error()


def sizes(target: Target, tables: list[str]) -> dict[str, int]:
    """Catalog bytes of `tables` (missing ones left out)."""
    with target.connect() as conn:
        found = target.adapter.table_bytes(conn, tables)
        conn.rollback()
    return found


def check_space(
    target: Target,
    needed: int,
    what: str,
    *,
    backup_root: Path | None = None,
    backup_bytes: int = 0,
) -> SpaceCheck:
    """Free space on the target's data disk against `needed` bytes, plus `backup_bytes` when
    `backup_root` lies on that same disk."""
    with target.connect() as conn:
        folder = target.adapter.data_directory(conn, target.url)
        free = target.adapter.free_bytes(conn, target.url) if folder is not None else None
        conn.rollback()
    if folder is not None and backup_root is not None and _same_disk(folder, backup_root):
        needed += backup_bytes
        what += " and its backup"
    return SpaceCheck(target.name, needed, free, what)


def _same_disk(a: Path, b: Path) -> bool:
    try:
        return _device(a) == _device(b)
    except OSError:
        return True  # cannot tell: count the backup, the safer side


def _device(path: Path) -> int:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent  # the backup folder may not exist yet
    return os.stat(path).st_dev
