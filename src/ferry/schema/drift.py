"""`ferry drift`: the live schema against the schema the applied migrations produce.

The applied migrations (in the order the history says they ran) are replayed into a scratch
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

from sqlalchemy import Engine, inspect

from ferry.config.project import Project
from ferry.db.bookkeeping import FERRY_TABLES
from ferry.db.target import Target, open_url
from ferry.errors import FerryError
from ferry.schema.commands import Session, open_session
from ferry.schema.execute import Executor
from ferry.schema.history import History
from ferry.schema.plan import Action, Step


@dataclass
class DriftReport:
    target: str
    differences: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.differences)


def _shape(engine: Engine, history_table: str, routines: list[str]) -> dict[str, Any]:
    inspector = inspect(engine)
    own = FERRY_TABLES | {history_table}
    tables: dict[str, Any] = {}
    for name in inspector.get_table_names():
        if name in own:
            continue
        tables[name] = {
            "columns": {
                c["name"]: (str(c["type"]).upper().replace(" ", ""), c["nullable"])
                for c in inspector.get_columns(name)
            },
            "primary_key": tuple(
                inspector.get_pk_constraint(name).get("constrained_columns") or ()
            ),
            "indexes": {
                tuple(i["column_names"]): bool(i.get("unique")) for i in inspector.get_indexes(name)
            },
            "foreign_keys": {
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in inspector.get_foreign_keys(name)
            },
            "uniques": {tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)},
        }
    views = {}
    for name in inspector.get_view_names():
        definition = inspector.get_view_definition(name) or ""
        views[name] = " ".join(str(definition).split()).lower()
    return {"tables": tables, "views": views, "routines": set(routines)}


def _compare(expected: dict[str, Any], live: dict[str, Any]) -> list[str]:
    found: list[str] = []
    want, have = expected["tables"], live["tables"]
    for name in sorted(set(have) - set(want)):
        found.append(f"table `{name}` exists but no applied migration creates it")
    for name in sorted(set(want) - set(have)):
        found.append(f"table `{name}` is missing: the applied migrations create it")
    for name in sorted(set(want) & set(have)):
        w, h = want[name], have[name]
        for column in sorted(set(h["columns"]) - set(w["columns"])):
            found.append(f"column `{name}.{column}` was added outside Ferry")
        for column in sorted(set(w["columns"]) - set(h["columns"])):
            found.append(f"column `{name}.{column}` was dropped outside Ferry")
        for column in sorted(set(w["columns"]) & set(h["columns"])):
            (wt, wn), (ht, hn) = w["columns"][column], h["columns"][column]
            if wt != ht:
                found.append(f"column `{name}.{column}` is {ht}; the migrations make it {wt}")
            if wn != hn:
                found.append(
                    f"column `{name}.{column}` is "
                    f"{'NULL' if hn else 'NOT NULL'}; the migrations make it "
                    f"{'NULL' if wn else 'NOT NULL'}"
                )
        if w["primary_key"] != h["primary_key"]:
            found.append(
                f"primary key of `{name}` is {list(h['primary_key'])}; the migrations "
                f"make it {list(w['primary_key'])}"
            )
        for kind, label in (
            ("indexes", "index"),
            ("foreign_keys", "foreign key"),
            ("uniques", "unique constraint"),
        ):
            extra = set(h[kind]) - set(w[kind])
            gone = set(w[kind]) - set(h[kind])
            for item in sorted(map(str, extra)):
                found.append(f"{label} {item} on `{name}` was added outside Ferry")
            for item in sorted(map(str, gone)):
                found.append(f"{label} {item} on `{name}` was dropped outside Ferry")
    for name in sorted(set(live["views"]) - set(expected["views"])):
        found.append(f"view `{name}` exists but no applied migration creates it")
    for name in sorted(set(expected["views"]) - set(live["views"])):
        found.append(f"view `{name}` is missing: the applied migrations create it")
    for name in sorted(set(expected["views"]) & set(live["views"])):
        if expected["views"][name] != live["views"][name]:
            found.append(f"view `{name}` was redefined outside Ferry")
    for item in sorted(live["routines"] - expected["routines"]):
        found.append(f"{item} exists but no applied migration creates it")
    for item in sorted(expected["routines"] - live["routines"]):
        found.append(f"{item} is missing: the applied migrations create it")
    return found


def drift(project: Project, target: str | None = None) -> DriftReport:
    """Compare the live schema of a target with a replay of its applied migrations.

    Raises:
        FerryError: the scratch database cannot be created (with the reason).
    """
    with open_session(project, target) as session:
        report = DriftReport(session.target.name)
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
            history = session.history.table.name
            with scratch.connect() as conn:
                expected_routines = scratch.adapter.list_routines(conn)
            with session.target.connect() as conn:
                live_routines = session.target.adapter.list_routines(conn)
            report.differences = _compare(
                _shape(scratch.engine, history, expected_routines),
                _shape(session.target.engine, history, live_routines),
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
