"""Tests for the project file: parsing, validation, `${VAR}` expansion and targets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text

from ferry.config.expand import expand_env, expand_tree
from ferry.config.project import Project, Strategy, load_project, parse_project
from ferry.db.target import _relative_to, open_target
from ferry.errors import ConfigError

ROOT = Path("/srv/proj")
FILE = ROOT / "ferry.toml"

VALID = """
default_target = "prod"

[migrations]
folders = ["db/migrations", "db/more"]
strategy = "branching"
history_table = "ferry_history"
out_of_order = true
lock_timeout = 5

[placeholders]
schema = "app"
owner = "admin"

[targets.dev]
url = "sqlite:///dev.db"

[targets.prod]
url = "postgresql://app@db.example.com/app"
lock_timeout = 1.5
placeholders = { owner = "app_owner" }

[targets.prod.pool]
min = 2
max = 10
"""


def parse(text_: str, env: dict[str, str] | None = None, root: Path = ROOT) -> Project:
    return parse_project(text_, root=root, path=root / "ferry.toml", env=env or {})


def config_error(text_: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text_, env)
    return info.value


# --- valid files ------------------------------------------------------------------------


def test_parses_a_valid_file() -> None:
    project = parse(VALID)
    settings = project.config.migrations
    assert settings.folders == ["db/migrations", "db/more"]
    assert project.strategy is Strategy.BRANCHING
    assert settings.history_table == "ferry_history"
    assert settings.out_of_order is True
    assert settings.lock_timeout == 5.0
    assert project.target_names() == ["dev", "prod"]
    assert project.migration_folders == [ROOT / "db/migrations", ROOT / "db/more"]
    assert project.path == FILE
    assert project.root == ROOT
    _, prod = project.target("prod")
    assert prod.pool.min == 2
    assert prod.pool.max == 10
    assert prod.pool.acquire_timeout == 30.0


def test_defaults_for_an_empty_file() -> None:
    project = parse("")
    settings = project.config.migrations
    assert settings.folders == ["migrations"]
    assert project.strategy is Strategy.VERSIONED
    assert settings.history_table == "schema_migrations"
    assert settings.out_of_order is False
    assert settings.placeholder_replacement is True
    assert project.target_names() == []


def test_placeholders_and_lock_timeouts_merge_per_target() -> None:
    project = parse(VALID)
    assert project.placeholders_for("prod") == {"schema": "app", "owner": "app_owner"}
    assert project.placeholders_for("dev") == {"schema": "app", "owner": "admin"}
    assert project.lock_timeout_for("prod") == 1.5
    assert project.lock_timeout_for("dev") == 5.0


@pytest.mark.parametrize("strategy", ["forward_only", "versioned", "branching"])
def test_every_strategy_parses(strategy: str) -> None:
    project = parse(f'[migrations]\nstrategy = "{strategy}"\n')
    assert project.strategy is Strategy(strategy)


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text_", "key"),
    [
        ('[targets.dev]\nurl = "sqlite:///x.db"\nurll = "x"\n', "targets.dev.urll"),
        ('[migrations]\nfolder = ["m"]\n', "migrations.folder"),
        ('[migration]\nfolders = ["m"]\n', "migration"),
        ('[targets.dev]\nurl = "sqlite:///x.db"\n[targets.dev.pool]\nmaxx = 3\n', None),
        ('default_targett = "dev"\n', "default_targett"),
    ],
)
def test_unknown_key_names_the_dotted_key(text_: str, key: str | None) -> None:
    error = config_error(text_)
    key = key or "targets.dev.pool.maxx"
    assert error.key == key
    assert f"key `{key}`" in str(error)
    assert "unknown key" in str(error)
    assert error.file == FILE
    assert str(FILE) in str(error)
    assert error.hint
    assert "hint:" in str(error)


def test_misspelt_url_is_reported_as_unknown_key() -> None:
    # With `url` misspelt, `url` is also missing; the typo is the error to show.
    error = config_error('[targets.dev]\nurll = "sqlite:///x.db"\n')
    assert "targets.dev.urll" in str(error)
    assert error.hint


def test_bad_strategy_names_the_key() -> None:
    error = config_error('[migrations]\nstrategy = "yolo"\n')
    assert error.key == "migrations.strategy"
    assert "key `migrations.strategy`" in str(error)
    assert "forward_only" in str(error)
    assert error.file == FILE


def test_missing_url() -> None:
    error = config_error("[targets.dev]\nlock_timeout = 3\n")
    assert error.key == "targets.dev.url"
    assert "missing" in str(error)


@pytest.mark.parametrize(
    ("text_", "key", "fragment"),
    [
        ('[targets.dev]\nurl = "dev.db"\n', "targets.dev.url", "sqlite:///"),
        ('[targets.dev]\nurl = "sqlite://"\n[targets.dev.pool]\nmax = 0\n', None, "0"),
        ('[migrations]\nhistory_table = "bad-name"\n', "migrations.history_table", "bad-name"),
        ('[migrations]\nfolders = "migrations"\n', "migrations.folders", "list"),
        ("[migrations]\nlock_timeout = -1\n", "migrations.lock_timeout", "-1"),
    ],
)
def test_invalid_values_name_the_key(text_: str, key: str | None, fragment: str) -> None:
    error = config_error(text_)
    key = key or "targets.dev.pool.max"
    assert error.key == key
    assert f"key `{key}`" in str(error)
    assert fragment in str(error)


def test_toml_syntax_error_names_the_file() -> None:
    error = config_error('[targets.dev\nurl = "x"\n')
    assert error.file == FILE
    assert str(FILE) in str(error)
    assert "not valid TOML" in str(error)
    assert "line 1" in str(error)


def test_load_project_from_folder_and_file(tmp_path: Path) -> None:
    (tmp_path / "ferry.toml").write_text('[targets.t]\nurl = "sqlite://"\n', "utf-8")
    for where in (tmp_path, tmp_path / "ferry.toml"):
        project = load_project(where)
        assert project.root == tmp_path.resolve()
        assert project.target_names() == ["t"]


def test_load_project_searches_upward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ferry.toml").write_text("", "utf-8")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert load_project().root == tmp_path.resolve()


def test_load_project_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as info:
        load_project(tmp_path / "nope.toml")
    assert info.value.hint


def test_load_project_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ferry.toml"
    path.write_text("[[[", "utf-8")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_project(path)


# --- ${VAR} expansion -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${HOST}", {"HOST": "db"}, "db"),
        ("postgresql://${USER}:${PW}@h/d", {"USER": "u", "PW": "p@ss"}, "postgresql://u:p@ss@h/d"),
        ("${HOST:-localhost}", {}, "localhost"),
        ("${HOST:-localhost}", {"HOST": "db"}, "db"),
        ("${HOST:-}", {}, ""),
        ("${PORT:-5432}/x", {}, "5432/x"),
        ("$${HOST}", {"HOST": "db"}, "${HOST}"),
        ("a$${X}b${Y}", {"Y": "y"}, "a${X}by"),
        ("$HOST", {"HOST": "db"}, "$HOST"),
        ("no refs", {}, "no refs"),
        ("${A}${A}", {"A": "1"}, "11"),
    ],
)
def test_expand_env(value: str, env: dict[str, str], expected: str) -> None:
    assert expand_env(value, key="k", env=env) == expected


def test_empty_variable_uses_the_default() -> None:
    # `${VAR:-default}` is the shell's "unset or empty" form.
    assert expand_env("${HOST:-localhost}", key="k", env={"HOST": ""}) == "localhost"


def test_set_empty_variable_without_default_is_empty() -> None:
    assert expand_env("x${HOST}y", key="k", env={"HOST": ""}) == "xy"


def test_expand_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_UNIT_TEST_VAR", "from-env")
    assert expand_env("${FERRY_UNIT_TEST_VAR}", key="k") == "from-env"


def test_unset_variable_names_key_and_variable() -> None:
    with pytest.raises(ConfigError, match=r"`DB_PASSWORD` is not set") as info:
        expand_env("${DB_PASSWORD}", key="targets.prod.url", env={})
    assert info.value.key == "targets.prod.url"
    assert "key `targets.prod.url`" in str(info.value)
    assert info.value.hint is not None
    assert "DB_PASSWORD" in info.value.hint


def test_expand_tree_keys() -> None:
    tree = {"a": {"b": "${X}", "n": 3, "flag": True}, "l": ["${X}", "y"]}
    assert expand_tree(tree, env={"X": "1"}) == {
        "a": {"b": "1", "n": 3, "flag": True},
        "l": ["1", "y"],
    }
    with pytest.raises(ConfigError) as info:
        expand_tree({"m": {"folders": ["ok", "${NOPE}"]}}, env={})
    assert info.value.key == "m.folders[1]"


def test_parse_project_expands_from_env() -> None:
    text_ = (
        '[placeholders]\nschema = "${SCHEMA:-public}"\nliteral = "$${kept}"\n'
        '[targets.prod]\nurl = "postgresql://${DB_USER}@${DB_HOST}/app"\n'
    )
    project = parse(text_, env={"DB_USER": "app", "DB_HOST": "db.internal"})
    assert project.target("prod")[1].url == "postgresql://app@db.internal/app"
    assert project.config.placeholders == {"schema": "public", "literal": "${kept}"}


def test_parse_project_unset_variable_names_key_and_variable() -> None:
    error = config_error('[targets.prod]\nurl = "postgresql://${DB_USER}@h/app"\n')
    assert error.key == "targets.prod.url"
    assert "DB_USER" in str(error)


def test_parse_project_unset_variable_names_the_file() -> None:
    error = config_error('[targets.prod]\nurl = "postgresql://${DB_USER}@h/app"\n')
    assert error.file == FILE
    assert str(FILE) in str(error)


# --- targets ----------------------------------------------------------------------------


def test_target_by_name_and_default() -> None:
    project = parse(VALID)
    assert project.target()[0] == "prod"  # default_target
    assert project.target("dev")[0] == "dev"
    assert project.target("dev")[1].url == "sqlite:///dev.db"


def test_first_target_is_the_default_without_default_target() -> None:
    project = parse('[targets.b]\nurl = "sqlite://"\n[targets.a]\nurl = "sqlite://"\n')
    assert project.target() == ("b", project.config.targets["b"])


def test_unknown_target_lists_known_targets() -> None:
    project = parse(VALID)
    with pytest.raises(ConfigError, match="there is no target `stage`") as info:
        project.target("stage")
    assert info.value.key == "targets.stage"
    assert info.value.hint is not None
    assert "dev" in info.value.hint
    assert "prod" in info.value.hint
    assert info.value.file == FILE


def test_unknown_default_target() -> None:
    project = parse('default_target = "nope"\n[targets.a]\nurl = "sqlite://"\n')
    with pytest.raises(ConfigError, match="nope"):
        project.target()


def test_no_targets_configured() -> None:
    with pytest.raises(ConfigError, match="no targets") as info:
        parse("").target()
    assert info.value.hint


# --- relative SQLite paths --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///dev.db", "sqlite:////srv/proj/dev.db"),
        ("sqlite:///data/dev.db", "sqlite:////srv/proj/data/dev.db"),
        ("sqlite+pysqlite:///dev.db", "sqlite+pysqlite:////srv/proj/dev.db"),
        ("sqlite:///dev.db?timeout=3", "sqlite:////srv/proj/dev.db?timeout=3"),
        ("sqlite:////abs/dev.db", "sqlite:////abs/dev.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://u:pw@h/db", "postgresql://u:pw@h/db"),
        ("mysql://u@h/relative", "mysql://u@h/relative"),
    ],
)
def test_relative_sqlite_paths_resolve_against_the_root(url: str, expected: str) -> None:
    assert _relative_to(ROOT, url) == expected


def test_open_target_uses_the_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    project = parse('[targets.dev]\nurl = "sqlite:///data.db"\n', root=root)
    target = open_target(project)
    try:
        assert target.name == "dev"
        assert target.url.database == str(root / "data.db")
        with target.connect() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.commit()
    finally:
        target.dispose()
    assert (root / "data.db").is_file()
    assert not (elsewhere / "data.db").exists()


def test_open_target_in_memory() -> None:
    project = parse('[targets.mem]\nurl = "sqlite://"\n')
    target = open_target(project, "mem")
    try:
        with target.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        target.dispose()


def test_open_target_bad_url_names_the_file() -> None:
    project = parse('[targets.x]\nurl = "nosuchdb://h/d"\n')
    with pytest.raises(ConfigError) as info:
        open_target(project, "x")
    assert info.value.file == FILE
