"""Rich tables and JSON for CLI output. No logic beyond presentation."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from ferry.schema.commands import RunReport, StatusReport
from ferry.schema.execute import StepResult
from ferry.schema.history import HistoryRow

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
            out.print(
                f"[dim]{statement.line:>5}[/] {statement.sql};", highlight=False, markup=False
            )


def run_json(report: RunReport) -> dict[str, Any]:
    return {
        "target": report.target,
        "url": report.url,
        "run_id": report.run_id,
        "dry_run": report.dry_run,
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
