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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
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
from ferry.data.endpoints import ensure_reachable, open_endpoint
from ferry.data.extract import read_select
from ferry.data.spec import JobSpec, Mode
from ferry.data.state import Counts
from ferry.data.tables import TablePlan, plan_tables
from ferry.data.transform import ROW, Transformer, python_rows
from ferry.db.lock import held_lock
from ferry.db.target import Target
from ferry.errors import ConfigError, LockTimeout

LOG_TABLE = "ferry_delta_log"
#: chunk number of the checkpoint row that holds the last replayed log id
DELTA_ROW = -2
#: session lock on the source that one sync (or `--stop`) at a time holds
SYNC_LOCK = "ferry_delta_sync"

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
    """Remove the triggers and the log table (`ferry sync --stop`).

    Every capture trigger goes, also those on tables the job no longer marks `mode: delta`:
    one left behind would write into the dropped log and fail every change to its table.
    """
    with source.connect() as conn:
        found = source.adapter.delta_trigger_tables(conn)
        conn.commit()
        for table in dict.fromkeys([*tables, *found]):
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
    """A logged (JSON) or read key value as a bind value for `column`."""
    return _typed(column, value)


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
    """Replay one batch of log entries; returns how many entries it applied.

    Entries are consumed: once the target has committed a batch, its entries are deleted
    from the log by id. A high-water mark would step over an entry whose transaction took
    its id early and committed after a later one had been replayed; an entry that stays
    because a crash came between the target's commit and the delete is replayed again,
    which is harmless. Callers hold the sync lock (`sync_lock`): two consumers at once could
    write an older state over a newer one and both delete the newer one's entry.
    """
    by_name = {p.source.name: p for p in plans}
    with target.connect() as tconn:
        state.ensure(tconn)
        tconn.commit()
        last = _last_id(tconn, job)
        tconn.commit()
    with source.connect() as sconn:
        entries = sconn.execute(
            select(delta_log.c.id, delta_log.c.table_name, delta_log.c.op, delta_log.c.row_key)
            .where(delta_log.c.table_name.in_(list(by_name)))
            .order_by(delta_log.c.id)
            .limit(batch)
        ).all()
    if not entries:
        report.last_id = max(report.last_id, last)
        return 0
    # The latest entry per key decides; earlier ones are superseded (state-based replay).
    # A TRUNCATE (PostgreSQL logs it) empties the target table; keys logged around it
    # then hold whatever rows the source has now.
    latest: dict[str, dict[str, dict[str, Any]]] = {}
    truncated: set[str] = set()
    for _, table_name, op, row_key in entries:
        logged = latest.setdefault(table_name, {})
        if op == "T":
            truncated.add(table_name)
        else:
            logged[row_key] = json.loads(row_key, parse_float=Decimal)
    order = _parents_first([by_name[n] for n in by_name if n in latest])
    newest = max(last, max(int(e[0]) for e in entries))
    with target.connect() as tconn, tconn.begin():
        # Deletes first (children before parents), then upserts (parents before children):
        # the target's foreign keys hold within the batch, and a row that takes over a
        # unique value (or, on a target comparing text without case, the key) of a deleted
        # one finds it gone.
        pending: list[tuple[TablePlan, list[dict[str, Any]], pa.Table | None]] = []
        for plan in order:
            keys = list(latest[plan.source.name].values())
            rows = source_rows(source, plan, keys) if keys else pa.table({})
            present = {_typed_key(plan, r) for r in rows.to_pylist()}
            gone = [k for k in keys if _typed_key(plan, k) not in present]
            payload, dropped = _apply_rules(
                tconn, plan, rows, job=job, run_id=run_id, report=report
            )
            pending.append((plan, gone + dropped, payload))
        for plan, doomed, _ in reversed(pending):
            if plan.source.name in truncated:
                report.deleted += int(tconn.execute(delete(plan.target)).rowcount)
            elif doomed:
                report.deleted += _delete_target(tconn, plan, doomed)
        for plan, _, payload in pending:
            if payload is not None:
                report.upserted += _upsert(tconn, target, plan, payload)
        _save_last_id(tconn, job, newest, run_id)
    _consume(source, [int(e[0]) for e in entries])
    report.applied_entries += len(entries)
    report.last_id = max(report.last_id, newest)
    return len(entries)


