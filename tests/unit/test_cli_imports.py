"""The CLI starts without the heavy modules: each command imports what it runs; a copy
loads sqlglot and phonenumbers only when its job needs them."""

from __future__ import annotations

import json
import subprocess
import sys

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
