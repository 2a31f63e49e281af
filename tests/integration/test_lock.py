"""Two real `ferry apply` processes racing for the migration lock of one target."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.errors import LockTimeout
from ferry.schema import commands
from tests.conftest import ProjectMaker

pytestmark = pytest.mark.integration

#: How long the holder waits at most for the test to release it.
HOLD_SECONDS = 30.0
# Holds only when the test asks it to (through the environment), so an in-process apply
# after the race runs fast; it holds until the test writes the release file, so a slow
# machine cannot let it finish before the other process gives up. IF NOT EXISTS: a killed
# run on MariaDB leaves the table behind.
SLOW = """\
import os
import time
from pathlib import Path


def upgrade(ctx):
    ctx.execute("CREATE TABLE IF NOT EXISTS slow_t (id INTEGER)")
    marker = os.environ.get("FERRY_TEST_MARKER")
    if marker:
        Path(marker).write_text("holding the lock", encoding="utf-8")
        release = Path(marker + ".release")
        deadline = time.monotonic() + float(os.environ["FERRY_TEST_HOLD"])
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
"""


def _project_with_slow_migration(maker: ProjectMaker, lock_timeout: float) -> Path:
    maker.write("V1__slow.py", SLOW)
    text = maker.toml().replace("lock_timeout = 2", f"lock_timeout = {lock_timeout}")
    (maker.root / "ferry.toml").write_text(text, encoding="utf-8")
    return maker.root


def _ferry(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ferry", "-c", str(root), *args]


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)


def _start_holder(
    root: Path, marker: Path, children: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    env = dict(os.environ, FERRY_TEST_MARKER=str(marker), FERRY_TEST_HOLD=str(HOLD_SECONDS))
    holder = subprocess.Popen(
        _ferry(root, "apply"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children.append(holder)
    deadline = time.monotonic() + 20
    while not marker.exists():
        if holder.poll() is not None:
            _, stderr = holder.communicate()
            pytest.fail(f"process A ended before taking the lock: {stderr}")
        if time.monotonic() > deadline:
            pytest.fail("process A never reached its slow migration")
        time.sleep(0.05)
    return holder


def test_second_process_times_out_with_a_clear_message(
    maker: ProjectMaker, dialect: str, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    root = _project_with_slow_migration(maker, lock_timeout=1)
    marker = tmp_path / "a-holds-lock"
    holder = _start_holder(root, marker, children)

    started = time.monotonic()
    second = subprocess.run(_ferry(root, "apply"), capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert holder.poll() is None, "A finished before B gave up; the race proved nothing"
    (tmp_path / "a-holds-lock.release").write_text("go", encoding="utf-8")

    assert second.returncode == 6, second.stderr
    # It waited for its 1 s and gave up while A still held the lock (A holds it for as long
    # as the test wants): the upper bound only rules out a hang, whatever the machine's load.
    assert 1.0 <= elapsed < HOLD_SECONDS
    assert "Traceback" not in second.stderr
    assert second.stdout == ""
    message = " ".join(second.stderr.split())
    assert message.startswith("error: target `t` is being migrated by another process")
    assert "waited 1 s" in message
    if dialect == "postgresql":
        assert "pid" in message  # application_name and server pid of the holder
    elif dialect == "mysql":
        assert "connection" in message  # the holder's connection id

    out, err = holder.communicate(timeout=30)
    assert holder.returncode == 0, err
    assert "1 applied" in out

    again = subprocess.run(_ferry(root, "apply"), capture_output=True, text=True, timeout=30)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
    rows = commands.history(maker.project())
    assert [(str(r.version), r.success) for r in rows] == [("1", True)]

    # One line for the error (then its hint), never wrapped to the width of a terminal.
    lines = second.stderr.strip().splitlines()
    assert "waited 1 s" in lines[0], second.stderr
    assert all(line.startswith("  hint: ") for line in lines[1:]), second.stderr


def test_lock_of_a_killed_process_is_released_at_once(
    maker: ProjectMaker, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    root = _project_with_slow_migration(maker, lock_timeout=2)
    holder = _start_holder(root, tmp_path / "a-holds-lock", children)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)

    project = maker.project()
    started = time.monotonic()
    try:
        report = commands.apply(project)
    except LockTimeout as error:  # pragma: no cover - the failure being tested for
        pytest.fail(f"the killed process's lock was not released: {error}")
    assert time.monotonic() - started < 2
    assert [(str(r.step.script.version), r.status) for r in report.results] == [("1", "applied")]
    assert [line.state for line in commands.status(project).lines] == ["applied"]
    assert commands.validate(project) == []
