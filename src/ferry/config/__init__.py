"""Project file and job specs."""

from ferry.config.project import (
    PROJECT_FILE,
    MigrationSettings,
    PoolConfig,
    Project,
    ProjectConfig,
    Strategy,
    TargetConfig,
    load_project,
    parse_project,
)

__all__ = [
    "PROJECT_FILE",
    "MigrationSettings",
    "PoolConfig",
    "Project",
    "ProjectConfig",
    "Strategy",
    "TargetConfig",
    "load_project",
    "parse_project",
]
