"""What a copy leaves in the target: per-chunk checkpoints and rejected rows.

A chunk's rows, its rejects and its checkpoint commit in one transaction, so a copy killed at
any moment resumes without duplicates or gaps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
    insert,
    select,
    update,
)

from ferry.data.chunks import KeyRange
from ferry.data.types import LONG_TEXT

#: chunk number of the row that records table-level facts
TABLE_ROW = -1

metadata = MetaData()
checkpoints = Table(
    "migration_checkpoints",
    metadata,
    Column("job", String(200), primary_key=True),
    Column("table_name", String(200), primary_key=True),
    Column("chunk", Integer, primary_key=True, autoincrement=False),
    Column("lo", Text),
    Column("hi", Text),
    # pending | done; for the table row: created (Ferry made the table) | existing | finalized
    Column("status", String(20), nullable=False),
    Column("rows_read", BigInteger, nullable=False, default=0),
    Column("rows_written", BigInteger, nullable=False, default=0),
    Column("rows_rejected", BigInteger, nullable=False, default=0),
    Column("rows_filtered", BigInteger, nullable=False, default=0),
    Column("rows_deduped", BigInteger, nullable=False, default=0),
    Column("run_id", String(36)),
    Column("updated_at", DateTime, nullable=False),
)
rejects = Table(
    "ferry_rejects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(36), nullable=False),
    Column("job", String(200), nullable=False),
    Column("table_name", String(200), nullable=False),
    Column("source_key", Text),
    Column("rule", String(200), nullable=False),
    Column("error", LONG_TEXT, nullable=False),
    Column("row_data", LONG_TEXT, nullable=False),
    Column("rejected_at", DateTime, nullable=False),
)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Counts:
    read: int = 0
    written: int = 0
    rejected: int = 0
    filtered: int = 0
    deduped: int = 0

    def add(self, other: Counts) -> None:
        self.read += other.read
        self.written += other.written
        self.rejected += other.rejected
        self.filtered += other.filtered
        self.deduped += other.deduped

    @property
    def balanced(self) -> bool:
        return self.read == self.written + self.rejected + self.filtered + self.deduped


@dataclass(frozen=True)
class Reject:
    table: str
    source_key: Any
    rule: str
    error: str
    row: dict[str, Any]


def checkpoint_row(
    job: str,
    table: str,
    chunk: int,
    lo: str | None,
    hi: str | None,
    status: str,
    run_id: str,
    counts: Counts | None = None,
) -> dict[str, Any]:
    """One row of migration_checkpoints, ready to insert."""
    c = counts or Counts()
    return {
        "job": job,
        "table_name": table,
        "chunk": chunk,
        "lo": lo,
        "hi": hi,
        "status": status,
        "rows_read": c.read,
        "rows_written": c.written,
        "rows_rejected": c.rejected,
        "rows_filtered": c.filtered,
        "rows_deduped": c.deduped,
        "run_id": run_id,
        "updated_at": now(),
    }


def ensure(conn: Connection) -> None:
    metadata.create_all(conn, checkfirst=True)


def stored_chunks(
    conn: Connection, job: str, table: str
) -> dict[int, tuple[KeyRange, str, Counts]]:
    rows = conn.execute(
        select(checkpoints).where(and_(checkpoints.c.job == job, checkpoints.c.table_name == table))
    ).mappings()
    found = {}
    for row in rows:
        counts = Counts(
            row["rows_read"],
            row["rows_written"],
            row["rows_rejected"],
            row["rows_filtered"],
            row["rows_deduped"],
        )
        found[row["chunk"]] = (
            KeyRange.from_json(row["chunk"], row["lo"], row["hi"]),
            row["status"],
            counts,
        )
    return found


def save_plan(
    conn: Connection,
    job: str,
    table: str,
    chunks: list[KeyRange],
    table_status: str,
    run_id: str,
    window: tuple[str | None, str | None] = (None, None),
) -> None:
    """Record a table's chunk plan; `window` holds an incremental run's cursor bounds."""
    values = [checkpoint_row(job, table, TABLE_ROW, window[0], window[1], table_status, run_id)]
    values += [checkpoint_row(job, table, c.index, *c.to_json(), "pending", run_id) for c in chunks]
    # A `creating` row may already stand for this table (see mark_creating).
    conn.execute(
        delete(checkpoints).where(
            and_(
                checkpoints.c.job == job,
                checkpoints.c.table_name == table,
                checkpoints.c.chunk == TABLE_ROW,
            )
        )
    )
    conn.execute(insert(checkpoints), values)


def mark_creating(conn: Connection, job: str, table: str, run_id: str) -> None:
    """Say, before a CREATE TABLE that commits at once (MySQL), that Ferry is making the
    table: a run killed right after it still knows the table is Ferry's to finish."""
    save_plan(conn, job, table, [], "creating", run_id)


TableRow = tuple[str, str | None, str | None]


def table_row(conn: Connection, job: str, table: str) -> TableRow | None:
    """Status and incremental window (last, high) of a table, if it was planned."""
    row = conn.execute(
        select(checkpoints.c.status, checkpoints.c.lo, checkpoints.c.hi).where(
            and_(
                checkpoints.c.job == job,
                checkpoints.c.table_name == table,
                checkpoints.c.chunk == TABLE_ROW,
            )
        )
    ).first()
    return (row[0], row[1], row[2]) if row else None


