"""Rich tables and JSON for CLI output. No logic beyond presentation."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ferry.errors import mask_secrets

if TYPE_CHECKING:
    from ferry.data.copy_report import CopyReport
    from ferry.data.copy_report import Progress as CopyEvent
    from ferry.schema.commands import RunReport, StatusReport
    from ferry.schema.execute import StepResult
    from ferry.schema.history import HistoryRow
    from ferry.schema.lint import LintReport
    from ferry.validate.report import ValidationReport

# Off a terminal (pipes, CI logs) rich would wrap tables at 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

_STATE_STYLE = {
    "applied": "green",
    "pending": "yellow",
    "failed": "red",
    "partial": "red bold",
    "changed": "magenta",
    "missing": "red",
    "outdated": "yellow",
    "baseline": "cyan",
    "below baseline": "dim",
}


def emit_json(data: Any) -> None:
    def default(value: Any) -> Any:
        if is_dataclass(value) and not isinstance(value, type):
            return asdict(value)
        return str(value)

    sys.stdout.write(json.dumps(data, indent=2, default=default) + "\n")


def status_table(report: StatusReport) -> Table:
    table = Table(title=f"{report.target}  {report.url}", title_justify="left")
    for column in ("version", "description", "type", "state", "applied at", "branch", "detail"):
        table.add_column(column, overflow="fold")
    for line in report.lines:
        style = _STATE_STYLE.get(line.state, "")
        table.add_row(
            line.version,
            line.description,
            line.type,
            f"[{style}]{line.state}[/]" if style else line.state,
            line.applied_at,
            line.branch,
            line.detail,
        )
    return table


def history_table(target: str, rows: list[HistoryRow]) -> Table:
    table = Table(title=f"history of {target}", title_justify="left")
    for column in (
        "rank",
        "version",
        "description",
        "type",
        "script",
        "installed by",
        "applied at",
        "ms",
        "success",
        "statements",
    ):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.installed_rank),
            str(row.version or ""),
            row.description,
            str(row.type),
            row.script,
            row.installed_by,
            row.applied_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(row.execution_ms),
            "[green]yes[/]" if row.success else "[red]no[/]",
            f"{row.statements_done}/{row.statements_total}",
        )
    return table


def step_line(result: StepResult) -> str:
    step = result.step
    verb = {"applied": "[green]applied[/]", "undone": "[cyan]undone[/]"}.get(
        result.status, result.status
    )
    extra = ""
    if step.resume_from:
        extra = f" (resumed at statement {step.resume_from + 1})"
    if result.skipped_lines:
        extra += f" (skipped {len(result.skipped_lines)} statements whose objects never existed)"
    return f"  {verb} {step.label} [dim]{step.script.name}, {result.execution_ms} ms[/]{extra}"


def plan_text(report: RunReport) -> None:
    if report.risk is not None and report.risk.findings:
        out.print(lint_table(report.risk))
    if report.preconditions is not None:
        for error in report.preconditions.errors:
            out.print(f"[red]precondition:[/] {error}", highlight=False)
        for warning in report.preconditions.warnings:
            out.print(f"[yellow]precondition:[/] {warning}", highlight=False)
    if not report.planned:
        out.print(f"[green]{report.target}: nothing to do[/] ({report.url})")
        return
    out.print(f"[bold]{report.target}[/] ({report.url}): {len(report.planned)} to run")
    for item in report.planned:
        out.print(
            f"\n[bold]{item.step.action} {item.step.label}[/] "
            f"[dim]{item.step.script.name} — {item.step.reason}[/]"
        )
        for index, statement in enumerate(item.statements):
            if index < item.step.resume_from:
                continue
            out.print(f"{statement.line:>5} {statement.sql};", highlight=False, markup=False)


def run_warnings(report: RunReport) -> None:
    """Precondition warnings and the checks after a run (drift), as warning lines."""
    lines = list(report.preconditions.warnings) if report.preconditions is not None else []
    if report.validation is not None:
        for name, category in report.validation.categories.items():
            lines += [f"{name}: {w}" for w in category.warnings]
    for line in lines:
        out.print(f"[yellow]warning:[/] {line}", highlight=False)


def run_json(report: RunReport) -> dict[str, Any]:
    return {
        "target": report.target,
        "url": report.url,
        "run_id": report.run_id,
        "dry_run": report.dry_run,
        "risk": lint_json(report.risk) if report.risk is not None else None,
        "preconditions": (
            {"errors": report.preconditions.errors, "warnings": report.preconditions.warnings}
            if report.preconditions is not None
            else None
        ),
        "validation": report.validation.as_dict() if report.validation is not None else None,
        "planned": [
            {
                "action": str(p.step.action),
                "version": str(p.step.script.version or ""),
                "description": p.step.script.description,
                "script": p.step.script.name,
                "reason": p.step.reason,
                "resume_from": p.step.resume_from,
                "statements": [{"line": s.line, "sql": s.sql} for s in p.statements],
            }
            for p in report.planned
        ],
        "results": [
            {
                "action": str(r.step.action),
                "version": str(r.step.script.version or ""),
                "description": r.step.script.description,
                "script": r.step.script.name,
                "status": r.status,
                "execution_ms": r.execution_ms,
                "statements_run": r.statements_run,
                "statements_total": r.statements_total,
            }
            for r in report.results
        ],
    }


def copy_table(report: CopyReport) -> Table:
    # Names, like every other text that comes from a database or a spec, are escaped: rich
    # would read `[a-z]` as a style tag and drop it.
    status = "[green]completed[/]" if report.status == "completed" else f"[red]{report.status}[/]"
    resumed = [t for t in report.tables if t.chunks_resumed]
    table = Table(
        title=f"copy {escape(report.job)}: {status} in {report.seconds:.2f} s "
        f"[dim](run {report.run_id})[/]",
        title_justify="left",
        caption=(
            "resumed: read, written, ... count every run's rows; seconds and rows/s this "
            "run's ("
            + ", ".join(
                f"{escape(t.source)}: {t.chunks_resumed} of {t.chunks} chunks done before"
                for t in resumed
            )
            + ")"
            if resumed
            else None
        ),
        caption_justify="left",
    )
    for column in (
        "table",
        "target",
        "read",
        "written",
        "rejected",
        "filtered",
        "deduped",
        "seconds",
        "rows/s",
        "balanced",
    ):
        table.add_column(column, justify="right" if column not in ("table", "target") else "left")
    for t in report.tables:
        c = t.counts
        table.add_row(
            escape(t.source),
            escape(t.target),
            f"{c.read:,}",
            f"{c.written:,}",
            f"{c.rejected:,}",
            f"{c.filtered:,}",
            f"{c.deduped:,}",
            f"{t.seconds:.2f}",
            f"{t.rows_per_second:,.0f}",
            "[green]yes[/]" if c.balanced else "[red]NO[/]",
        )
    return table


def copy_json(report: CopyReport, proof: ValidationReport | None = None) -> dict[str, Any]:
    return {
        "job": report.job,
        "run_id": report.run_id,
        "status": report.status,
        "source": report.source,
        "target": report.target,
        "seconds": report.seconds,
        "balanced": report.balanced,
        "warnings": report.warnings,
        "needs_translation": report.needs_translation,
        "views_created": report.views_created,
        "deferred": [asdict(d) for d in report.deferred],
        "aggregates": [asdict(a) for a in report.aggregates],
        "tables": [
            {
                "table": t.source,
                "target": t.target,
                **asdict(t.counts),
                "seconds": t.seconds,
                # this run's rows over this run's seconds; `resumed` holds the earlier runs'
                "rows_per_second": t.rows_per_second,
                "chunks": t.chunks,
                "chunks_resumed": t.chunks_resumed,
                "resumed": asdict(t.resumed),
                "balanced": t.counts.balanced,
            }
            for t in report.tables
        ],
        # `--mode safe`'s verification of the copy (None in other modes)
        "proof": proof.as_dict() if proof is not None else None,
    }


class CopyProgress:
    """Rich progress bars per table on a terminal; JSON progress events on stderr otherwise,
    one object per line: `progress` per chunk (rows, rows/s, ETA) and a last `finished`."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}
        self._done: dict[str, int] = {}
        self._started = time.perf_counter()
        self._lock = threading.Lock()  # events come from the copy's worker threads
        self._finished = False

    def __enter__(self) -> CopyProgress:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rows]} rows"),
                TextColumn("{task.fields[rate]} rows/s"),
                TimeRemainingColumn(),
                console=err,
            )
            self._bars.start()
        self._started = time.perf_counter()
        return self

    def _elapsed(self) -> float:
        return max(time.perf_counter() - self._started, 1e-9)

    def update(self, event: CopyEvent) -> None:
        if not self.enabled:
            return
        with self._lock:
            # Workers report after their chunk commits, not in order: a late event must not
            # take a table's progress back.
            done = self._done[event.table] = max(self._done.get(event.table, 0), event.chunks_done)
            elapsed = self._elapsed()
            # Rates and ETAs from this run's work only: a resumed table's earlier chunks took
            # none of this run's time.
            rate = (event.counts.read - event.resumed.read) / elapsed
            done_now = done - event.chunks_resumed
            remaining = max(event.chunks_total - done, 0)
            eta = (
                0.0 if remaining == 0 else elapsed / done_now * remaining if done_now > 0 else None
            )
            if self._bars is not None:
                task = self._tasks.get(event.table)
                if task is None:
                    task = self._bars.add_task(
                        escape(event.table),
                        total=event.chunks_total,
                        completed=event.chunks_resumed,
                        rows="0",
                        rate="0",
                    )
                    self._tasks[event.table] = task
                self._bars.update(
                    task,
                    completed=done,
                    rows=f"{event.counts.read:,}",
                    rate=f"{rate:,.0f}",
                )
                return
            self._write(
                {
                    "event": "progress",
                    "table": event.table,
                    "chunks_done": done,
                    "chunks_total": event.chunks_total,
                    "chunks_resumed": event.chunks_resumed,
                    **asdict(event.counts),
                    "elapsed_s": round(elapsed, 3),
                    "rows_per_second": round(rate, 1),
                    "eta_s": None if eta is None else round(eta, 1),
                }
            )

    def finish(self, report: CopyReport) -> None:
        """The last event off a terminal: the run's outcome and totals."""
        if not self.enabled or self._bars is not None:
            return
        totals = report.totals
        with self._lock:
            self._finished = True
            self._write(
                {
                    "event": "finished",
                    "run_id": report.run_id,
                    "status": report.status,
                    **asdict(totals),
                    "balanced": report.balanced,
                    "elapsed_s": round(self._elapsed(), 3),
                    "rows_per_second": round(
                        sum(t.read_this_run for t in report.tables) / self._elapsed(), 1
                    ),
                }
            )

    def _write(self, event: dict[str, Any]) -> None:
        sys.stderr.write(json.dumps(event, default=str) + "\n")
        sys.stderr.flush()

    def __exit__(self, kind: type[BaseException] | None, error: object, *_: object) -> None:
        if self._bars is not None:
            self._bars.stop()
        elif self.enabled and kind is not None and not self._finished:
            # A failed run has no report: its last event says so (the error line follows).
            with self._lock:
                self._finished = True
                self._write(
                    {
                        "event": "finished",
                        "status": "failed",
                        "error": mask_secrets(str(error)).splitlines()[0] if str(error) else "",
                        "elapsed_s": round(self._elapsed(), 3),
                    }
                )


