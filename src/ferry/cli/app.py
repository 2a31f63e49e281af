"""The `ferry` command: a thin shell over the library; errors become one clear line."""

from __future__ import annotations

import copy as copy_module
import gc
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ferry.cli import render
from ferry.cli.render import err, out
from ferry.errors import FerryError, mask_secrets
from ferry.validate.methods import Method

# Each command imports what it runs: loading every command's modules (sqlglot, pyarrow,
# the copy pipeline) would cost ~1 s before any command, even `ferry --help`.
if TYPE_CHECKING:
    from ferry.config.project import Project
    from ferry.data.copy_report import CopyReport
    from ferry.schema.execute import StepResult

#: what `load.workers` allows in a job spec (ferry.data.spec.LoadSpec)
MAX_WORKERS = 64

app = typer.Typer(
    name="ferry",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Ferry: versioned schema migrations you can prove and undo.",
)


class _State:
    config: Path | None = None
    debug: bool = False


state = _State()

TargetOpt = Annotated[str | None, typer.Option("--target", "-t", help="target in ferry.toml")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="ferry.toml, or its folder (default: search upward)"),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    state.config = config
    state.debug = debug


def _project() -> Project:
    from ferry.config.project import load_project

    return load_project(state.config)


def _progress(result: StepResult) -> None:
    err.print(render.step_line(result))


def _workers(value: str) -> int:
    """`--workers`: a whole number the job spec would accept, or one line saying so."""
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        raise typer.BadParameter(
            f"{value!r} is no number of workers: pass a whole number from 1 to {MAX_WORKERS}, "
            "e.g. --workers 2 (or leave it out: the job's load.workers)"
        )
    return workers


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="project folder")] = Path("."),
    url: Annotated[str, typer.Option(help="URL of the `dev` target")] = "sqlite:///dev.db",
    strategy: Annotated[
        str, typer.Option(help="forward_only | versioned | branching")
    ] = "versioned",
) -> None:
    """Create ferry.toml and a migrations folder."""
    from ferry.config.scaffold import init_project

    for path in init_project(folder, url=url, strategy=strategy):
        out.print(f"created {path}")


@app.command()
def doctor(as_json: JsonOpt = False) -> None:
    """Check the project file, each target's connection and version, and external tools."""
    from ferry.db.doctor import doctor as run_doctor

    checks = run_doctor(_project())
    if as_json:
        render.emit_json([c.__dict__ for c in checks])
    else:
        marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
        for check in checks:
            out.print(f"{marks[check.status]:>18}  {check.name}: {check.detail}", highlight=False)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


