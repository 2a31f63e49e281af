# ruff: noqa: F811
"""Review of what a copy tells its user: progress (bars on a terminal, JSON lines elsewhere),
the report (balance per load strategy and mode, a resumed run's figures, `--json`), exit
codes, the errors of bad options, the Python API as the README shows it, and `ferry
quickstart` from an empty folder whose path holds spaces.

Every copy here runs against real databases; the CLI runs as a real `python -m ferry`.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ferry.data.copy import copy_data
from ferry.data.spec import load_job
from ferry.data.transform import DataError
from tests.conftest import engine_for

# make_db is test_copy_resume's fixture: its parameters name it again.
from tests.integration.test_copy_resume import make_db  # noqa: F401

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MARKUP = re.compile(r"\[/?(green|red|yellow|dim|bold|cyan|magenta)[^\]]*\]|\[/\]")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "160"}


def _ferry(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferry", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def _sql(url: str, *statements: str, rows: list[dict[str, Any]] | None = None) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                if rows is not None and ":" in statement:
                    conn.execute(text(statement), rows)
                else:
                    conn.execute(text(statement))
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> Any:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def _items(url: str, n: int, *, bad_every: int = 0) -> None:
    """`items(id, code, email)` with n rows; every `bad_every`-th email is invalid."""
    _sql(url, "CREATE TABLE items (id INTEGER PRIMARY KEY, code VARCHAR(5), email VARCHAR(80))")
    rows = [
        {
            "i": i,
            "c": "AB"[i % 2],
            "e": "broken" if bad_every and i % bad_every == 0 else f"u{i}@example.org",
        }
        for i in range(1, n + 1)
    ]
    _sql(url, "INSERT INTO items (id, code, email) VALUES (:i, :c, :e)", rows=rows)


def _job(path: Path, source: str, target: str, body: str) -> Path:
    path.write_text(
        f"source: {json.dumps(source)}\ntarget: {json.dumps(target)}\n{body}", encoding="utf-8"
    )
    return path


def _table(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in report["tables"] if t["table"] == name)


# ------------------------------------------------------------------------------ progress


def test_progress_off_a_terminal_is_json_lines_with_rate_eta_and_a_final_event(
    tmp_path: Path, make_db: Callable[[str], str]
) -> None:
    source, target = make_db("postgresql"), make_db("mysql")
    _items(source, 20_000, bad_every=97)
    job = _job(
        tmp_path / "job.yaml",
        source,
        target,
        "tables:\n  items:\n    validate: {email: email}\nload: {batch_size: 2000, workers: 2}\n",
    )

    done = _ferry("copy", str(job), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    progress = [e for e in events if e["event"] == "progress"]
    assert progress
    assert {e["table"] for e in progress} == {"items"}
    for event in progress:
        assert {"read", "written", "rejected", "chunks_done", "chunks_total"} <= event.keys()
        assert event["rows_per_second"] >= 0
        assert "eta_s" in event
    last = progress[-1]
    assert last["chunks_done"] == last["chunks_total"]
    assert last["eta_s"] == 0
    assert last["read"] == 20_000
    final = events[-1]
    assert final["event"] == "finished", events[-3:]
    assert final["status"] == "completed"
    assert final["read"] == 20_000
    assert final["rejected"] == 20_000 // 97
    assert final["balanced"] is True
    # The report on stdout: plain text, no markup or escape codes off a terminal.
    assert "items" in done.stdout
    assert "20,000" in done.stdout
    assert not ANSI.search(done.stdout), done.stdout
    assert not MARKUP.search(done.stdout), done.stdout


def test_progress_on_a_terminal_draws_bars_not_json(
    tmp_path: Path, make_db: Callable[[str], str]
) -> None:
    source, target = make_db("mysql"), make_db("postgresql")
    _items(source, 6_000)
    job = _job(
        tmp_path / "job.yaml", source, target, "tables:\n  items: {}\nload: {batch_size: 1000}\n"
    )
    primary, secondary = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "ferry", "copy", str(job)],
        cwd=tmp_path,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=_env(),
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert child.wait(timeout=120) == 0
    screen = ANSI.sub("", seen.decode("utf-8", "replace"))
    assert '{"event"' not in screen
    assert re.search(r"items .*6/6 .*6,000 rows .* rows/s", screen), screen[-2000:]
    assert "balanced" in screen  # the report table follows the bars


# ------------------------------------------------------------------------------ the report


def test_json_report_is_all_of_stdout_and_safe_mode_includes_its_proof(
    tmp_path: Path, make_db: Callable[[str], str]
) -> None:
    source, target = make_db("postgresql"), make_db("postgresql")
    _items(source, 3_000, bad_every=100)
    job = _job(
        tmp_path / "job.yaml", source, target, "tables:\n  items:\n    validate: {email: email}\n"
    )

    done = _ferry("copy", str(job), "--json", "--mode", "safe", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # nothing but the JSON document
    items = _table(report, "items")
    assert (items["read"], items["written"], items["rejected"]) == (3_000, 2_970, 30)
    assert items["seconds"] >= 0
    assert items["rows_per_second"] >= 0
    # `--mode safe` proved the copy: a JSON reader gets that proof, as the table reader does.
    assert report["proof"]["status"] == "passed", report.keys()
    assert not done.stderr.strip(), done.stderr  # --json: no progress events either


STRATEGIES = ["bulk", "upsert", "stream"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_report_balances_per_table_for_each_strategy_and_mode(
    strategy: str, tmp_path: Path, make_db: Callable[[str], str]
) -> None:
    """read = written + rejected + filtered + deduped for every table, and the figures are
    the target's: written rows are there, rejected ones are in ferry_rejects."""
    source, target = make_db("mysql"), make_db("postgresql")
    _items(source, 4_000, bad_every=50)
    _sql(source, "UPDATE items SET code = NULL WHERE id % 40 = 1")  # 100 rows: removed
    _sql(
        source,
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(80) NOT NULL)",
        "INSERT INTO people SELECT id, CONCAT('p', id % 300, '@example.org') FROM items",
        "CREATE TABLE nums (id INTEGER PRIMARY KEY, v INTEGER)",
        "INSERT INTO nums SELECT id, id FROM items WHERE id <= 1000",
        "CREATE TABLE events (id INTEGER PRIMARY KEY, changed INTEGER NOT NULL)",
        "INSERT INTO events SELECT id, id FROM items WHERE id <= 500",
    )
    job = _job(
        tmp_path / "job.yaml",
        source,
        target,
        "tables:\n"
        "  items:\n    validate: {email: email}\n    nulls: {code: remove}\n"
        "  people:\n    dedupe: {on: [email], keep: first}\n"
        "  nums:\n    mode: sample\n    sample: {method: systematic, percent: 25}\n"
        "  events:\n    mode: incremental\n    cursor: changed\n"
        f"load: {{strategy: {strategy}, batch_size: 700, workers: 2}}\n"
        "errors: {max_error_rate: 0.5}\n",
    )

    first = _ferry("copy", str(job), "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["balanced"] is True
    for table in report["tables"]:
        moved = table["written"] + table["rejected"] + table["filtered"] + table["deduped"]
        assert table["read"] == moved, table
        assert table["balanced"] is True
        rows = _scalar(target, f"SELECT COUNT(*) FROM {table['target']}")
        assert rows == table["written"], table
        rejects = _scalar(
            target,
            "SELECT COUNT(*) FROM ferry_rejects "
            f"WHERE table_name = '{table['table']}' AND run_id = '{report['run_id']}'",
        )
        assert rejects == table["rejected"], table
    items = _table(report, "items")
    assert (items["read"], items["rejected"], items["filtered"]) == (4_000, 80, 100)
    assert _table(report, "people")["deduped"] == 4_000 - 300
    assert _table(report, "nums")["filtered"] == 750

    # The incremental table's next run: only its cursor's newest rows (its maximum included).
    _sql(source, "INSERT INTO events SELECT id, id FROM items WHERE id > 500 AND id <= 600")
    second = _ferry("copy", str(job), "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    events = _table(again, "events")
    assert events["read"] == events["written"] + events["rejected"] + events["filtered"]
    assert events["read"] - events["written"] == events["rejected"] + events["filtered"]
    assert 100 <= events["read"] <= 101
    assert _scalar(target, "SELECT COUNT(*) FROM events") == 600


def test_rejected_rows_exit_zero_a_broken_limit_exits_7(
    tmp_path: Path, make_db: Callable[[str], str]
) -> None:
    source = make_db("postgresql")
    _items(source, 2_000, bad_every=20)  # 5 % rejected
    body = "tables:\n  items:\n    validate: {email: email}\nerrors: {max_error_rate: %s}\n"

    within = _job(tmp_path / "a.yaml", source, make_db("mysql"), body % 0.1)
    done = _ferry("copy", str(within), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "completed"
    assert _table(report, "items")["rejected"] == 100

    over = _job(tmp_path / "b.yaml", source, make_db("mysql"), body % 0.01)
    failed = _ferry("copy", str(over), cwd=tmp_path)
    assert failed.returncode == 7, failed.stderr
    assert failed.stdout == ""
    lines = failed.stderr.splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert events[-1]["event"] == "finished"
    assert events[-1]["status"] == "failed"
    assert "max_error_rate" in events[-1]["error"]
    # After the events, the error for a person: one line and a hint, no traceback.
    human = [line for line in lines if not line.startswith("{")]
    assert human[0].startswith("error: "), failed.stderr
    assert "max_error_rate" in human[0]
    assert "Traceback" not in failed.stderr


def _stop_after_some_chunks(tmp_path: Path, source: str, target: str) -> tuple[Path, int]:
    """A first run stopped by `errors.max_errors` once the bad rows start (the second half of
    the keys); returns the job (now with the limit lifted) and the rows the first run read."""
    body = (
        "name: resumable\ntables:\n  items:\n    validate: {email: email}\n"
        "load: {batch_size: 500, workers: 1}\nerrors: {max_errors: %s, max_error_rate: 1}\n"
    )
    job = _job(tmp_path / "job.yaml", source, target, body % 0)
    with pytest.raises(DataError):
        copy_data(load_job(job), spec_path=job)
    resumed_read = int(
        _scalar(
            target,
            "SELECT COALESCE(SUM(rows_read), 0) FROM migration_checkpoints "
            "WHERE job = 'resumable' AND chunk >= 0 AND status = 'done'",
        )
    )
    assert 0 < resumed_read < 6_000
    return _job(job, source, target, body % 100_000), resumed_read


def _bad_second_half(url: str) -> None:
    _items(url, 6_000)
    _sql(url, "UPDATE items SET email = 'broken' WHERE id > 3000 AND id % 10 = 0")


def test_resumed_run_reports_the_throughput_of_its_own_rows(
    tmp_path: Path, make_db: Callable[[str], str]
) -> None:
    source, target = make_db("postgresql"), make_db("postgresql")
    _bad_second_half(source)
    job, resumed_read = _stop_after_some_chunks(tmp_path, source, target)

    report = copy_data(load_job(job), spec_path=job)

    items = report.tables[0]
    assert items.chunks_resumed > 0
    c = items.counts
    assert c.read == 6_000
    assert c.read == c.written + c.rejected + c.filtered + c.deduped
    assert items.resumed.read == resumed_read
    # rows/s is what this run moved over this run's seconds, not both runs' rows.
    assert items.rows_per_second * items.seconds == pytest.approx(6_000 - resumed_read)


def test_a_tables_duration_is_wall_clock_within_the_run(
    tmp_path: Path, make_db: Callable[[str], str]
) -> None:
    source, target = make_db("postgresql"), make_db("postgresql")
    _items(source, 60_000)
    job = _job(
        tmp_path / "job.yaml",
        source,
        target,
        "tables:\n  items: {}\nload: {batch_size: 2000, workers: 2}\n",
    )

    report = copy_data(load_job(job), spec_path=job)

    items = report.tables[0]
    assert items.chunks == 30
    assert 0 < items.seconds <= report.seconds, (items.seconds, report.seconds)


# ------------------------------------------------------------------------------ options


@pytest.mark.parametrize("value", ["0", "-1", "abc", "65"])
def test_a_bad_workers_value_gets_one_clear_line(value: str, tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("source: sqlite:///a.db\ntarget: sqlite:///b.db\n", encoding="utf-8")

    done = _ferry("copy", str(job), f"--workers={value}", cwd=tmp_path)

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: --workers"), done.stderr
    assert value in lines[0], lines[0]
    assert "1 to 64" in lines[0], lines[0]
    assert len(lines) <= 2
    assert "Usage:" not in done.stderr
    assert "╭" not in done.stderr
    assert done.stdout == ""


def test_other_usage_errors_are_one_line_too(tmp_path: Path) -> None:
    unknown = _ferry("copy", "job.yaml", "--bogus", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: no such option: --bogus"), unknown.stderr
    assert "ferry copy --help" in unknown.stderr
    assert "╭" not in unknown.stderr
    helped = _ferry("copy", "--help", cwd=tmp_path)
    assert helped.returncode == 0
    assert "--workers" in helped.stdout
    bare = _ferry(cwd=tmp_path)
    assert bare.returncode == 2
    assert "copy" in bare.stdout + bare.stderr


def test_names_with_brackets_are_printed_as_they_are(
    tmp_path: Path, make_db: Callable[[str], str]
) -> None:
    """Rich would read `[a-z]` in a check constraint as a style tag and drop it."""
    source = make_db("postgresql")
    _sql(
        source,
        "CREATE TABLE codes (id INTEGER PRIMARY KEY, "
        "code VARCHAR(10) CONSTRAINT code_lower CHECK (code ~ '^[a-z]+$'))",
        "INSERT INTO codes VALUES (1, 'abc')",
    )
    job = _job(
        tmp_path / "job.yaml", source, f"sqlite:///{tmp_path / 't.db'}", "tables:\n  codes: {}\n"
    )

    done = _ferry("copy", str(job), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "code_lower" in x)
    assert "[a-z]+$" in line, line


# ------------------------------------------------------------------------------ library


def test_the_readmes_library_sample_runs_as_written(
    tmp_path: Path, make_db: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Library", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    source, target = make_db("mysql"), make_db("postgresql")
    _items(source, 1_500, bad_every=100)
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "V1__items.sql").write_text(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, code VARCHAR(5), email VARCHAR(80));\n",
        encoding="utf-8",
    )
    (tmp_path / "ferry.toml").write_text(
        f'[migrations]\nfolders = ["migrations"]\n\n[targets.dev]\nurl = {json.dumps(target)}\n',
        encoding="utf-8",
    )
    _job(tmp_path / "job.yaml", source, "dev", "tables:\n  items:\n    validate: {email: email}\n")
    (tmp_path / "deeper").mkdir()
    monkeypatch.chdir(tmp_path / "deeper")  # load_project() searches upward
    (tmp_path / "deeper" / "job.yaml").write_text(
        (tmp_path / "job.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )

    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)

    assert [r.status for r in scope["report"].results] == ["applied"]
    copied = scope["copied"]
    assert copied.status == "completed"
    assert copied.balanced
    assert (copied.totals.read, copied.totals.written, copied.totals.rejected) == (1_500, 1_485, 15)
    assert _scalar(target, "SELECT COUNT(*) FROM items") == 1_485


# ------------------------------------------------------------------------------ quickstart


def _quickstart(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _ferry("quickstart", *args, cwd=cwd)


def _copy_rows(stdout: str) -> dict[str, list[str]]:
    """The copy report's rows: table -> its cells."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 10 and cells[0] in ("users", "cameras", "analytics"):
            rows[cells[0]] = cells
    return rows


def test_quickstart_from_an_empty_folder_with_spaces_twice(tmp_path: Path) -> None:
    home = tmp_path / "my work dir"
    home.mkdir()

    first = _quickstart(home)
    assert first.returncode == 0, first.stderr
    rows = _copy_rows(first.stdout)
    assert set(rows) == {"users", "cameras", "analytics"}
    assert all(r[-1] == "yes" for r in rows.values()), rows  # balanced
    users = [int(x.replace(",", "")) for x in rows["users"][2:7]]
    assert users[0] == sum(users[1:])
    assert users[2] > 0
    assert users[4] > 0
    assert "validation: passed" in first.stdout
    assert (home / "quickstart-demo" / "new.db").exists()

    # Again in the same folder: it starts over and ends the same.
    second = _quickstart(home)
    assert second.returncode == 0, second.stderr
    assert _copy_rows(second.stdout).keys() == rows.keys()
    assert [r[2:7] for r in _copy_rows(second.stdout).values()] == [r[2:7] for r in rows.values()]
    status = _ferry("-c", "quickstart-demo", "status", "--json", cwd=home)
    assert status.returncode == 0, status.stderr
    assert all(m["state"] == "applied" for m in json.loads(status.stdout)["migrations"])


def test_quickstart_names_a_folder_with_spaces_in_a_command_that_runs(tmp_path: Path) -> None:
    done = _quickstart(tmp_path, "camera demo")
    assert done.returncode == 0, done.stderr
    hint = re.search(r"try `(ferry [^`]+)`", done.stdout)
    assert hint is not None, done.stdout[-500:]
    args = shlex.split(hint.group(1))
    status = _ferry(*args[1:], cwd=tmp_path)
    assert status.returncode == 0, (hint.group(1), status.stderr)


def test_quickstart_leaves_an_existing_project_alone(tmp_path: Path) -> None:
    """`ferry quickstart .` in a real project used to delete its migrations and replace its
    ferry.toml without a word."""
    project = tmp_path / "app"
    (project / "migrations").mkdir(parents=True)
    mine = project / "migrations" / "V1__precious.sql"
    mine.write_text("CREATE TABLE precious (id INTEGER);\n", encoding="utf-8")
    toml = project / "ferry.toml"
    toml.write_text('[targets.dev]\nurl = "sqlite:///app.db"\n', encoding="utf-8")

    done = _quickstart(project, ".")

    assert done.returncode == 2, done.stdout[-500:]
    assert done.stderr.startswith("error: "), done.stderr
    assert "ferry.toml" in done.stderr
    assert "hint:" in done.stderr
    assert mine.read_text(encoding="utf-8") == "CREATE TABLE precious (id INTEGER);\n"
    assert toml.read_text(encoding="utf-8") == '[targets.dev]\nurl = "sqlite:///app.db"\n'
    assert sorted(p.name for p in (project / "migrations").iterdir()) == ["V1__precious.sql"]
