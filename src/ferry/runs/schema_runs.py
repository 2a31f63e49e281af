"""The run record of a schema run (`ferry apply`, `ferry undo`): started before its first
migration, closed with what it applied and its validation report, or with its error, and
`rolled_back` when safe mode undid it. Writing the record never hides the run's own error:
a run whose database went away fails with that, not with the record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exc

from ferry.db.target import Target
from ferry.runs.records import finish_run, start_run


@dataclass
class SchemaRunLog:
    target: Target
    run_id: str
    action: str  # apply | undo
    labels: list[str]  # the migrations planned, in order
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        span = self.labels[0] if len(self.labels) == 1 else f"{self.labels[0]} .. {self.labels[-1]}"
        return f"{self.action} {span}"

    def start(self) -> None:
        self.summary = {"action": self.action, "planned": self.labels}
        with self.target.connect() as conn:
            start_run(conn, self.run_id, "schema", self.name, self.summary)

    def finish(self, done: list[str], validation: dict[str, Any] | None) -> None:
        summary = {**self.summary, "done": done, "validation": validation}
        with self.target.connect() as conn:
            finish_run(conn, self.run_id, "completed", summary, kind="schema", name=self.name)

    def fail(
        self,
        done: list[str],
        error: BaseException,
        *,
        rolled_back: bool,
        validation: dict[str, Any] | None = None,
    ) -> None:
        summary = {**self.summary, "done": done, "validation": validation}
        status = "rolled_back" if rolled_back else "failed"
        try:
            with self.target.connect() as conn:
                # (kind and name: a restore may have put back a ferry_runs without this run)
                finish_run(
                    conn, self.run_id, status, summary, str(error), kind="schema", name=self.name
                )
        except exc.SQLAlchemyError:
            pass  # the run's own error says what went wrong; see the module docstring