def new_increment(
    conn: Connection,
    job: str,
    table: str,
    chunks: list[KeyRange],
    window: tuple[str | None, str | None],
    run_id: str,
) -> None:
    """Replace a finished increment's chunks with the next one's."""
    conn.execute(
        delete(checkpoints).where(
            and_(
                checkpoints.c.job == job,
                checkpoints.c.table_name == table,
                checkpoints.c.chunk >= 0,
            )
        )
    )
    conn.execute(
        update(checkpoints)
        .where(
            and_(
                checkpoints.c.job == job,
                checkpoints.c.table_name == table,
                checkpoints.c.chunk == TABLE_ROW,
            )
        )
        .values(lo=window[0], hi=window[1], run_id=run_id, updated_at=now())
    )
    if chunks:
        conn.execute(
            insert(checkpoints),
            [checkpoint_row(job, table, c.index, *c.to_json(), "pending", run_id) for c in chunks],
        )


def mark_done(
    conn: Connection, job: str, table: str, chunk: int, counts: Counts, run_id: str
) -> None:
    conn.execute(
        update(checkpoints)
        .where(
            and_(
                checkpoints.c.job == job,
                checkpoints.c.table_name == table,
                checkpoints.c.chunk == chunk,
            )
        )
        .values(
            status="done",
            rows_read=counts.read,
            rows_written=counts.written,
            rows_rejected=counts.rejected,
            rows_filtered=counts.filtered,
            rows_deduped=counts.deduped,
            run_id=run_id,
            updated_at=now(),
        )
    )


def set_table_status(conn: Connection, job: str, table: str, status: str) -> None:
    conn.execute(
        update(checkpoints)
        .where(
            and_(
                checkpoints.c.job == job,
                checkpoints.c.table_name == table,
                checkpoints.c.chunk == TABLE_ROW,
            )
        )
        .values(status=status, updated_at=now())
    )


def forget_job(conn: Connection, job: str) -> None:
    conn.execute(delete(checkpoints).where(checkpoints.c.job == job))
    conn.execute(delete(rejects).where(rejects.c.job == job))


def forget_table(conn: Connection, job: str, table: str) -> None:
    """One table's checkpoints and rejects, as `forget_job` for the whole job."""
    conn.execute(
        delete(checkpoints).where(and_(checkpoints.c.job == job, checkpoints.c.table_name == table))
    )
    conn.execute(delete(rejects).where(and_(rejects.c.job == job, rejects.c.table_name == table)))


def forget_rejects(conn: Connection, job: str, table: str, source_keys: list[str]) -> None:
    """Rejects of these rows (source keys as write_rejects stores them): a row judged again
    keeps only its latest verdict."""
    for start in range(0, len(source_keys), 500):
        conn.execute(
            delete(rejects).where(
                and_(
                    rejects.c.job == job,
                    rejects.c.table_name == table,
                    rejects.c.source_key.in_(source_keys[start : start + 500]),
                )
            )
        )


def source_key_text(key: list[Any] | None) -> str:
    """A reject's source key as ferry_rejects stores it."""
    return json.dumps(key, default=str, ensure_ascii=False)


#: A reject keeps its row whole up to this many bytes of JSON; past it the largest values
#: give way, each to a note with its length and SHA-256. A refused 4 MB blob is some 30 MB
#: as JSON, past MariaDB's max_allowed_packet (16 MB, which the driver's escaping can
#: double this budget towards), which ended the connection and the copy with it. The
#: source still holds the row.
REJECT_ROW_BYTES = 4 * 2**20


def reject_row(row: dict[str, Any]) -> dict[str, Any]:
    """A rejected row as `ferry_rejects.row_data` holds it (JSON values), its largest values
    left out while it passes REJECT_ROW_BYTES."""
    texts = {
        name: json.dumps(value, default=str, ensure_ascii=False) for name, value in row.items()
    }
    sizes = {name: len(text.encode()) for name, text in texts.items()}
    total = sum(sizes.values())
    left_out: set[str] = set()
    for name in sorted(sizes, key=lambda n: sizes[n], reverse=True):
        if total <= REJECT_ROW_BYTES:
            break
        left_out.add(name)
        total -= sizes[name]
    kept: dict[str, Any] = {}
    for name, text in texts.items():
        if name in left_out:
            digest = hashlib.sha256(text.encode()).hexdigest()
            kept[name] = f"<{len(text):,} characters left out; sha256 {digest}>"
        else:
            kept[name] = json.loads(text)
    return kept


def write_rejects(conn: Connection, job: str, run_id: str, found: list[Reject]) -> None:
    if not found:
        return
    stamp = now()
    conn.execute(
        insert(rejects),
        [
            {
                "run_id": run_id,
                "job": job,
                "table_name": r.table,
                "source_key": source_key_text(r.source_key),
                "rule": r.rule[:200],
                "error": r.error,
                "row_data": json.dumps(reject_row(r.row), ensure_ascii=False),
                "rejected_at": stamp,
            }
            for r in found
        ],
    )


def record_flush(
    conn: Connection, job: str, table: str, flush: KeyRange, counts: Counts, run_id: str
) -> None:
    """A stream's flush: a done chunk whose `hi` is the last key it loaded."""
    conn.execute(
        insert(checkpoints),
        [checkpoint_row(job, table, flush.index, *flush.to_json(), "done", run_id, counts)],
    )


def stream_position(conn: Connection, job: str, table: str) -> tuple[list[Any] | None, int]:
    """The last key a stream flushed, and how many flushes it has made (chunk 0 is the
    stream itself; flushes are numbered from 1)."""
    row = conn.execute(
        select(checkpoints.c.chunk, checkpoints.c.hi)
        .where(
            and_(
                checkpoints.c.job == job, checkpoints.c.table_name == table, checkpoints.c.chunk > 0
            )
        )
        .order_by(checkpoints.c.chunk.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, 0
    return (json.loads(row[1]) if row[1] else None), int(row[0])
