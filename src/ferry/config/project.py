"""The project file `ferry.toml`: targets, migration folders, strategy, placeholders."""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ferry.config.expand import expand_tree
from ferry.errors import ConfigError

PROJECT_FILE = "ferry.toml"


class Strategy(StrEnum):
    """How versions relate and what may be undone."""

    FORWARD_ONLY = "forward_only"
    VERSIONED = "versioned"
    BRANCHING = "branching"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolConfig(_Model):
    """Connection pool limits of one target."""

    min: int = Field(default=1, ge=0)
    max: int = Field(default=5, ge=1)
    acquire_timeout: float = Field(default=30.0, gt=0, description="seconds to wait for a conn")
    idle_timeout: float = Field(default=300.0, gt=0, description="seconds before recycling")


class TargetConfig(_Model):
    """One database Ferry migrates."""

    url: str
    pool: PoolConfig = PoolConfig()
    placeholders: dict[str, str] = {}
    lock_timeout: float | None = Field(default=None, ge=0)

    @field_validator("url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(
                "a database URL looks like postgresql://user@host/db, "
                "mysql://user@host/db or sqlite:///path.db"
            )
        return value


class MigrationSettings(_Model):
    """Where migrations live and how they run."""

    folders: list[str] = ["migrations"]
    strategy: Strategy = Strategy.VERSIONED
    history_table: str = "schema_migrations"
    out_of_order: bool = False
    lock_timeout: float = Field(default=60.0, ge=0, description="seconds to wait for the lock")
    placeholder_replacement: bool = True
    #: production mode: seconds a statement waits for a lock, and retries after a timeout
    statement_lock_timeout: float = Field(default=5.0, gt=0)
    lock_retries: int = Field(default=3, ge=0, le=10)

    @field_validator("history_table")
    @classmethod
    def _plain_identifier(cls, value: str) -> str:
        if not value.replace("_", "").isalnum():
            raise ValueError("use letters, digits and underscores only")
        return value


class QueryCheck(_Model):
    """A query the application runs, with its bound parameters."""

    name: str
    sql: str
    params: dict[str, Any] = {}


class ChecksSettings(_Model):
    """Representative queries timed before and after a safe run, and smoke queries that
    must keep working."""

    performance: list[QueryCheck] = []
    application: list[QueryCheck] = []
    runs: int = Field(default=5, ge=1, le=100, description="timed runs; the median counts")
    slowdown: float = Field(default=0.5, gt=0, description="0.5: 50% slower fails")
    #: safe runs: `fail` rolls a run back when a table changed during it that no migration
    #: of the run names (changed outside Ferry); `warn` only reports it
    schema_drift: Literal["warn", "fail"] = "warn"


class BackupScope(StrEnum):
    """What a safe run backs up."""

    TOUCHED = "touched"  # the tables the plan or job touches (and Ferry's own)
    DATABASE = "database"  # every table


class BackupSettings(_Model):
    """Where backups go (relative to the project folder), and what safe runs back up."""

    location: str = "backups"
    scope: BackupScope = BackupScope.TOUCHED


class ProjectConfig(_Model):
    """The whole `ferry.toml`."""

    migrations: MigrationSettings = MigrationSettings()
    backups: BackupSettings = BackupSettings()
    checks: ChecksSettings = ChecksSettings()
    placeholders: dict[str, str] = {}
    default_target: str | None = None
    targets: dict[str, TargetConfig] = {}


class Project:
    """A loaded project: its config plus the folder it lives in.

    Args:
        config: the validated file contents.
        root: the folder holding `ferry.toml`; relative paths resolve against it.
        path: the project file itself, for error messages.
    """

    def __init__(self, config: ProjectConfig, root: Path, path: Path | None = None) -> None:
        self.config = config
        self.root = root
        self.path = path or root / PROJECT_FILE

    @property
    def migration_folders(self) -> list[Path]:
        return [(self.root / folder).resolve() for folder in self.config.migrations.folders]

    @property
    def strategy(self) -> Strategy:
        return self.config.migrations.strategy

    def target_names(self) -> list[str]:
        return list(self.config.targets)

    def target(self, name: str | None = None) -> tuple[str, TargetConfig]:
        """The named target, or the default one.

        Raises:
            ConfigError: no such target, or none configured.
        """
        targets = self.config.targets
        if not targets:
            raise ConfigError(
                "no targets are configured",
                file=self.path,
                key="targets",
                hint='add a [targets.dev] table with url = "sqlite:///dev.db"',
            )
        chosen = name or self.config.default_target or next(iter(targets))
        if chosen not in targets:
            raise ConfigError(
                f"there is no target `{chosen}`",
                file=self.path,
                key=f"targets.{chosen}",
                hint=f"known targets: {', '.join(targets)}",
            )
        return chosen, targets[chosen]

    def placeholders_for(self, target: str) -> dict[str, str]:
        merged = dict(self.config.placeholders)
        merged.update(self.config.targets[target].placeholders)
        return merged

    def lock_timeout_for(self, target: str) -> float:
        own = self.config.targets[target].lock_timeout
        return self.config.migrations.lock_timeout if own is None else own


def _describe(error: ValidationError, path: Path) -> ConfigError:
    errors = error.errors()
    # A misspelt key shows up as "missing" and "extra": the typo is the useful one.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    key = ".".join(str(part) for part in first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        return ConfigError(
            "unknown key",
            file=path,
            key=key,
            hint="check the spelling; `ferry init` writes a commented example file",
        )
    if kind == "missing":
        return ConfigError("required key is missing", file=path, key=key)
    message = first["msg"].removeprefix("Value error, ")
    if kind == "enum":
        return ConfigError(message, file=path, key=key)
    return ConfigError(f"invalid value {first.get('input')!r}: {message}", file=path, key=key)


def parse_project(
    text: str, *, root: Path, path: Path, env: dict[str, str] | None = None
) -> Project:
    """Parse and validate project file text.

    Raises:
        ConfigError: TOML syntax, unknown or invalid keys, unset environment variables.
    """
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=path) from exc
    expanded = expand_tree(raw, env=env, file=path)
    try:
        config = ProjectConfig.model_validate(expanded)
    except ValidationError as exc:
        raise _describe(exc, path) from exc
    return Project(config, root, path)


def load_project(path: Path | None = None) -> Project:
    """Load `ferry.toml` from `path` (a file or folder), or search upward from the cwd.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    if path is None:
        here = Path.cwd()
        for folder in (here, *here.parents):
            if (folder / PROJECT_FILE).is_file():
                path = folder / PROJECT_FILE
                break
        else:
            raise ConfigError(
                f"no {PROJECT_FILE} in {here} or any parent folder",
                hint="run `ferry init` to create a project, or pass --config PATH",
            )
    if path.is_dir():
        path = path / PROJECT_FILE
    if not path.is_file():
        raise ConfigError(
            "project file not found",
            file=path,
            hint="run `ferry init` to create one, or pass --config PATH",
        )
    return parse_project(path.read_text(encoding="utf-8"), root=path.parent.resolve(), path=path)