_SEVERITY_STYLE = {"high": "red bold", "medium": "yellow", "low": "cyan", "none": "green"}


def lint_table(report: LintReport) -> Table:
    style = _SEVERITY_STYLE[report.overall]
    table = Table(
        title=f"risk: [{style}]{report.overall}[/] ({len(report.findings)} findings)",
        title_justify="left",
    )
    for column in ("severity", "rule", "where", "what", "safer"):
        table.add_column(column, overflow="fold")
    for f in report.findings:
        where = f"{f.file.name}:{f.line}"
        what = f.message + (f" ({f.estimate})" if f.estimate else "")
        table.add_row(
            f"[{_SEVERITY_STYLE[f.severity]}]{f.severity}[/]", f.rule, where, what, f.suggestion
        )
    return table


def lint_json(report: LintReport) -> dict[str, Any]:
    return {
        "overall": report.overall,
        "findings": [{**asdict(f), "file": str(f.file)} for f in report.findings],
    }


def print_validation(report: ValidationReport) -> None:
    mark = "[green]passed[/]" if report.status == "passed" else "[red]FAILED[/]"
    out.print(f"validation: {mark}")
    for name, category in report.categories.items():
        status = "[green]passed[/]" if category.status == "passed" else "[red]failed[/]"
        out.print(f"  {name}: {status}")
        if name == "data" and category.details:
            table = Table(
                "table",
                "method",
                "expected",
                "in target",
                "compared",
                "rows read",
                "missing",
                "extra",
                "different",
            )
            for source, d in category.details.items():
                table.add_row(
                    f"{source} -> {d['target']}",
                    d["method"],
                    f"{d['expected_rows']:,}",
                    f"{d['target_rows']:,}",
                    f"{d['compared']:,}",
                    f"{d['rows_read']:,}",
                    str(d["missing"]),
                    str(d["extra"]),
                    str(d["different"]),
                )
            out.print(table)
        for error in category.errors:
            out.print(f"    [red]x[/] {error}", highlight=False)
        for warning in category.warnings:
            out.print(f"    [yellow]![/] {warning}", highlight=False)
