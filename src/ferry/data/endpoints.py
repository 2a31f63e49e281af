"""A job's source and target: a URL, or a target named in ferry.toml."""

from __future__ import annotations

from pathlib import Path

from ferry.config.project import Project, load_project
from ferry.db.target import Target, open_target, open_url
from ferry.errors import ConfigError


def open_endpoint(value: str, *, key: str, spec_path: Path, project: Project | None) -> Target:
    """A job's source or target: a URL, or a target named in ferry.toml."""
    if "://" in value:
        if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
            # Relative SQLite paths in a job spec are relative to the spec file.
            value = "sqlite:///" + str((spec_path.parent / value[10:]).resolve())
        return open_url(key, value)
    if project is None:
        try:
            project = load_project(spec_path.parent)
        except ConfigError:
            project = load_project(None)
    if value not in project.config.targets:
        raise ConfigError(
            f"`{value}` is neither a URL nor a target in {project.path}",
            file=spec_path,
            key=key,
            hint="write a URL (postgresql://..., mysql://..., sqlite:///...) or add the target "
            "to ferry.toml",
        )
    return open_target(project, value)


def ensure_reachable(*endpoints: Target) -> None:
    """Connect to each endpoint once, so an unreachable one is named (`cannot connect to
    target `source` ...`) before reflection fails with the driver's bare words.

    Raises:
        ConnectionFailed: an endpoint refused or could not be reached.
    """
    for endpoint in endpoints:
        with endpoint.connect():
            pass
