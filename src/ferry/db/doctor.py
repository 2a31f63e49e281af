"""`ferry doctor`: is the project file sound, does each target answer, which tools are here."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from ferry.config.project import Project
from ferry.db.target import open_target
from ferry.errors import FerryError

_ALL_TOOLS = ("pg_dump", "pg_restore", "psql", "mariadb-dump", "mysqldump", "mariadb", "sqlite3")


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


def _tool_version(tool: str) -> Check:
    path = shutil.which(tool)
    if path is None:
        return Check(
            f"tool {tool}", "warn", "not installed (backups fall back to in-database copies)"
        )
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        first = (out.stdout or out.stderr).strip().splitlines()
        version = first[0] if first else "unknown version"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(f"tool {tool}", "warn", f"{path}: {exc}")
    return Check(f"tool {tool}", "ok", f"{path}: {version}")


def doctor(project: Project) -> list[Check]:
    """Run every check; never raises for a failing target, it reports it."""
    from ferry.schema.commands import load_migrations  # doctor reads migrations too

    checks = [Check("project file", "ok", str(project.path))]
    try:
        migrations = load_migrations(project)
        checks.append(
            Check(
                "migrations",
                "ok",
                f"{len(migrations.versioned)} versioned, "
                f"{len(migrations.repeatable)} repeatable in "
                + ", ".join(str(f) for f in project.migration_folders),
            )
        )
    except FerryError as exc:
        checks.append(Check("migrations", "fail", str(exc)))
    for name in project.target_names():
        try:
            target = open_target(project, name)
        except FerryError as exc:
            checks.append(Check(f"target {name}", "fail", str(exc)))
            continue
        try:
            with target.connect() as conn:
                version = target.adapter.server_version(conn)
            checks.append(
                Check(f"target {name}", "ok", f"{target.safe_url}: {target.adapter.name} {version}")
            )
        except FerryError as exc:
            checks.append(Check(f"target {name}", "fail", str(exc)))
        finally:
            target.dispose()
    checks.extend(_tool_version(tool) for tool in _ALL_TOOLS)
    return checks