def _apply_rules(
    conn: Connection,
    plan: TablePlan,
    rows: pa.Table,
    *,
    job: str,
    run_id: str,
    report: SyncReport,
) -> tuple[pa.Table | None, list[dict[str, Any]]]:
    """The job's rules on the source rows: the rows to upsert, and the keys of rows a rule
    rejected or removed, which a full copy would not hold either."""
    if not rows.num_rows:
        return None, []
    out = Transformer(plan).apply(rows)
    counts = report.tables.setdefault(plan.source.name, Counts())
    counts.add(out.counts)
    report.rejected += len(out.rejects)
    originals = python_rows(rows.select(plan.key))
    # A row replayed again (after a crash before the log was consumed, or a later change)
    # keeps its latest verdict only, not one reject per replay.
    judged = [state.source_key_text([r[k] for k in plan.key]) for r in originals]
    state.forget_rejects(conn, job, plan.name, judged)
    state.write_rejects(conn, job, run_id, out.rejects)
    if plan.spec.dedupe is None:
        kept = set(out.table[ROW].to_pylist())
        dropped = [k for i, k in enumerate(originals) if i not in kept]
    else:  # a row dropped as a duplicate of another in the batch is not gone
        dropped = [dict(zip(plan.key, r.source_key or [], strict=True)) for r in out.rejects]
    payload = out.table.drop_columns([ROW])
    return (payload if payload.num_rows else None), dropped


def _upsert(conn: Connection, target: Target, plan: TablePlan, payload: pa.Table) -> int:
    conflict = [plan.mapping[k] for k in plan.key]
    return int(target.adapter.upsert(conn, plan.target, payload, conflict, True))


def _consume(source: Target, ids: list[int]) -> None:
    """Delete replayed entries from the log, by id: an entry committed since the read, even
    one with a smaller id, stays for the next round."""
    with source.connect() as sconn:
        for start in range(0, len(ids), 1000):
            sconn.execute(delete(delta_log).where(delta_log.c.id.in_(ids[start : start + 1000])))
        sconn.commit()


def _parents_first(plans: list[TablePlan]) -> list[TablePlan]:
    """The plans ordered so a table comes after the tables its target's foreign keys point
    to (a cycle keeps the given order for the rest)."""
    by_target = {p.target.name: p for p in plans}
    done: list[TablePlan] = []
    seen: set[str] = set()

    def visit(plan: TablePlan, path: set[str]) -> None:
        name = plan.target.name
        if name in seen or name in path:
            return
        for fk in plan.target.foreign_keys:
            parent = by_target.get(fk.column.table.name)
            if parent is not None and parent is not plan:
                visit(parent, path | {name})
        seen.add(name)
        done.append(plan)

    for plan in plans:
        visit(plan, set())
    return done


def _typed(column: Column[Any], value: Any) -> Any:
    """A key value as Python compares it, however it came: JSON from the log (text for
    dates and times, a number for decimals) or a value read from the source."""
    if value is None:
        return None
    kind = column.type
    try:
        if isinstance(kind, DateTime) and isinstance(value, str):
            return datetime.fromisoformat(value)
        if isinstance(kind, Date) and isinstance(value, str):
            return date.fromisoformat(value)
        if isinstance(kind, Float) and isinstance(value, Decimal):
            return float(value)
        numeric = isinstance(kind, Numeric) and not isinstance(kind, Float)
        if numeric and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return Decimal(str(value))
    except (ValueError, ArithmeticError):  # not the column's type: compared as it came
        return value
    return value


def _typed_key(plan: TablePlan, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(_typed(plan.source.c[k], row[k]) for k in plan.key)


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
        # A source that never stops changing must not keep `--max-seconds` from ending it.
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            return report
        if applied:
            continue
        if not follow:
            return report
        time.sleep(interval)


@contextmanager
def sync_lock(source: Target, *, job: str, wait: float, spec_path: Path) -> Iterator[None]:
    """Hold the source's sync lock: one consumer of the log at a time.

    Raises:
        LockTimeout: another `ferry sync` of this source held it for `wait` seconds.
    """

    def busy(holder: str | None) -> LockTimeout:
        by = f" (held by {holder})" if holder else ""
        return LockTimeout(
            f"{spec_path}: job {job}: another `ferry sync` is replaying the change log "
            f"of source `{source.name}`{by}; waited {wait:g} s",
            hint="let it finish, or stop the `ferry sync --follow` that runs on this "
            "source before running sync or `--stop` again",
        )

    with held_lock(
        source.adapter, source.engine, SYNC_LOCK, timeout=wait, target=source.name, busy=busy
    ):
        yield


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
    lock_wait: float = 10.0,
) -> SyncReport:
    """Replay captured changes of the job's `mode: delta` tables on the target, or with
    `stop`, remove the capture triggers and the log from the source.

    Raises:
        ConfigError: the job has no `mode: delta` table.
        LockTimeout: another sync of the same source ran for longer than `lock_wait` s.
    """
    source = open_endpoint(spec.source, key="source", spec_path=spec_path, project=project)
    target = open_endpoint(spec.target, key="target", spec_path=spec_path, project=project)
    try:
        ensure_reachable(source, target)
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
            with sync_lock(source, job=job, wait=lock_wait, spec_path=spec_path):
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
        with sync_lock(source, job=job, wait=lock_wait, spec_path=spec_path):
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
