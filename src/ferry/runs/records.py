"""Run records kept in the database a run changes (`ferry_runs`), so the record lives and
dies with the data it describes: id, type (schema | data | sync), name, status (running,
completed, failed), times, a JSON summary and the error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import mysql

# Microseconds on MySQL too: runs started in the same second must still sort.
_WHEN = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

_meta = MetaData()
runs = Table(
    "ferry_runs",
    _meta,
    Column("run_id", String(36), primary_key=True),
    Column("type", String(20), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", _WHEN, nullable=False),
    Column("finished_at", _WHEN),
    Column("summary", Text),
    Column("error", Text),
)


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    type: str
    name: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    summary: dict[str, Any]
    error: str | None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def start_run(
    conn: Connection, run_id: str, kind: str, name: str, summary: dict[str, Any] | None = None
) -> None:
    """Record a run as running (commits), with what is known at its start (`summary`: what a
    rollback needs even if the run never finishes)."""
    _meta.create_all(conn, checkfirst=True)
    conn.execute(
        runs.insert(),
        [
            {
                "run_id": run_id,
                "type": kind,
                "name": name[:200],
                "status": "running",
                "started_at": _now(),
                "summary": json.dumps(summary, default=str) if summary is not None else None,
            }
        ],
    )
    conn.commit()


def finish_run(
    conn: Connection,
    run_id: str,
    status: str,
    summary: dict[str, Any],
    error: str | None = None,
    *,
    kind: str | None = None,
    name: str | None = None,
) -> None:
    """Close a run's record with its outcome (commits). With `kind` and `name`, a record
    that is gone (a restore replaced the table) is written anew."""
    values = {
        "status": status,
        "finished_at": _now(),
        "summary": json.dumps(summary, default=str),
        "error": error[:4000] if error else None,
    }
    _meta.create_all(conn, checkfirst=True)
    result = conn.execute(update(runs).where(runs.c.run_id == run_id).values(values))
    if result.rowcount == 0 and kind is not None:
        conn.execute(
            runs.insert(),
            [
                {
                    "run_id": run_id,
                    "type": kind,
                    "name": name or kind,
                    "started_at": values["finished_at"],
                    **values,
                }
            ],
        )
    conn.commit()


def close_abandoned(conn: Connection, kind: str, by_run_id: str) -> int:
    """Record as failed the runs of `kind` still `running`: called under the lock that
    keeps two such runs apart, so their processes ended without an outcome (killed, or
    the machine went down). Returns how many (commits)."""
    if not inspect(conn).has_table(runs.name):
        return 0
    result = conn.execute(
        update(runs)
        .where(runs.c.type == kind, runs.c.status == "running", runs.c.run_id != by_run_id)
        .values(
            status="failed",
            finished_at=_now(),
            error=f"interrupted: the process ended before recording an outcome (killed or "
            f"lost); run {by_run_id} found it and resumed from its checkpoints",
        )
    )
    conn.commit()
    return int(result.rowcount)


def mark_run(conn: Connection, run_id: str, status: str) -> None:
    """Change a finished run's status (a rolled-back run becomes `rolled_back`; commits)."""
    if inspect(conn).has_table(runs.name):
        conn.execute(update(runs).where(runs.c.run_id == run_id).values(status=status))
        conn.commit()


def read_runs(conn: Connection, *, limit: int = 50) -> list[RunRecord]:
    """The latest runs, newest first."""
    if not inspect(conn).has_table(runs.name):
        return []
    rows = conn.execute(select(runs).order_by(runs.c.started_at.desc()).limit(limit)).all()
    return [
        RunRecord(
            r.run_id,
            r.type,
            r.name,
            r.status,
            r.started_at,
            r.finished_at,
            json.loads(r.summary) if r.summary else {},
            r.error,
        )
        for r in rows
    ]


def attach_to_run(conn: Connection, run_id: str, key: str, value: Any) -> bool:
    """Add `key` to a recorded run's summary (a validation report, say; commits). False when
    the run has no record."""
    if not inspect(conn).has_table(runs.name):
        return False
    found = conn.execute(select(runs.c.summary).where(runs.c.run_id == run_id)).first()
    if found is None:
        return False
    summary = json.loads(found.summary) if found.summary else {}
    summary[key] = value
    conn.execute(
        update(runs).where(runs.c.run_id == run_id).values(summary=json.dumps(summary, default=str))
    )
    conn.commit()
    return True
