"""The CLI starts without the heavy modules: each command imports what it runs; a copy
loads sqlglot and phonenumbers only when its job needs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("sqlglot", "pyarrow", "ferry.data.copy")


def test_cli_startup_loads_no_heavy_module() -> None:
    # A fresh interpreter: this test session has long imported everything.
    # Building the click command resolves every command's signature, as `ferry --help` does.
    script = (
        "import json, sys, typer.main, ferry.cli.app as a; typer.main.get_command(a.app); "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []


def test_a_plain_copy_loads_neither_sqlglot_nor_phonenumbers() -> None:
    # Only jobs with derived columns, aggregates or views need sqlglot; only phone rules
    # need phonenumbers.
    script = (
        "import json, sys, ferry.data.copy; "
        "print(json.dumps([m for m in ('sqlglot', 'phonenumbers') if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []


def test_ferry_copy_runs_without_the_safe_mode_modules(tmp_path: Path) -> None:
    # `ferry copy` in its normal mode needs neither backups nor proofs (ferry.rollback.safe_copy
    # and, through it, the schema engine and sqlglot: 0.15 s of a copy's start).
    import sqlite3

    with sqlite3.connect(tmp_path / "legacy.db") as db:
        db.execute("CREATE TABLE cameras (camera_id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO cameras VALUES (?, ?)", [(1, "north"), (2, "south")])
    job = tmp_path / "job.yaml"
    job.write_text(
        f"source: sqlite:///{tmp_path / 'legacy.db'}\ntarget: sqlite:///{tmp_path / 'new.db'}\n",
        encoding="utf-8",
    )
    script = (
        "import json, sys, typer.main, ferry.cli.app as a\n"
        f"a.app(['copy', {str(job)!r}, '--json'], standalone_mode=False)\n"
        "loaded = [m for m in ('ferry.rollback.safe_copy', 'sqlglot') if m in sys.modules]\n"
        "print('@@' + json.dumps(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    report, _, loaded = done.stdout.rpartition("@@")
    assert json.loads(report)["tables"][0]["written"] == 2
    assert json.loads(loaded) == []
