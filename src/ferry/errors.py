"""Typed errors. Every message names what was wrong, where, and what to do.

One root, :class:`FerryError`; the CLI and the service translate it in one place each
(exit code and a single line; an HTTP problem response).
"""

from __future__ import annotations

import re
from pathlib import Path

# `scheme://user:password@`: the password of a URL, wherever a message quotes one (a job
# spec value expanded from `${ENV}` that failed validation, a driver's own words).
_URL_PASSWORD = re.compile(r"([A-Za-z][\w+.-]*://[^:/@\s]*):([^@\s]+)@")


def mask_secrets(message: str) -> str:
    """`message` with the password of every URL in it shown as `***`."""
    return _URL_PASSWORD.sub(r"\1:***@", message)


class FerryError(Exception):
    """Root of every error Ferry raises on purpose.

    Args:
        message: what went wrong, in one sentence.
        hint: what the user should do about it.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(FerryError):
    """The project file or a job spec is wrong: names the file and the key."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: Path | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = []
        if file is not None:
            where.append(str(file))
        if key:
            where.append(f"key `{key}`")
        prefix = ": ".join([", ".join(where)]) + ": " if where else ""
        super().__init__(prefix + message, hint=hint)
        self.file = file
        self.key = key
        self.problem = message

    def in_file(self, file: Path) -> ConfigError:
        """The same error, naming the job file (raised where the file was not known)."""
        if self.file is not None:
            return self
        return ConfigError(self.problem, file=file, key=self.key, hint=self.hint)


class ConnectionFailed(FerryError):
    """A target could not be reached or refused the credentials."""

    exit_code = 3

    def __init__(self, target: str, url: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"cannot connect to target `{target}` ({url}): {reason}", hint=hint)
        self.target = target


class MigrationFileError(FerryError):
    """A migration file has a bad name, bad directives, or clashes with another."""

    exit_code = 2

    def __init__(
        self, message: str, *, file: Path, line: int | None = None, hint: str | None = None
    ) -> None:
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {message}", hint=hint)
        self.file = file
        self.line = line


class MigrationFailed(FerryError):
    """A statement of a migration failed in the database."""

    exit_code = 4

    def __init__(
        self,
        *,
        version: str,
        file: Path,
        line: int,
        statement: str,
        reason: str,
        hint: str | None = None,
    ) -> None:
        snippet = " ".join(statement.split())
        if len(snippet) > 160:
            snippet = snippet[:157] + "..."
        super().__init__(
            f"migration {version} failed at {file}:{line}: {reason}\n  statement: {snippet}",
            hint=hint,
        )
        self.version = version
        self.file = file
        self.line = line


class ValidationFailed(FerryError):
    """Applied history and the migration files disagree."""

    exit_code = 5


class LockTimeout(FerryError):
    """Another process holds the migration lock of a target."""

    exit_code = 6


class StrategyError(FerryError):
    """An operation that the project's strategy forbids (undo under forward_only, ...)."""

    exit_code = 2


class BranchError(FerryError):
    """Branch, merge or rebase cannot be done as asked."""

    exit_code = 2


class InsufficientSpace(FerryError):
    """The disk holding a target's data has less free space than a run needs."""

    exit_code = 9

    def __init__(self, target: str, *, needed: int, free: int, what: str) -> None:
        super().__init__(
            f"target `{target}` has {_size(free)} free on the disk holding its data; {what} "
            f"needs about {_size(needed)}",
            hint="free disk space on the database server (or move `backups.location` to "
            "another disk), then run again; nothing was changed",
        )
        self.target = target
        self.needed = needed
        self.free = free


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} bytes"
    value, unit = float(n) / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:,.1f} {unit} ({n:,} bytes)"


class DatabaseLocked(LockTimeout):
    """A SQLite database stayed locked by another process past the busy timeout."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"SQLite database {path} is locked: another process holds a write lock on it",
            hint="close the program or connection holding it (a sqlite3 shell, an app, another "
            "Ferry run), then run the same command again",
        )
        self.path = path
