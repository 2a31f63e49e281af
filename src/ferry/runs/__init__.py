"""Run records: one row per execution of a plan or a job, with its status and summary."""

from ferry.runs.records import RunRecord, finish_run, mark_run, read_runs, start_run

__all__ = ["RunRecord", "finish_run", "mark_run", "read_runs", "start_run"]
