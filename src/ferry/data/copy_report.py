"""What a copy reports: per table and per run, and the progress events it emits."""

from __future__ import annotations

from dataclasses import dataclass, field

from ferry.data.aggregate import AggregateReport
from ferry.data.deferral import Restored
from ferry.data.state import Counts
from ferry.errors import FerryError


class SourceReadError(FerryError):
    """Reading the source failed (it went away, or a query broke) mid-run."""

    exit_code = 3


@dataclass
class TableReport:
    source: str
    target: str
    counts: Counts
    seconds: float = 0.0
    chunks: int = 0
    chunks_resumed: int = 0
    created: bool = False
    #: What the `chunks_resumed` chunks, checkpointed by earlier runs, had counted: `counts`
    #: includes them (the table's balance is over every run), this run's rate does not.
    resumed: Counts = field(default_factory=Counts)

    @property
    def read_this_run(self) -> int:
        return self.counts.read - self.resumed.read

    @property
    def rows_per_second(self) -> float:
        """Rows this run read per second of this run (a resumed run's earlier rows excluded)."""
        return self.read_this_run / self.seconds if self.seconds > 0 else 0.0


@dataclass
class CopyReport:
    job: str
    run_id: str
    source: str
    target: str
    tables: list[TableReport] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "running"  # completed | failed
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    needs_translation: list[str] = field(default_factory=list)
    views_created: list[str] = field(default_factory=list)
    aggregates: list[AggregateReport] = field(default_factory=list)
    #: Capture triggers installed on the source for `mode: delta` tables.
    delta_triggers: list[str] = field(default_factory=list)
    #: Indexes, foreign keys and triggers set aside during the load, and how each came back.
    deferred: list[Restored] = field(default_factory=list)
    #: Each target table before the run: absent | empty | rows (what a rollback may undo).
    before: dict[str, str] = field(default_factory=dict)
    restart: bool = False

    @property
    def totals(self) -> Counts:
        total = Counts()
        for table in self.tables:
            total.add(table.counts)
        return total

    @property
    def balanced(self) -> bool:
        return all(t.counts.balanced for t in self.tables)


@dataclass(frozen=True)
class Progress:
    """A table's progress after a chunk (or a stream's flush): `chunks_done` and `counts`
    include what earlier runs checkpointed, `chunks_resumed` and `resumed` say how much."""

    table: str
    chunks_done: int
    chunks_total: int
    counts: Counts
    chunks_resumed: int = 0
    resumed: Counts = field(default_factory=Counts)
