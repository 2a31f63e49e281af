"""Delta capture: triggers on the source log every insert, update and delete; `ferry sync`
replays the log in order on the target.

The log keeps only each changed row's key. Replay is state-based: for the keys a batch of log
entries touches, the row as it is now in the source is upserted into the target, or deleted
there if the source no longer has it. Replaying an entry twice is harmless, so the triggers
go in before the full copy starts and a copy that races with writers still ends exact.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
    text,
)

from ferry.config.project import Project
from ferry.data import state
from ferry.data.endpoints import open_endpoint
from ferry.data.extract import read_select
from ferry.data.modes import decode
from ferry.data.spec import JobSpec, Mode
from ferry.data.state import Counts
from ferry.data.tables import TablePlan, plan_tables
from ferry.data.transform import ROW, Transformer
from ferry.db.target import Target
from ferry.errors import ConfigError

LOG_TABLE = "ferry_delta_log"
#: chunk number of the checkpoint row that holds the last replayed log id
DELTA_ROW = -2

_meta = MetaData()
delta_log = Table(
    LOG_TABLE,
    _meta,
    # SQLite numbers rows itself only for an INTEGER PRIMARY KEY.
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("table_name", String(200), nullable=False),
    Column("op", String(1), nullable=False),  # I | U | D
    Column("row_key", Text, nullable=False),  # JSON object: key column -> value
    Column("changed_at", DateTime, server_default=func.current_timestamp()),
)


def install(source: Target, plans: list[TablePlan]) -> list[str]:
    """Create the log table and the capture triggers (idempotent). Returns trigger names."""
    names: list[str] = []
    if not plans:
        return names
    with source.connect() as conn:
        _meta.create_all(conn, checkfirst=True)
        conn.commit()
        for plan in plans:
            names += source.adapter.install_delta_triggers(
                conn, plan.source.name, plan.key, LOG_TABLE
            )
            conn.commit()
    return names


def uninstall(source: Target, tables: list[str]) -> None:
    """Remove the triggers and the log table (`ferry sync --stop`)."""
    with source.connect() as conn:
        for table in tables:
            source.adapter.drop_delta_triggers(conn, table)
            conn.commit()
        source.adapter.drop_delta_support(conn)
        _meta.drop_all(conn, checkfirst=True)
        conn.commit()


@dataclass
class SyncReport:
    job: str
    applied_entries: int = 0
    upserted: int = 0
    deleted: int = 0
    rejected: int = 0
    last_id: int = 0
    rounds: int = 0
    tables: dict[str, Counts] = field(default_factory=dict)


def _last_id(conn: Connection, job: str) -> int:
    row = conn.execute(
        select(state.checkpoints.c.hi).where(
            and_(
                state.checkpoints.c.job == job,
                state.checkpoints.c.table_name == LOG_TABLE,
                state.checkpoints.c.chunk == DELTA_ROW,
            )
        )
    ).first()
    return int(row[0]) if row and row[0] else 0


def _save_last_id(conn: Connection, job: str, last: int, run_id: str) -> None:
    table = state.checkpoints
    where = and_(table.c.job == job, table.c.table_name == LOG_TABLE, table.c.chunk == DELTA_ROW)
    if conn.execute(select(table.c.job).where(where)).first() is None:
        conn.execute(
            table.insert(),
            [state.checkpoint_row(job, LOG_TABLE, DELTA_ROW, None, str(last), "sync", run_id)],
        )
    else:
        conn.execute(
            table.update().where(where).values(hi=str(last), run_id=run_id, updated_at=state.now())
        )


def _key_predicate(table: Table, key: list[str], values: list[dict[str, Any]]) -> Any:
    columns = [table.c[k] for k in key]
    if len(columns) == 1:
        return columns[0].in_([decode_json(columns[0], v[key[0]]) for v in values])
    return or_(
        *[and_(*[c == literal(decode_json(c, v[c.name]), c.type) for c in columns]) for v in values]
    )


def decode_json(column: Column[Any], value: Any) -> Any:
    return decode(column, json.dumps(value)) if value is not None else None


def replay(
    source: Target,
    target: Target,
    plans: list[TablePlan],
    *,
    job: str,
    run_id: str,
    batch: int = 10_000,
    report: SyncReport,
) -> int:
    """Replay one batch of log entries; returns how many entries it applied."""
    by_name = {p.source.name: p for p in plans}
    with target.connect() as tconn:
        state.ensure(tconn)
        tconn.commit()
        last = _last_id(tconn, job)
        tconn.commit()
    with source.connect() as sconn:
        entries = sconn.execute(
            select(delta_log.c.id, delta_log.c.table_name, delta_log.c.op, delta_log.c.row_key)
            .where(delta_log.c.id > last)
            .order_by(delta_log.c.id)
            .limit(batch)
        ).all()
    if not entries:
        report.last_id = max(report.last_id, last)
        return 0
    # The latest entry per key decides; earlier ones are superseded (state-based replay).
    latest: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
    for _, table_name, op, row_key in entries:
        if table_name in by_name:
            latest.setdefault(table_name, {})[row_key] = (op, json.loads(row_key))
    with target.connect() as tconn, tconn.begin():
        for table_name, changes in latest.items():
            plan = by_name[table_name]
            counts = report.tables.setdefault(table_name, Counts())
            keys = [k for _, k in changes.values()]
            rows = source_rows(source, plan, keys)
            present = {json.dumps([r[k] for k in plan.key], default=str) for r in rows.to_pylist()}
            gone = [
                k for k in keys if json.dumps([k[c] for c in plan.key], default=str) not in present
            ]
            if gone:
                deleted = _delete_target(tconn, plan, gone)
                report.deleted += deleted
            if rows.num_rows:
                out = Transformer(plan).apply(rows)
                payload = out.table.drop_columns([ROW])
                conflict = [plan.mapping[k] for k in plan.key]
                written = target.adapter.upsert(tconn, plan.target, payload, conflict, True)
                report.upserted += written
                report.rejected += len(out.rejects)
                state.write_rejects(tconn, job, run_id, out.rejects)
                counts.add(out.counts)
        _save_last_id(tconn, job, int(entries[-1][0]), run_id)
    report.applied_entries += len(entries)
    report.last_id = int(entries[-1][0])
    return len(entries)


def source_rows(source: Target, plan: TablePlan, keys: list[dict[str, Any]]) -> pa.Table:
    table = plan.source
    wanted = list(dict.fromkeys([*plan.mapping, *plan.key]))
    columns = [source.adapter.read_expression(table.c[c]) for c in wanted]
    query = select(*columns).where(_key_predicate(table, plan.key, keys))
    if plan.spec.where:
        # A row that no longer passes the job's filter counts as gone from the target's view.
        query = query.where(text(f"({plan.spec.where})"))
    return read_select(source, query)


def _delete_target(conn: Connection, plan: TablePlan, keys: list[dict[str, Any]]) -> int:
    target_key = {k: plan.mapping[k] for k in plan.key}
    mapped = [{target_key[k]: v for k, v in key.items()} for key in keys]
    predicate = _key_predicate(plan.target, list(target_key.values()), mapped)
    return int(conn.execute(delete(plan.target).where(predicate)).rowcount)


def sync(
    source: Target,
    target: Target,
    plans: list[TablePlan],
    *,
    job: str,
    run_id: str,
    follow: bool = False,
    interval: float = 1.0,
    max_seconds: float | None = None,
    on_round: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Replay the log until it is empty; with `follow`, keep polling every `interval` s."""
    report = SyncReport(job)
    started = time.monotonic()
    while True:
        applied = replay(source, target, plans, job=job, run_id=run_id, report=report)
        report.rounds += 1
        if on_round is not None and applied:
            on_round(report)
        if applied:
            continue
        if not follow:
            return report
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            return report
        time.sleep(interval)