@app.command()
def plan(
    target: TargetOpt = None,
    to: Annotated[str | None, typer.Option(help="stop at this version")] = None,
    out_of_order: Annotated[bool, typer.Option("--out-of-order")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Pending migrations, the SQL that would run, and its risk. Changes nothing."""
    from ferry.schema import commands

    report = commands.plan(_project(), target, to=to, out_of_order=out_of_order or None)
    if as_json:
        render.emit_json(render.run_json(report))
    else:
        render.plan_text(report)


@app.command()
def lint(
    target: TargetOpt = None,
    everything: Annotated[
        bool, typer.Option("--all", help="every migration, not only pending")
    ] = False,
    fail_on: Annotated[
        str,
        typer.Option(
            help="exit 8 when the overall risk is at least this: low | medium | high | never"
        ),
    ] = "high",
    as_json: JsonOpt = False,
) -> None:
    """Rate pending migrations' risks and suggest safer rewrites.

    Data-loss, downtime, rollback and performance risks, rated by the target's table sizes.
    Silence a finding with `-- ferry:allow RULE`.
    """
    from ferry.schema import commands

    report = commands.lint(_project(), target, everything=everything)
    if as_json:
        render.emit_json(render.lint_json(report))
    elif not report.findings:
        out.print("[green]no findings[/]")
    else:
        out.print(render.lint_table(report))
    if fail_on != "never" and report.findings and report.at_least(fail_on):
        raise typer.Exit(8)


@app.command()
def apply(
    target: TargetOpt = None,
    to: Annotated[str | None, typer.Option(help="apply up to this version")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the SQL, change nothing")
    ] = False,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="with --dry-run: write the SQL to this file")
    ] = None,
    out_of_order: Annotated[
        bool,
        typer.Option(
            "--out-of-order", help="also run pending versions older than the latest applied"
        ),
    ] = False,
    mode: Annotated[
        str,
        typer.Option(
            help="normal | dry_run (print the SQL) | safe (back up first, restore on failure)"
            " | production (safe, plus lock timeouts with retry)"
        ),
    ] = "normal",
    timeout: Annotated[
        float | None,
        typer.Option(help="safe/production: roll the run back when it takes longer (seconds)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply pending migrations, then changed repeatable ones."""
    from ferry.rollback.safe import safe_apply
    from ferry.schema import commands

    project = _project()
    if mode not in ("normal", "dry_run", "safe", "production"):
        raise typer.BadParameter("use normal, dry_run, safe or production", param_hint="--mode")
    dry_run = dry_run or mode == "dry_run"
    progress = None if as_json else _progress
    if mode in ("safe", "production") and not dry_run:
        report = safe_apply(
            project,
            target,
            backup_root=_backup_root(project),
            to=to,
            out_of_order=out_of_order or None,
            on_result=progress,
            production=mode == "production",
            timeout=timeout,
        )
    else:
        report = commands.apply(
            project,
            target,
            to=to,
            dry_run=dry_run,
            out_of_order=out_of_order or None,
            on_result=progress,
        )
    if as_json:
        render.emit_json(render.run_json(report))
    elif dry_run:
        if out_file is not None:
            out_file.write_text(report.sql_text(), encoding="utf-8")
            out.print(f"wrote the SQL of {len(report.planned)} migrations to {out_file}")
        else:
            render.plan_text(report)
    elif not report.results:
        out.print(f"[green]{report.target} is up to date[/]")
        render.run_warnings(report)
    else:
        out.print(
            f"[green]{report.target}: {len(report.results)} applied[/] "
            f"[dim](run {report.run_id})[/]"
        )
        render.run_warnings(report)


@app.command()
def undo(
    target: TargetOpt = None,
    to: Annotated[
        str | None, typer.Option(help="undo every version above this one (0: all)")
    ] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="how many migrations to undo")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run undo scripts, newest first (one by default)."""
    from ferry.schema import commands

    report = commands.undo(
        _project(),
        target,
        to=to,
        steps=steps,
        dry_run=dry_run,
        on_result=None if as_json else _progress,
    )
    if as_json:
        render.emit_json(render.run_json(report))
    elif dry_run:
        render.plan_text(report)
    elif not report.results:
        out.print(f"{report.target}: nothing to undo")
    else:
        out.print(f"[cyan]{report.target}: {len(report.results)} undone[/]")


@app.command()
def status(target: TargetOpt = None, as_json: JsonOpt = False) -> None:
    """Every migration and its state on a target."""
    from ferry.schema import commands

    report = commands.status(_project(), target)
    if as_json:
        render.emit_json(
            {
                "target": report.target,
                "url": report.url,
                "current": report.current,
                "migrations": [line.as_dict() for line in report.lines],
                "problems": [p.__dict__ for p in report.problems],
            }
        )
        return
    out.print(render.status_table(report))
    for problem in report.problems:
        out.print(f"[yellow]![/] {problem.detail}", highlight=False)


@app.command()
def history(target: TargetOpt = None, as_json: JsonOpt = False) -> None:
    """The history table of a target."""
    from ferry.schema import commands

    project = _project()
    rows = commands.history(project, target)
    if as_json:
        render.emit_json([row.as_dict() for row in rows])
    else:
        out.print(render.history_table(project.target(target)[0], rows))


@app.command()
def validate(target: TargetOpt = None, as_json: JsonOpt = False) -> None:
    """Check that applied migrations match their files. Exit 5 when they do not."""
    from ferry.schema import commands

    problems = commands.validate(_project(), target)
    if as_json:
        render.emit_json([p.__dict__ for p in problems])
    elif not problems:
        out.print("[green]history and files agree[/]")
    else:
        for problem in problems:
            out.print(f"[red]{problem.kind}[/] {problem.detail}", highlight=False)
    if problems:
        raise typer.Exit(5)


@app.command()
def drift(
    target: TargetOpt = None,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay",
            help="replay the applied migrations into a scratch database instead "
            "of comparing with the snapshot the last apply recorded",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Schema changed outside Ferry? Exit 12 when the live schema differs from what the
    applied migrations produce (the last apply's snapshot, or a replay)."""
    from ferry.schema.drift import drift as run_drift

    report = run_drift(_project(), target, replay=replay)
    if as_json:
        render.emit_json(
            {
                "target": report.target,
                "drifted": report.drifted,
                "compared_with": report.method,
                "differences": report.differences,
                "warnings": report.warnings,
            }
        )
    else:
        if report.drifted:
            out.print(f"[red]{report.target}: the schema drifted[/]")
            for line in report.differences:
                out.print(f"  [red]x[/] {line}", highlight=False)
        else:
            out.print(f"[green]{report.target}: the schema matches the applied migrations[/]")
        out.print(f"  [dim]compared with the {report.method}[/]", highlight=False)
        for line in report.warnings:
            out.print(f"  [yellow]![/] {line}", highlight=False)
    if report.drifted:
        raise typer.Exit(12)


@app.command()
def check(target: TargetOpt = None, as_json: JsonOpt = False) -> None:
    """Run the application queries and time the performance queries of ferry.toml."""
    from ferry.db.target import open_target
    from ferry.validate.queries import check_queries

    project = _project()
    opened = open_target(project, target)
    try:
        report = check_queries(opened, project.config.checks)
    finally:
        opened.dispose()
    if as_json:
        render.emit_json(report.as_dict())
    else:
        render.print_validation(report)
        for name, timing in report.category("performance").details.items():
            out.print(f"  {name}: median {timing['median_ms']} ms", highlight=False)
    if report.status != "passed":
        raise typer.Exit(9)


@app.command()
def repair(target: TargetOpt = None) -> None:
    """Realign checksums with the files, remove failed rows, forget vanished files."""
    from ferry.schema import commands

    report = commands.repair(_project(), target)
    out.print(
        f"checksums realigned: {', '.join(report.checksums_realigned) or 'none'}; "
        f"failed rows removed: {report.failed_rows_removed}; "
        f"missing files marked deleted: {', '.join(report.missing_marked_deleted) or 'none'}"
    )


@app.command()
def baseline(
    version: Annotated[str, typer.Option("--version", help="the version the database is at")],
    target: TargetOpt = None,
    description: Annotated[str, typer.Option(help="history description")] = "baseline",
) -> None:
    """Adopt an existing database: versions up to VERSION count as applied."""
    from ferry.schema import commands

    row = commands.baseline(_project(), target, version=version, description=description)
    out.print(f"baselined at version {row.version}")


@app.command()
def branches(as_json: JsonOpt = False) -> None:
    """Branches of the version graph, and the head each target has applied."""
    from ferry.schema import branching

    found = branching.branches(_project())
    if as_json:
        render.emit_json([b.__dict__ for b in found])
        return
    from rich.table import Table

    table = Table("branch", "head", "migrations", "applied on targets")
    for info in found:
        table.add_row(
            info.name,
            info.head,
            ", ".join(info.migrations),
            ", ".join(f"{t}: {v or '-'}" for t, v in info.applied.items()),
        )
    out.print(table)


@app.command()
def merge(description: Annotated[str | None, typer.Option(help="file description")] = None) -> None:
    """Write a merge migration that requires every head."""
    from ferry.schema import branching

    for path in branching.merge(_project(), description=description):
        out.print(f"wrote {path}")


@app.command()
def rebase(
    branch: str, onto: Annotated[str, typer.Option("--onto", help="head version to follow")]
) -> None:
    """Renumber BRANCH's migrations after the head ONTO (refused if any is applied)."""
    from ferry.schema import branching

    changes = branching.rebase(_project(), branch, onto=onto)
    if not changes:
        out.print(f"branch {branch} already follows {onto}")
    for change in changes:
        out.print(f"{change.old} -> {change.new}: {', '.join(change.files)}")


@app.command()
def copy(
    job: Annotated[Path, typer.Argument(help="job spec (YAML)")],
    restart: Annotated[
        bool,
        typer.Option(
            "--restart", help="forget checkpoints and rejects, empty the target tables, copy again"
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            parser=_workers, metavar="N", help=f"parallel chunk workers (1 to {MAX_WORKERS})"
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="normal | dry_run (write the plan, change nothing) | safe (back up the target, "
            "prove the copy, restore on failure)"
        ),
    ] = "normal",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="with --mode dry_run: write the plan to this file")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy data as a job spec says; resumes from checkpoints after a crash."""
    from ferry.data.copy import copy_data
    from ferry.data.spec import load_job

    spec = load_job(job)
    project = _project() if state.config is not None else None
    if mode not in ("normal", "dry_run", "safe"):
        raise typer.BadParameter("use normal, dry_run or safe", param_hint="--mode")
    if mode == "dry_run":
        from ferry.rollback.safe_copy import copy_plan  # backups, proofs: 0.15 s of imports

        planned = copy_plan(spec, spec_path=job, project=project)
        if out_file is not None:
            out_file.write_text(planned, encoding="utf-8")
            out.print(f"wrote the copy plan to {out_file}")
        else:
            out.print(planned, highlight=False, markup=False)
        return
    proof = None
    with render.CopyProgress(enabled=not as_json) as progress:
        if mode == "safe":
            from ferry.rollback.safe_copy import safe_copy

            # A job run outside a project keeps its backups beside the job file.
            root = _backup_root(project) if project is not None else job.parent / "backups"
            report, proof = safe_copy(
                spec,
                spec_path=job,
                project=project,
                backup_root=root,
                restart=restart,
                workers=workers,
                on_progress=progress.update,
            )
        else:
            report = copy_data(
                spec,
                spec_path=job,
                project=project,
                restart=restart,
                workers=workers,
                on_progress=progress.update,
            )
        progress.finish(report)
    if proof is not None and not as_json:
        render.print_validation(proof)
    if as_json:
        render.emit_json(render.copy_json(report, proof))
    else:
        if report.tables and all(t.chunks_resumed == t.chunks for t in report.tables):
            out.print(
                f"job {report.job} was already complete: every chunk is checkpointed "
                "in the target (`--restart` copies again)"
            )
        out.print(render.copy_table(report))
        _copy_footer(report)


def _copy_footer(report: CopyReport) -> None:
    rebuilt = [d for d in report.deferred if d.error is None]
    if rebuilt:
        out.print(
            "set aside for the load and rebuilt: "
            + ", ".join(f"{d.kind} {d.name} on {d.table}" for d in rebuilt),
            highlight=False,
            markup=False,
        )
    for summary in report.aggregates:
        out.print(
            f"aggregate {summary.table}: {summary.groups:,} groups from "
            f"{summary.rows_read:,} rows of {summary.source}",
            highlight=False,
            markup=False,
        )
    if report.views_created:
        out.print(
            "views carried over (translated by sqlglot): " + ", ".join(report.views_created),
            highlight=False,
            markup=False,
        )
    # Database text (a CHECK's `[a-z]`) is escaped: rich would take it for a style tag.
    for item in report.needs_translation:
        out.print(f"[yellow]needs translation:[/] {escape(item)}", highlight=False)
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


@app.command()
def verify(
    job: Annotated[Path, typer.Argument(help="job spec (YAML) whose copy to prove")],
    max_keys: Annotated[int, typer.Option(min=1, help="keys listed per kind of difference")] = 20,
    ignore_case: Annotated[bool, typer.Option(help="compare text case-insensitively")] = False,
    ignore_trailing_spaces: Annotated[
        bool, typer.Option(help="ignore trailing spaces in text")
    ] = False,
    method: Annotated[
        Method,
        typer.Option(
            help="auto: checksums inside PostgreSQL and MariaDB where the job keeps values "
            "as they are, rows elsewhere; checksum: those or an error; rows: read every row"
        ),
    ] = Method.AUTO,
    as_json: JsonOpt = False,
) -> None:
    """Prove a copy by key ranges; exit 9 on any difference.

    Row counts, checksums of key ranges computed inside each database (a differing range is
    bisected down to its keys), or a row comparison in Arrow of the source as the job
    transforms it with the target; then constraint checks on the target.
    """
    from ferry.data.spec import load_job
    from ferry.validate.compare import Canon
    from ferry.validate.data import verify_job

    spec = load_job(job)
    project = _project() if state.config is not None else None
    report = verify_job(
        spec,
        spec_path=job,
        project=project,
        max_keys=max_keys,
        canon=Canon(ignore_case=ignore_case, ignore_trailing_spaces=ignore_trailing_spaces),
        method=method,
    )
    if as_json:
        render.emit_json(report.as_dict())
    else:
        render.print_validation(report)
    if report.status != "passed":
        raise typer.Exit(9)


@app.command()
def sync(
    job: Annotated[Path, typer.Argument(help="job spec (YAML) with `mode: delta` tables")],
    follow: Annotated[bool, typer.Option("--follow", help="keep replaying new changes")] = False,
    interval: Annotated[float, typer.Option(help="seconds between polls with --follow")] = 1.0,
    max_seconds: Annotated[
        float | None, typer.Option(help="with --follow: stop after this many seconds")
    ] = None,
    stop: Annotated[
        bool, typer.Option("--stop", help="remove the capture triggers and the log from the source")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Replay changes captured on the source (inserts, updates, deletes) on the target."""
    from ferry.data.delta import SyncReport, sync_job
    from ferry.data.spec import load_job

    spec = load_job(job)
    project = _project() if state.config is not None else None
    # What the rounds committed so far: a signal can land mid-round, whose counts the
    # library has begun to add up before its transaction rolled back.
    committed = SyncReport(spec.name or job.stem)

    def progress(report: SyncReport) -> None:
        nonlocal committed
        committed = copy_module.deepcopy(report)
        if not as_json:
            err.print(
                f"  replayed {report.applied_entries:,} changes "
                f"(upserted {report.upserted:,}, deleted {report.deleted:,})"
            )

    try:
        report = sync_job(
            spec,
            spec_path=job,
            project=project,
            follow=follow,
            interval=interval,
            max_seconds=max_seconds,
            stop=stop,
            on_round=progress,
        )
    except KeyboardInterrupt:
        # SIGINT/SIGTERM is how `--follow` is stopped: a round it cut short rolled back (or,
        # cut between the target's commit and the log's cleanup, is replayed again next
        # time, which is harmless), so what was committed is reported and the exit is clean.
        if not follow or not _signalled:
            raise
        err.print(f"sync stopped by {_signal_name(_signalled[0])}", highlight=False)
        _signalled.clear()
        report = committed
    if as_json:
        render.emit_json(
            {
                "job": report.job,
                "applied_entries": report.applied_entries,
                "upserted": report.upserted,
                "deleted": report.deleted,
                "rejected": report.rejected,
                "last_id": report.last_id,
                "stopped_capture": stop,
            }
        )
    elif stop:
        out.print(f"capture stopped for job {report.job}: triggers and log removed")
    else:
        out.print(
            f"job {report.job}: {report.applied_entries:,} changes replayed, "
            f"{report.upserted:,} rows upserted, {report.deleted:,} deleted, "
            f"{report.rejected:,} rejected (log id {report.last_id})"
        )


@app.command()
def runs(
    target: TargetOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(min=1, help="how many, newest first")] = 20,
) -> None:
    """Runs recorded in a target (ferry_runs): schema runs, copies, verifications and
    rollbacks, with status, times, errors; --json adds each summary (validation reports)."""
    from ferry.db.target import open_target
    from ferry.runs import read_runs

    opened = open_target(_project(), target)
    try:
        with opened.connect() as conn:
            records = read_runs(conn, limit=limit)
    finally:
        opened.dispose()
    if as_json:
        render.emit_json([r.__dict__ for r in records])
        return
    from rich.table import Table

    table = Table("run", "type", "name", "status", "started", "finished", "error")
    for r in records:
        style = {"completed": "green", "failed": "red", "running": "yellow"}.get(r.status, "")
        table.add_row(
            r.run_id,
            r.type,
            r.name,
            f"[{style}]{r.status}[/]",
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            f"{r.finished_at:%Y-%m-%d %H:%M:%S}" if r.finished_at else "",
            (r.error or "").splitlines()[0][:80] if r.error else "",
        )
    out.print(table)


def _backup_root(project: Project) -> Path:
    return project.root / project.config.backups.location


@app.command()
def backup(
    target: TargetOpt = None,
    tables: Annotated[
        str | None, typer.Option(help="comma-separated tables (default: all)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Back up a target's tables, with a manifest of row counts and checksums."""
    from ferry.db.target import open_target
    from ferry.rollback import create_backup

    project = _project()
    opened = open_target(project, target)
    try:
        made = create_backup(
            opened,
            _backup_root(project),
            tables=[t.strip() for t in tables.split(",")] if tables else None,
        )
    finally:
        opened.dispose()
    if as_json:
        render.emit_json(made.manifest())
    else:
        out.print(
            f"backup [bold]{made.id}[/] of {len(made.tables)} tables with {made.tool} "
            f"in {made.folder}"
        )


@app.command()
def backups(as_json: JsonOpt = False) -> None:
    """Backups under the project's backup location, newest first."""
    from ferry.rollback import list_backups

    found = list_backups(_backup_root(_project()))
    if as_json:
        render.emit_json([b.manifest() for b in found])
        return
    from rich.table import Table

    table = Table("id", "created", "database", "tables", "rows", "tool")
    for b in found:
        table.add_row(
            b.id,
            b.created_at,
            f"{b.dialect} {b.database}",
            str(len(b.tables)),
            f"{sum(t['rows'] for t in b.tables.values()):,}",
            b.tool,
        )
    out.print(table)


@app.command()
def restore(
    backup_id: Annotated[str, typer.Argument(help="id from `ferry backups`")],
    target: TargetOpt = None,
) -> None:
    """Restore a backup into the database it came from, then prove it by its checksums."""
    from ferry.db.target import open_target
    from ferry.rollback import restore_backup

    project = _project()
    opened = open_target(project, target)
    try:
        proof = restore_backup(opened, _backup_root(project), backup_id)
    finally:
        opened.dispose()
    out.print(
        f"[green]restored {backup_id}[/]: {len(proof['tables'])} tables match the "
        "manifest's row counts and checksums"
    )


@app.command()
def rollback(
    run_id: Annotated[str, typer.Argument(help="run id (ferry history / ferry runs)")],
    target: TargetOpt = None,
    reason: Annotated[str, typer.Option(help="recorded with the rollback")] = "requested",
    as_json: JsonOpt = False,
) -> None:
    """Undo one run by the safest strategy available, and say which."""
    from ferry.rollback.runs import rollback_run

    project = _project()
    report = rollback_run(project, run_id, target, backup_root=_backup_root(project), reason=reason)
    if as_json:
        render.emit_json(report.__dict__)
        return
    out.print(f"[cyan]rolled back {run_id}[/] by {report.strategy} in {report.seconds:.2f} s")
    for line in report.detail:
        out.print(f"  {line}", highlight=False)


@app.command()
def quickstart(
    folder: Annotated[Path, typer.Argument(help="demo folder")] = Path("quickstart-demo"),
) -> None:
    """Camera-counting demo on SQLite: migrate, copy the legacy data, prove it."""
    from ferry.quickstart.demo import run_quickstart

    result = run_quickstart(folder)
    legacy = result.legacy
    out.print(
        f"[bold]legacy database[/] {escape(str(legacy.path))}: {legacy.users} users, "
        f"{legacy.cameras} cameras, {legacy.analytics} counts "
        f"({legacy.duplicate_users} duplicate users, {legacy.bad_emails} bad emails, "
        f"{legacy.null_statuses} NULL statuses)"
    )
    for step in result.applied:
        out.print(render.step_line(step))
    out.print(render.history_table("new", result.history))
    if result.copy is not None:
        out.print(render.copy_table(result.copy))
        _copy_footer(result.copy)
    if result.validation is not None:
        render.print_validation(result.validation)
    # Quoted, so a folder whose name holds spaces gives a command that runs as printed.
    out.print(
        f"\nproject in [bold]{escape(str(folder))}[/]: "
        f"try `{escape(shlex.join(['ferry', '-c', str(folder), 'status']))}`",
        highlight=False,
    )


def _fail(message: str, code: int) -> None:
    message = mask_secrets(message)  # the last guard before anything is printed
    err.print(f"[red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise SystemExit(code)


# Signals received during this command; the first one stops it (see _on_signal).
_signalled: list[int] = []


def _signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGINT and SIGTERM alike: the first raises KeyboardInterrupt in the main thread, so
    the command unwinds as after Ctrl-C (a copy stops its workers, restores what it set
    aside, records the run failed, keeps its checkpoints). SIGTERM's default would end the
    process on the spot, leaving indexes dropped and the run `running`. A further signal
    does not cut that clean-up short: SIGKILL does."""
    if _signalled:
        os.write(
            2,
            b"ferry: still stopping (restoring what was set aside, recording the run); "
            b"SIGKILL stops at once\n",
        )
        return
    _signalled.append(signum)
    raise KeyboardInterrupt(f"interrupted by {_signal_name(signum)}")


def _install_signal_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, _on_signal)
    return previous


def _interrupted(signum: int) -> None:
    _fail(
        f"interrupted by {_signal_name(signum)}: stopped"
        "\n  hint: what was committed stays; run the same command again to resume "
        "(a copy continues from its checkpoints)",
        128 + signum,
    )


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: turns every expected error into one message and an exit
    code; only --debug shows a traceback."""
    debug = "--debug" in (argv if argv is not None else sys.argv)
    _signalled.clear()
    previous = _install_signal_handlers()
    try:
        return _run(argv, debug)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _usage_error(error: typer.TyperException) -> None:
    """A wrong option or argument: one line naming it and what to pass, as Ferry's other
    errors, instead of typer's usage box."""
    if type(error).__name__ == "NoArgsIsHelpError":  # bare `ferry`: the help is printed
        raise SystemExit(2)
    ctx = getattr(error, "ctx", None)
    names: list[str] = []
    while ctx is not None:
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    command = shlex.join(["ferry", *names[1:]])
    param = getattr(error, "param", None)
    message = str(getattr(error, "message", None) or "")
    if message and param is not None and getattr(param, "opts", None):
        message = f"{'/'.join(param.opts)}: {message}"
    elif hasattr(error, "format_message"):  # a missing argument, an unknown option, ...
        message = error.format_message()
    message = message[:1].lower() + message[1:]
    _fail(
        escape(f"{message}\n  hint: `{command} --help` lists what it takes"),
        int(getattr(error, "exit_code", 2)),
    )


def _run(argv: list[str] | None, debug: bool) -> Any:
    try:
        # Not standalone: typer would box a usage error; its exit code comes back instead.
        code = app(args=argv, standalone_mode=False)
        raise SystemExit(code if isinstance(code, int) else 0)
    except SystemExit as exiting:
        # The command is over: the collector need not walk every object at shutdown
        # (0.25-0.3 s after a copy, measured; atexit handlers still run).
        gc.freeze()
        if _signalled and exiting.code == 130:  # typer's exit for a KeyboardInterrupt
            _interrupted(_signalled[0])
        raise
    except FerryError as error:
        if debug:
            raise
        _fail(str(error).replace("[", "\\["), error.exit_code)
    except typer.Abort:  # end of input at a prompt
        _fail("aborted", 1)
    except typer.TyperException as error:  # a usage error: unknown option, bad value
        _usage_error(error)
    except KeyboardInterrupt:
        if _signalled:
            _interrupted(_signalled[0])
        _fail("interrupted", 130)
    except Exception as error:
        if debug:
            raise
        from sqlalchemy import exc as sa_exc  # already loaded if a database was used

        if isinstance(error, sa_exc.DBAPIError):
            reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            _fail(f"database error: {reason}".replace("[", "\\["), 3)
        # Anything else is a bug in Ferry: say so, briefly.
        _fail(
            f"internal error: {type(error).__name__}: {error}".replace("[", "\\[")
            + "\n  hint: run again with --debug for the traceback, and report it",
            70,
        )
    return None
