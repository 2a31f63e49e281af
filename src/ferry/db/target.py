"""A configured target opened for use: its adapter, engine and a printable URL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, exc
from sqlalchemy.engine import URL, make_url

from ferry.config.project import Project, TargetConfig
from ferry.db.adapter import Adapter, adapter_for
from ferry.errors import ConfigError, ConnectionFailed, FerryError

# Loads the dialect modules so that they register their adapters.
from ferry.db import mysql, postgresql, sqlite  # noqa: F401  # isort: skip


@dataclass
class Target:
    """An opened target. Close it with :meth:`dispose`."""

    name: str
    url: URL
    adapter: Adapter
    engine: Engine
    #: Connections opened up front on first use and kept idle in the pool (`pool.min`).
    min_connections: int = 0
    _warmed: bool = False

    @property
    def safe_url(self) -> str:
        """The URL with its password masked: the only form that reaches output or logs."""
        return self.url.render_as_string(hide_password=True)

    def connect(self) -> Connection:
        """A connection, with driver errors turned into a clear :class:`ConnectionFailed`."""
        try:
            if not self._warmed:
                self._warmed = True
                self._warm_up()
            return self.engine.connect()
        except exc.DBAPIError as error:
            raise connection_failed(self.name, self.safe_url, error) from error

    def _warm_up(self) -> None:
        """Open `min_connections` at once; the pool keeps them for the next checkouts."""
        opened = [self.engine.connect() for _ in range(self.min_connections)]
        for conn in opened:
            conn.close()

    def dispose(self) -> None:
        self.engine.dispose()


def connection_failed(name: str, safe_url: str, error: exc.DBAPIError) -> FerryError:
    reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    lowered = reason.lower()
    if "password" in lowered or "access denied" in lowered or "authentication" in lowered:
        hint = "check the user and password (put the password in an environment variable)"
    elif "does not exist" in lowered or "unknown database" in lowered:
        hint = "create the database first, or fix the database name in the URL"
    elif "refused" in lowered or "timeout" in lowered or "can't connect" in lowered:
        hint = "is the server running, and are the host and port in the URL right?"
    else:
        hint = "check the URL and that the server answers (`ferry doctor`)"
    return ConnectionFailed(name, safe_url, reason, hint=hint)


def open_url(name: str, url: str, target: TargetConfig | None = None, **_: Any) -> Target:
    """Open a target from a URL (for tests, scripts and job specs naming a URL)."""
    config = target or TargetConfig(url=url)
    try:
        parsed = make_url(url)
        adapter = adapter_for(parsed)
    except (exc.ArgumentError, ValueError) as error:
        raise ConfigError(str(error), key=f"targets.{name}.url") from error
    parsed = adapter.normalize_url(parsed)
    try:
        engine = adapter.create_engine(parsed, config.pool)
    except (ImportError, exc.ArgumentError) as error:
        raise ConfigError(
            f"cannot use {parsed.drivername}: {error}", key=f"targets.{name}.url"
        ) from error
    return Target(
        name=name,
        url=parsed,
        adapter=adapter,
        engine=engine,
        min_connections=min(config.pool.min, config.pool.max),
    )


def _relative_to(root: Path, url: str) -> str:
    """SQLite paths in a project file are relative to the project, not to the cwd."""
    parsed = make_url(url)
    database = parsed.database
    if (
        parsed.get_backend_name() == "sqlite"
        and database
        and not database.startswith(("file:", ":memory:"))
        and not Path(database).is_absolute()
    ):
        return parsed.set(database=str(root / database)).render_as_string(hide_password=False)
    return url


def open_target(project: Project, name: str | None = None) -> Target:
    """Open a target named in the project (or the default one)."""
    chosen, config = project.target(name)
    try:
        return open_url(chosen, _relative_to(project.root, config.url), config)
    except ConfigError as error:
        raise ConfigError(error.message, file=project.path, hint=error.hint) from error
