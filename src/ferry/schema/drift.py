"""`ferry drift`: the live schema against the schema the applied migrations produce.

By default the expected schema is the snapshot `ferry apply` records after every run
(`ferry.schema.snapshot`). With `--replay`, or for a database no apply has snapshotted yet,
the applied migrations (in the order the history says they ran) are replayed into a scratch
database on the same server (a temporary file for SQLite), both schemas are reflected, and
every table, column, index, foreign key, unique constraint, view and trigger that differs is
reported: changed outside Ferry.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry.config.project import Project
from ferry.db.target import Target, open_url
from ferry.errors import FerryError
from ferry.schema.commands import Session, open_session
from ferry.schema.execute import Executor
from ferry.schema.history import History
from ferry.schema.plan import Action, Step
from ferry.schema.snapshot import compare, live_shape, read_snapshot


@dataclass
class DriftReport:
    target: str
    differences: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: what the live schema was compared with: the last apply's snapshot, or a replay
    method: str = ""

    @property
    def drifted(self) -> bool:
        return bool(self.differences)


def drift(project: Project, target: str | None = None, *, replay: bool = False) -> DriftReport:
    """Compare the live schema of a target with the schema its applied migrations produce:
    the snapshot the last `ferry apply` recorded, or (with `replay`, or when there is no
    snapshot) a replay of the applied migrations into a scratch database.

    Raises:
        FerryError: the scratch database cannot be created (with the reason).
    """
    with open_session(project, target) as session:
        report = DriftReport(session.target.name)
        history = session.history.table.name
        found = None if replay else read_snapshot(session.target, history)
        if found is not None:
            report.method = f"snapshot of run {found.run_id} ({found.taken_at:%Y-%m-%d %H:%M:%S})"
            report.differences = compare(found.shape, live_shape(session.target, history))
            return report
        report.method = "replay"
        state = session.read_state()
        if state.baseline is not None:
            report.warnings.append(
                f"baselined at {state.baseline}: what existed before the baseline cannot be "
                "replayed, so only changes to objects created after it are meaningful"
            )
        scratch, cleanup = _scratch(session.target)
        try:
            steps = []
            for row in state.rows:
                if row.version is None or state.applied.get(row.version) is not row:
                    continue  # repeatables, undone and failed versions are not replayed
                migration = session.migrations.get(row.version)
                if migration is None:
                    report.warnings.append(
                        f"version {row.version} is applied but its file is gone: not replayed"
                    )
                    continue
                steps.append(Step(Action.APPLY, migration.script, migration, "replay"))
            for script in session.migrations.repeatable:
                if script.description in state.repeatable:
                    steps.append(Step(Action.APPLY, script, None, "replay"))
            _replay(session, scratch, steps)
            report.differences = compare(
                live_shape(scratch, history), live_shape(session.target, history)
            )
        finally:
            cleanup()
        return report


def _replay(session: Session, scratch: Target, steps: list[Step]) -> None:
    history = History(session.history.table.name)
    with scratch.connect() as conn, conn.begin():
        history.ensure(conn)
    Executor(
        scratch,
        history,
        next_rank=1,
        placeholders=session.placeholders(),
        run_id=str(uuid.uuid4()),
        branch_of=session.branch_of(),
    ).run(steps)


def _scratch(target: Target) -> tuple[Target, Any]:
    name = f"ferry_drift_{uuid.uuid4().hex[:10]}"
    if target.adapter.name == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="ferry-drift-"))
        scratch = open_url("scratch", f"sqlite:///{folder / 'scratch.db'}")

        def cleanup_file() -> None:
            scratch.dispose()
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()

        return scratch, cleanup_file
    try:
        with target.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            target.adapter.create_database(conn, name)
    except Exception as error:
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        raise FerryError(
            f"cannot create a scratch database to replay migrations: {reason}",
            hint="drift needs the right to CREATE DATABASE on the target's server",
        ) from error
    url = target.url.set(database=name).render_as_string(hide_password=False)
    scratch = open_url("scratch", url)

    def cleanup_database() -> None:
        scratch.dispose()
        with target.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            target.adapter.drop_database(conn, name)

    return scratch, cleanup_database
