"""Run records: one row per execution of a plan or a job, with its status and summary."""

from ferry.runs.records import (
    RunRecord,
    attach_to_run,
    close_abandoned,
    finish_run,
    mark_run,
    read_runs,
    start_run,
)
from ferry.runs.schema_runs import SchemaRunLog

__all__ = [
    "RunRecord",
    "SchemaRunLog",
    "attach_to_run",
    "close_abandoned",
    "finish_run",
    "mark_run",
    "read_runs",
    "start_run",
]
