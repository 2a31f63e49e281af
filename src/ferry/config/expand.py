"""`${ENV_VAR}` expansion for values of the project file, so secrets stay out of files."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ferry.errors import ConfigError

# ${NAME} or ${NAME:-default}; `$${` escapes a literal `${`.
_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(
    value: str, *, key: str, env: Mapping[str, str] | None = None, file: Path | None = None
) -> str:
    """Replace `${VAR}` and `${VAR:-default}` in `value` with environment variables.

    Raises:
        ConfigError: a variable is not set and has no default; names the key and the variable.
    """
    environ = os.environ if env is None else env

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        found = environ.get(name)
        # As in the shell, `:-` means "unset or empty".
        if found or (found is not None and default is None):
            return found
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable `{name}` is not set",
            file=file,
            key=key,
            hint=f"export {name}=... before running Ferry, or write `${{{name}:-default}}`",
        )

    return _ENV_REF.sub(substitute, value)


def expand_tree(
    data: Any, *, key: str = "", env: Mapping[str, str] | None = None, file: Path | None = None
) -> Any:
    """Expand environment references in every string of a parsed TOML or YAML tree."""
    if isinstance(data, str):
        return expand_env(data, key=key, env=env, file=file)
    if isinstance(data, dict):
        return {
            k: expand_tree(v, key=f"{key}.{k}" if key else str(k), env=env, file=file)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [expand_tree(v, key=f"{key}[{i}]", env=env, file=file) for i, v in enumerate(data)]
    return data