def sync_job(
    spec: JobSpec,
    *,
    spec_path: Path,
    project: Project | None = None,
    follow: bool = False,
    interval: float = 1.0,
    max_seconds: float | None = None,
    stop: bool = False,
    on_round: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Replay captured changes of the job's `mode: delta` tables on the target, or with
    `stop`, remove the capture triggers and the log from the source.

    Raises:
        ConfigError: the job has no `mode: delta` table.
    """
    source = open_endpoint(spec.source, key="source", spec_path=spec_path, project=project)
    target = open_endpoint(spec.target, key="target", spec_path=spec_path, project=project)
    try:
        plans = [
            p
            for p in plan_tables(spec, source.engine, target.engine, file=spec_path)
            if p.spec.mode is Mode.DELTA
        ]
        if not plans:
            raise ConfigError(
                "no table of this job has `mode: delta`",
                file=spec_path,
                key="tables",
                hint="set `mode: delta` on the tables whose changes should follow the copy",
            )
        job = spec.name or spec_path.stem
        if stop:
            uninstall(source, [p.source.name for p in plans])
            return SyncReport(job)
        missing = [p.source.name for p in plans if not p.target_exists]
        if missing:
            raise ConfigError(
                f"the target has no table for {', '.join(missing)}",
                file=spec_path,
                hint="run `ferry copy` first: it installs the capture triggers and copies "
                "the rows that sync then keeps current",
            )
        return sync(
            source,
            target,
            plans,
            job=job,
            run_id=str(uuid.uuid4()),
            follow=follow,
            interval=interval,
            max_seconds=max_seconds,
            on_round=on_round,
        )
    finally:
        source.dispose()
        target.dispose()
