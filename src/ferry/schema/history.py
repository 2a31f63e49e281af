"""The history table in each target, and what it says is applied.

History is append-only: an undo adds an UNDO row rather than deleting the apply row, so the
table tells the whole story. The state of a version is decided by its latest row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    inspect,
    select,
    update,
)

from ferry.schema.version import Version


class RowType(StrEnum):
    SQL = "SQL"
    PYTHON = "PYTHON"
    BASELINE = "BASELINE"
    UNDO_SQL = "UNDO_SQL"
    UNDO_PYTHON = "UNDO_PYTHON"
    DELETE = "DELETE"  # `ferry repair` marked an applied migration whose file is gone

    @property
    def is_undo(self) -> bool:
        return self in (RowType.UNDO_SQL, RowType.UNDO_PYTHON)


def history_table(name: str, metadata: MetaData | None = None) -> Table:
    return Table(
        name,
        metadata or MetaData(),
        Column("installed_rank", Integer, primary_key=True, autoincrement=False),
        Column("version", String(50), index=True),
        Column("description", String(200), nullable=False),
        Column("type", String(20), nullable=False),
        Column("script", String(1000), nullable=False),
        Column("checksum", String(128)),
        Column("checksum_algorithm", String(32)),
        Column("installed_by", String(100), nullable=False),
        Column("applied_at", DateTime, nullable=False),
        Column("execution_ms", Integer, nullable=False),
        Column("success", Boolean, nullable=False),
        Column("branch", String(100)),
        Column("run_id", String(36)),
        # Per-statement progress, for databases whose DDL cannot be rolled back.
        Column("statements_done", Integer, nullable=False, default=0),
        Column("statements_total", Integer, nullable=False, default=0),
        Column("done_checksum", String(64)),
        Column("error", Text),
    )


def branches_table(name: str, metadata: MetaData | None = None) -> Table:
    return Table(
        name,
        metadata or MetaData(),
        Column("branch", String(100), primary_key=True),
        Column("head_version", String(50), nullable=False),
        Column("updated_at", DateTime, nullable=False),
        Column("run_id", String(36)),
    )


@dataclass(frozen=True)
class HistoryRow:
    installed_rank: int
    version: Version | None
    description: str
    type: RowType
    script: str
    checksum: str | None
    checksum_algorithm: str | None
    installed_by: str
    applied_at: datetime
    execution_ms: int
    success: bool
    branch: str | None
    run_id: str | None
    statements_done: int
    statements_total: int
    done_checksum: str | None
    error: str | None

    @classmethod
    def from_mapping(cls, row: Any) -> HistoryRow:
        values = dict(row)
        values["version"] = Version(values["version"]) if values["version"] else None
        values["type"] = RowType(values["type"])
        values["success"] = bool(values["success"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["version"] = str(self.version) if self.version else None
        data["type"] = str(self.type)
        data["applied_at"] = self.applied_at.isoformat(sep=" ", timespec="seconds")
        return data


@dataclass
class AppliedState:
    """What the history of one target says."""

    rows: list[HistoryRow] = field(default_factory=list)
    baseline: Version | None = None
    #: Latest row of each version that is currently applied (successfully).
    applied: dict[Version, HistoryRow] = field(default_factory=dict)
    #: Versions whose latest row is a failure (a half-applied or half-undone migration).
    failed: dict[Version, HistoryRow] = field(default_factory=dict)
    #: Latest successful row of each repeatable, by description.
    repeatable: dict[str, HistoryRow] = field(default_factory=dict)
    repeatable_failed: dict[str, HistoryRow] = field(default_factory=dict)

    @property
    def next_rank(self) -> int:
        return (self.rows[-1].installed_rank + 1) if self.rows else 1

    @property
    def max_applied(self) -> Version | None:
        return max(self.applied, default=None)


def state_from_rows(rows: list[HistoryRow]) -> AppliedState:
    state = AppliedState(rows=rows)
    for row in rows:
        if row.type is RowType.BASELINE:
            state.baseline = row.version
            continue
        if row.version is None:
            if row.success:
                state.repeatable[row.description] = row
                state.repeatable_failed.pop(row.description, None)
            else:
                state.repeatable_failed[row.description] = row
            continue
        version = row.version
        if not row.success:
            state.failed[version] = row
            continue
        state.failed.pop(version, None)
        if row.type.is_undo or row.type is RowType.DELETE:
            state.applied.pop(version, None)
        else:
            state.applied[version] = row
    return state


class History:
    """Reads and writes one target's history table."""

    def __init__(self, table_name: str) -> None:
        self.metadata = MetaData()
        self.table = history_table(table_name, self.metadata)
        self.branches = branches_table("migration_branches", self.metadata)

    def exists(self, conn: Connection) -> bool:
        return inspect(conn).has_table(self.table.name)

    def ensure(self, conn: Connection) -> None:
        """Create the tables on first use (call while holding the migration lock)."""
        self.metadata.create_all(conn, checkfirst=True)

    def read(self, conn: Connection) -> AppliedState:
        if not self.exists(conn):
            return AppliedState()
        result = conn.execute(select(self.table).order_by(self.table.c.installed_rank))
        return state_from_rows([HistoryRow.from_mapping(r) for r in result.mappings()])

    def insert(self, conn: Connection, values: dict[str, Any]) -> None:
        conn.execute(insert(self.table), [values])

    def update(self, conn: Connection, rank: int, values: dict[str, Any]) -> None:
        conn.execute(update(self.table).where(self.table.c.installed_rank == rank).values(values))

    def delete_failed(self, conn: Connection) -> int:
        result = conn.execute(delete(self.table).where(self.table.c.success.is_(False)))
        return result.rowcount

    def write_branches(
        self, conn: Connection, heads: dict[str, str], now: datetime, run_id: str
    ) -> None:
        conn.execute(delete(self.branches))
        if heads:
            conn.execute(
                insert(self.branches),
                [
                    {"branch": b, "head_version": v, "updated_at": now, "run_id": run_id}
                    for b, v in sorted(heads.items())
                ],
            )

    def read_branches(self, conn: Connection) -> dict[str, str]:
        if not inspect(conn).has_table(self.branches.name):
            return {}
        rows = conn.execute(select(self.branches.c.branch, self.branches.c.head_version))
        return {str(branch): str(head) for branch, head in rows}
