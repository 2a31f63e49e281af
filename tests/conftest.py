"""Shared fixtures: a fresh database per test on SQLite, PostgreSQL and MariaDB.

Server URLs come from FERRY_TEST_PG and FERRY_TEST_MYSQL (defaults: the local servers).
Without a server the test is skipped, except under CI=true, where it fails: CI must prove
Ferry against the real servers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import make_url

from ferry.config.project import Project, parse_project

PG_URL = os.environ.get("FERRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_URL = os.environ.get("FERRY_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
DIALECTS = ["sqlite", "postgresql", "mysql"]

_ADMIN = {
    "postgresql": make_url(PG_URL).set(drivername="postgresql+psycopg"),
    "mysql": make_url(MYSQL_URL).set(drivername="mysql+pymysql"),
}
_unreachable: dict[str, str] = {}


def _admin_engine(dialect: str):  # type: ignore[no-untyped-def]
    if dialect in _unreachable:
        _server_missing(dialect, _unreachable[dialect])
    engine = create_engine(_ADMIN[dialect], isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except exc.DBAPIError as error:
        _unreachable[dialect] = str(error.orig).splitlines()[0]
        engine.dispose()
        _server_missing(dialect, _unreachable[dialect])
    return engine


def _server_missing(dialect: str, reason: str) -> None:
    message = f"{dialect} server unreachable ({reason})"
    if IN_CI:
        pytest.fail(f"{message}; under CI=true the integration servers are required")
    pytest.skip(message)


def new_database(dialect: str, tmp_path: Path) -> tuple[str, Callable[[], None]]:
    """Create a uniquely named empty database; returns its URL and a drop function."""
    name = f"ferry_t_{uuid.uuid4().hex[:10]}"
    if dialect == "sqlite":
        path = tmp_path / f"{name}.db"
        return f"sqlite:///{path}", lambda: None
    engine = _admin_engine(dialect)
    quote = '"' if dialect == "postgresql" else "`"
    with engine.connect() as conn:
        extra = " CHARACTER SET utf8mb4" if dialect == "mysql" else ""
        conn.execute(text(f"CREATE DATABASE {quote}{name}{quote}{extra}"))
    url = _ADMIN[dialect].set(database=name)
    rendered = url.render_as_string(hide_password=False)

    def drop() -> None:
        with engine.connect() as conn:
            force = " WITH (FORCE)" if dialect == "postgresql" else ""
            conn.execute(text(f"DROP DATABASE IF EXISTS {quote}{name}{quote}{force}"))
        engine.dispose()

    return rendered, drop


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(dialect: str, tmp_path: Path) -> Iterator[str]:
    url, drop = new_database(dialect, tmp_path)
    yield url
    drop()


class ProjectMaker:
    """Writes ferry.toml and migration files into a temporary folder."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.migrations = root / "migrations"
        self.migrations.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, content: str) -> Path:
        path = self.migrations / name
        path.write_text(content, encoding="utf-8")
        return path

    def toml(
        self, *, strategy: str = "versioned", extra: str = "", targets: dict[str, str] | None = None
    ) -> str:
        targets = targets or {"t": self.url}
        lines = [
            "[migrations]",
            'folders = ["migrations"]',
            f'strategy = "{strategy}"',
            "lock_timeout = 2",
            extra,
            "",
        ]
        for name, url in targets.items():
            lines += [f"[targets.{name}]", f'url = "{url}"', ""]
        return "\n".join(lines)

    def project(self, **kwargs: object) -> Project:
        text_ = self.toml(**kwargs)  # type: ignore[arg-type]
        (self.root / "ferry.toml").write_text(text_, encoding="utf-8")
        return parse_project(text_, root=self.root, path=self.root / "ferry.toml")


@pytest.fixture
def maker(tmp_path: Path, db_url: str) -> ProjectMaker:
    return ProjectMaker(tmp_path / "proj", db_url)


def engine_for(url: str):  # type: ignore[no-untyped-def]
    """A SQLAlchemy engine on a test database, with Ferry's driver choice."""
    from ferry.db.target import open_url

    return open_url("test", url).engine
