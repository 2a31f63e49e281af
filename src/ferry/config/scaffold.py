"""`ferry init`: a new project folder with a commented ferry.toml."""

from __future__ import annotations

from pathlib import Path

from ferry.config.project import PROJECT_FILE
from ferry.errors import ConfigError

TEMPLATE = """\
# Ferry project file. Values may use ${{ENV_VAR}} (or ${{ENV_VAR:-default}}) so that
# passwords stay out of this file.

[migrations]
folders = ["migrations"]          # searched recursively for V/U/R files
strategy = "{strategy}"           # forward_only | versioned | branching
history_table = "schema_migrations"
out_of_order = false              # allow pending versions older than the latest applied
lock_timeout = 60                 # seconds to wait while another run holds the lock
placeholder_replacement = true    # ${{name}} in SQL comes from [placeholders]

[placeholders]
# app_user = "camera_app"

[backups]
location = "backups"              # ferry backup writes dumps and manifests here

[targets.dev]
url = "{url}"
# pool = {{ min = 1, max = 5, acquire_timeout = 30, idle_timeout = 300 }}

# [targets.prod]
# url = "postgresql://ferry:${{FERRY_PROD_PASSWORD}}@db.example.internal:5432/cameras"
"""


def init_project(
    folder: Path, *, url: str = "sqlite:///dev.db", strategy: str = "versioned"
) -> list[Path]:
    """Create `ferry.toml` and a `migrations/` folder in `folder`.

    Raises:
        ConfigError: a project file is already there.
    """
    folder.mkdir(parents=True, exist_ok=True)
    project_file = folder / PROJECT_FILE
    if project_file.exists():
        raise ConfigError(
            "a project file already exists here",
            file=project_file,
            hint="edit it, or run `ferry init` in another folder",
        )
    project_file.write_text(TEMPLATE.format(url=url, strategy=strategy), encoding="utf-8")
    migrations = folder / "migrations"
    migrations.mkdir(exist_ok=True)
    return [project_file, migrations]
