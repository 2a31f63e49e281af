"""Bad input through the `ferry` command: one clear message on stderr, an exit code, and no
traceback unless --debug asks for one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from ferry.cli.app import main
from ferry.db.lock import migration_lock
from ferry.db.target import open_url
from tests.conftest import ProjectMaker

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else int(code is not None)), captured.out, captured.err


def one_error(err: str) -> str:
    """Check stderr holds exactly one error and no traceback; returns it on one line."""
    assert "Traceback" not in err
    assert err.startswith("error: "), err
    assert sum(line.startswith("error:") for line in err.splitlines()) == 1, err
    return " ".join(err.split())


def _project(root: Path, url: str, *, extra: str = "", folders: str = '["migrations"]') -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "migrations").mkdir(exist_ok=True)
    (root / "ferry.toml").write_text(
        f"[migrations]\nfolders = {folders}\nlock_timeout = 0.5\n{extra}\n\n"
        f'[targets.t]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return root


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Path:
    return _project(tmp_path / "proj", f"sqlite:///{tmp_path / 'app.db'}")


# --- connections ---


@pytest.mark.parametrize("command", ["status", "apply"])
@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:1/x", "mysql://root@127.0.0.1:1/x"]
)
def test_server_that_does_not_answer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str, command: str
) -> None:
    root = _project(tmp_path / "proj", url)
    code, out, err = run(capsys, "-c", str(root), command)
    assert code == 3
    assert out == ""
    message = one_error(err)
    assert "cannot connect to target `t`" in message
    assert "127.0.0.1" in message
    assert "hint: is the server running" in message


@pytest.mark.parametrize("command", ["status", "apply"])
@pytest.mark.parametrize("dialect", ["mysql"])
def test_unknown_user_on_mariadb(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_url: str, command: str
) -> None:
    url = make_url(db_url).set(username="nobody", password="s3cretpw")
    root = _project(tmp_path / "proj", url.render_as_string(hide_password=False))
    code, _, err = run(capsys, "-c", str(root), command)
    assert code == 3
    message = one_error(err)
    assert "cannot connect to target `t`" in message
    assert "Access denied for user 'nobody'" in message
    assert "hint: check the user and password" in message
    assert "s3cretpw" not in err  # the password is masked


@pytest.mark.parametrize("command", ["status", "apply"])
@pytest.mark.parametrize("dialect", ["postgresql"])
def test_missing_database_on_postgresql(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_url: str, command: str
) -> None:
    url = make_url(db_url).set(database="ferry_no_such_database")
    root = _project(tmp_path / "proj", url.render_as_string(hide_password=False))
    code, _, err = run(capsys, "-c", str(root), command)
    assert code == 3
    message = one_error(err)
    assert "cannot connect to target `t`" in message
    assert '"ferry_no_such_database" does not exist' in message
    assert "hint: create the database first" in message


# --- the project file ---


def test_no_project_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "-c", str(empty), "status")
    assert code == 2
    message = one_error(err)
    assert f"{empty / 'ferry.toml'}: project file not found" in message
    assert "ferry init" in message


def test_no_project_file_in_any_parent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if any((folder / "ferry.toml").exists() for folder in tmp_path.parents):
        pytest.skip("a parent folder of the temporary folder has a ferry.toml")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "status")
    assert code == 2
    assert "no ferry.toml in" in one_error(err)


def test_unknown_target(capsys: pytest.CaptureFixture[str], sqlite_project: Path) -> None:
    code, _, err = run(capsys, "-c", str(sqlite_project), "status", "--target", "nope")
    assert code == 2
    message = one_error(err)
    assert "there is no target `nope`" in message
    assert "known targets: t" in message


def test_unknown_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = _project(tmp_path / "proj", "sqlite:///x.db", extra="lock_timout = 3")
    code, _, err = run(capsys, "-c", str(root), "status")
    assert code == 2
    message = one_error(err)
    assert f"{root / 'ferry.toml'}, key `migrations.lock_timout`: unknown key" in message
    assert "hint: check the spelling" in message


# --- migration files ---


def test_missing_migrations_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = _project(tmp_path / "proj", "sqlite:///x.db", folders='["nowhere"]')
    code, _, err = run(capsys, "-c", str(root), "apply")
    assert code == 2
    message = one_error(err)
    assert "nowhere: migration folder does not exist" in message


def test_malformed_migration_name(capsys: pytest.CaptureFixture[str], sqlite_project: Path) -> None:
    (sqlite_project / "migrations" / "V1_single_underscore.sql").write_text("SELECT 1;")
    code, _, err = run(capsys, "-c", str(sqlite_project), "plan")
    assert code == 2
    message = one_error(err)
    assert "V1_single_underscore.sql: the file name is not a migration name" in message


def test_failing_sql_names_file_and_line(
    capsys: pytest.CaptureFixture[str], sqlite_project: Path
) -> None:
    (sqlite_project / "migrations" / "V1__bad.sql").write_text(
        "CREATE TABLE ok_t (id INTEGER);\n\nINSERT INTO no_such_table VALUES (1);\n"
    )
    code, _, err = run(capsys, "-c", str(sqlite_project), "apply")
    assert code == 4
    message = one_error(err)
    assert "migration 1 failed at " in message
    assert "V1__bad.sql:3: no such table: no_such_table" in message
    assert "statement: INSERT INTO no_such_table" in message


def test_checksum_mismatch_exits_5(
    capsys: pytest.CaptureFixture[str], sqlite_project: Path
) -> None:
    script = sqlite_project / "migrations" / "V1__a.sql"
    script.write_text("CREATE TABLE a (id INTEGER);\n")
    assert run(capsys, "-c", str(sqlite_project), "apply")[0] == 0
    script.write_text("CREATE TABLE a (id INTEGER, n INTEGER);\n")

    code, _, err = run(capsys, "-c", str(sqlite_project), "apply")
    assert code == 5
    message = one_error(err)
    assert "V1__a.sql changed after it was applied" in message
    assert "ferry repair" in message

    code, out, err = run(capsys, "-c", str(sqlite_project), "validate")
    assert code == 5
    assert "checksum_mismatch" in out
    assert "Traceback" not in err


def test_held_lock_exits_6(
    capsys: pytest.CaptureFixture[str], maker: ProjectMaker, dialect: str
) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER);")
    (maker.root / "ferry.toml").write_text(
        maker.toml().replace("lock_timeout = 2", "lock_timeout = 0.5"), encoding="utf-8"
    )
    other = open_url("t", maker.url)
    try:
        with migration_lock(
            other.adapter, other.engine, "migrate:schema_migrations", timeout=1, target="t"
        ):
            code, out, err = run(capsys, "-c", str(maker.root), "apply")
    finally:
        other.dispose()
    assert code == 6
    assert out == ""
    message = one_error(err)
    assert "target `t` is being migrated by another process" in message
    assert "waited 0.5 s" in message
    # Released: the same command now goes through.
    assert run(capsys, "-c", str(maker.root), "apply")[0] == 0


def test_error_message_is_not_wrapped(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A long error stays on one line (then its hint), whatever the terminal width."""
    deep = tmp_path.joinpath(*["a_rather_long_folder_name"] * 8)
    deep.mkdir(parents=True)
    code, _, err = run(capsys, "-c", str(deep), "status")
    assert code == 2
    lines = err.rstrip("\n").splitlines()
    assert lines[0] == f"error: {deep / 'ferry.toml'}: project file not found", err
    assert all(line.startswith("  hint: ") for line in lines[1:]), err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ferry", "--debug", "-c", str(tmp_path), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "ConfigError" in result.stderr
    assert "project file not found" in result.stderr
    plain = subprocess.run(
        [sys.executable, "-m", "ferry", "-c", str(tmp_path), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.returncode == 2
    assert "Traceback" not in plain.stderr


# --- commands that work ---


def test_init_then_doctor(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    code, out, _ = run(capsys, "init", str(folder))
    assert code == 0
    assert "ferry.toml" in out
    assert (folder / "migrations").is_dir()
    code, out, err = run(capsys, "-c", str(folder), "doctor")
    assert code == 0, out + err
    assert "target dev" in out
    assert "sqlite" in out

    code, _, err = run(capsys, "init", str(folder))
    assert code == 2
    assert "a project file already exists here" in one_error(err)


def test_plan_and_status_json(capsys: pytest.CaptureFixture[str], sqlite_project: Path) -> None:
    migrations = sqlite_project / "migrations"
    (migrations / "V1__a.sql").write_text("CREATE TABLE a (id INTEGER);\n")
    (migrations / "V2__b.sql").write_text("-- b\nCREATE TABLE b (id INTEGER);\nSELECT 1;\n")

    code, out, _ = run(capsys, "-c", str(sqlite_project), "plan", "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["target"] == "t"
    assert [p["version"] for p in plan["planned"]] == ["1", "2"]
    assert plan["planned"][1]["statements"] == [
        {"line": 2, "sql": "CREATE TABLE b (id INTEGER)"},
        {"line": 3, "sql": "SELECT 1"},
    ]

    code, out, _ = run(capsys, "-c", str(sqlite_project), "status", "--json")
    assert code == 0
    status = json.loads(out)
    assert status["current"] is None
    assert [(m["version"], m["state"]) for m in status["migrations"]] == [
        ("1", "pending"),
        ("2", "pending"),
    ]

    code, out, _ = run(capsys, "-c", str(sqlite_project), "apply", "--json")
    assert code == 0
    assert [r["status"] for r in json.loads(out)["results"]] == ["applied", "applied"]
    code, out, _ = run(capsys, "-c", str(sqlite_project), "status", "--json")
    status = json.loads(out)
    assert status["current"] == "2"
    assert status["problems"] == []
