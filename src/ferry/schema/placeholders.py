"""Flyway-style `${name}` placeholders in SQL scripts."""

from __future__ import annotations

import re
from pathlib import Path

from ferry.errors import MigrationFileError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][\w.:-]*)\}")


def replace_placeholders(text: str, values: dict[str, str], *, path: Path) -> str:
    """Put placeholder values into script text.

    Raises:
        MigrationFileError: a placeholder has no value; names the file, line and the fix.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        line = text.count("\n", 0, match.start()) + 1
        raise MigrationFileError(
            f"placeholder `${{{name}}}` has no value",
            file=path,
            line=line,
            hint=f'add `{name} = "..."` under [placeholders] in ferry.toml '
            "(or set migrations.placeholder_replacement = false)",
        )

    if "${" not in text:
        return text
    return _PLACEHOLDER.sub(substitute, text)
