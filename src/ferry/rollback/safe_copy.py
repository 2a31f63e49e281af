"""Modes for `ferry copy`: `dry_run` writes what the copy would do (DDL of the tables it
would create, the key ranges per table) and changes nothing; `safe` checks free space,
backs up the target tables the job touches (`backups.scope`), proves the copy with `ferry
verify` afterwards, and on any failure undoes it by the fastest sound strategy, proven, and
says which."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.schema import CreateTable

from ferry.config.project import BackupScope, Project
from ferry.data.chunks import chunk_rows
from ferry.data.copy import CopyReport, Progress, copy_data
from ferry.data.endpoints import open_endpoint
from ferry.data.extract import source_ranges
from ferry.data.spec import JobSpec
from ferry.data.tables import plan_tables
from ferry.db.space import check_space, sizes
from ferry.db.target import Target
from ferry.errors import FerryError
from ferry.rollback.backup import create_backup, touched_scope
from ferry.rollback.data_runs import RollbackReport, undo_data_run
from ferry.rollback.runs import record_rollback
from ferry.rollback.safe import RolledBack
from ferry.runs import read_runs
from ferry.validate.data import verify_job
from ferry.validate.report import ValidationReport


def copy_plan(spec: JobSpec, *, spec_path: Path, project: Project | None = None) -> str:
    """The copy's plan as SQL comments and DDL: nothing is written anywhere."""
    source = open_endpoint(spec.source, key="source", spec_path=spec_path, project=project)
    target = open_endpoint(spec.target, key="target", spec_path=spec_path, project=project)
    lines = [
        f"-- ferry copy {spec.name or spec_path.stem} (dry run): {source.safe_url} -> "
        f"{target.safe_url}"
    ]
    try:
        plans = plan_tables(spec, source.engine, target.engine, file=spec_path)
        with source.connect() as conn:
            for plan in plans:
                where = text(f"({plan.spec.where})").self_group() if plan.spec.where else None
                rows = chunk_rows(
                    source.adapter, conn, plan.source.name, spec.load.batch_size, spec.load.workers
                )
                ranges = source_ranges(source, conn, plan, rows_per_chunk=rows, where=where)
                mapping = ", ".join(f"{s} -> {t}" for s, t in plan.mapping.items())
                lines.append(
                    f"\n-- {plan.name} -> {plan.target_name}: {len(ranges)} key "
                    f"ranges of up to {rows:,} rows; {mapping}"
                )
                if not plan.target_exists:
                    ddl = str(CreateTable(plan.target).compile(dialect=target.engine.dialect))
                    lines.append(ddl.strip() + ";")
                    for index in plan.deferred_indexes:
                        lines.append(
                            f"-- after the data: {'unique ' if index.unique else ''}"
                            f"index {index.name} ({', '.join(index.columns)})"
                        )
                    for fk in plan.deferred_fks:
                        lines.append(
                            f"-- after the data: foreign key {fk.name} "
                            f"({', '.join(fk.columns)}) -> {fk.referred_table}"
                        )
                lines.append(
                    f"-- load: {spec.load.strategy} into {plan.target_name} "
                    f"({', '.join(c.name for c in plan.target.columns)})"
                )
    finally:
        source.dispose()
        target.dispose()
    return "\n".join(lines) + "\n"


def safe_copy(
    spec: JobSpec,
    *,
    spec_path: Path,
    backup_root: Path,
    project: Project | None = None,
    restart: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    workers: int | None = None,
) -> tuple[CopyReport, ValidationReport]:
    """Check free space, back up what the copy touches, copy, prove; on any failure undo
    the copy by the fastest sound strategy (drop the tables it created, empty those that
    were empty, else restore the backup exactly) and prove that.

    Raises:
        InsufficientSpace: the target's disk cannot hold the copy (nothing was changed).
        RolledBack: the copy or its proof failed; the target is as it was before.
        FerryError: the copy failed and so did its rollback (both reasons in the message).
    """
    run_id = str(uuid.uuid4())
    scope = project.config.backups.scope if project is not None else BackupScope.TOUCHED
    warnings = _backup_first(spec, spec_path, project, backup_root, run_id, scope)
    try:
        report = copy_data(
            spec,
            spec_path=spec_path,
            project=project,
            restart=restart,
            on_progress=on_progress,
            workers=workers,
            run_id=run_id,
        )
        report.warnings.extend(warnings)
        proof = verify_job(spec, spec_path=spec_path, project=project, run_id=run_id)
        if proof.status != "passed":
            errors = [e for c in proof.categories.values() for e in c.errors]
            raise FerryError("the copy does not prove right: " + "; ".join(errors[:5]))
        return report, proof
    except FerryError as error:
        target = open_endpoint(spec.target, key="target", spec_path=spec_path, project=project)
        try:
            undone = _undo(target, run_id, backup_root, f"safe mode: {error.message}")
        except FerryError as failure:
            raise FerryError(
                f"{error.message}\n  safe mode could not undo the copy: {failure.message}",
                hint=failure.hint,
            ) from error
        finally:
            target.dispose()
        raise RolledBack(
            f"{error.message}\n  safe mode: the copy was undone by {undone.strategy} "
            f"({'; '.join(undone.detail) or 'nothing had changed'}), proven",
            hint="fix the job or the data, then run the copy again",
        ) from error


def _backup_first(
    spec: JobSpec,
    spec_path: Path,
    project: Project | None,
    backup_root: Path,
    run_id: str,
    scope: BackupScope,
) -> list[str]:
    """Free space, then the backup named after the run; returns precondition warnings."""
    source = open_endpoint(spec.source, key="source", spec_path=spec_path, project=project)
    target = open_endpoint(spec.target, key="target", spec_path=spec_path, project=project)
    try:
        plans = plan_tables(spec, source.engine, target.engine, file=spec_path)
        existing = [p.target_name for p in plans if p.target_exists]
        tables = touched_scope(target, existing) if scope is BackupScope.TOUCHED else None
        backed_up = tables if tables is not None else inspect(target.engine).get_table_names()
        space = check_space(
            target,
            sum(sizes(source, [p.source.name for p in plans]).values()),
            f"copying {len(plans)} tables",
            backup_root=backup_root,
            backup_bytes=sum(sizes(target, backed_up).values()),
        )
        space.raise_if_short()
        create_backup(target, backup_root, tables=tables, run_id=run_id, include_ferry=True)
    finally:
        source.dispose()
        target.dispose()
    warning = space.warning()
    return [warning] if warning is not None else []


def _undo(target: Target, run_id: str, backup_root: Path, reason: str) -> RollbackReport:
    with target.connect() as conn:
        records = [r for r in read_runs(conn, limit=10_000) if r.run_id == run_id]
    # No record: the copy stopped before it wrote anything (its record comes first).
    summary = records[0].summary if records else {"before": {}}
    job = records[0].name if records else ""
    return record_rollback(
        target,
        run_id,
        reason,
        lambda: undo_data_run(target, run_id, job, summary, backup_root=backup_root),
    )
