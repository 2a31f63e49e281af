"""Modes for `ferry copy`: `dry_run` writes what the copy would do (DDL of the tables it
would create, the key ranges per table) and changes nothing; `safe` backs up the target
first, proves the copy with `ferry verify` afterwards, and on any failure restores the
target exactly and says so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.schema import CreateTable

from ferry.config.project import Project
from ferry.data.chunks import plan_ranges
from ferry.data.copy import CopyReport, Progress, copy_data
from ferry.data.endpoints import open_endpoint
from ferry.data.spec import JobSpec
from ferry.data.tables import plan_tables
from ferry.errors import FerryError
from ferry.rollback.backup import Backup, create_backup, restore_backup
from ferry.rollback.safe import RolledBack
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
                ranges = plan_ranges(
                    conn, plan.source, plan.key, rows_per_chunk=spec.load.batch_size, where=where
                )
                mapping = ", ".join(f"{s} -> {t}" for s, t in plan.mapping.items())
                lines.append(
                    f"\n-- {plan.name} -> {plan.target_name}: {len(ranges)} key "
                    f"ranges of up to {spec.load.batch_size:,} rows; {mapping}"
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
    """Back up the target, copy, prove; restore the target exactly on any failure.

    Raises:
        RolledBack: the copy or its proof failed; the target is as it was before.
    """
    target = open_endpoint(spec.target, key="target", spec_path=spec_path, project=project)
    backup: Backup | None = None
    try:
        backup = create_backup(target, backup_root, include_ferry=True)
    finally:
        target.dispose()
    try:
        report = copy_data(
            spec,
            spec_path=spec_path,
            project=project,
            restart=restart,
            on_progress=on_progress,
            workers=workers,
        )
        proof = verify_job(spec, spec_path=spec_path, project=project)
        if proof.status != "passed":
            errors = [e for c in proof.categories.values() for e in c.errors]
            raise FerryError("the copy does not prove right: " + "; ".join(errors[:5]))
        return report, proof
    except FerryError as error:
        target = open_endpoint(spec.target, key="target", spec_path=spec_path, project=project)
        try:
            restore_backup(target, backup_root, backup.id, exact=True)
        finally:
            target.dispose()
        raise RolledBack(
            f"{error.message}\n  safe mode: the target was restored from backup {backup.id} "
            "and proven equal to its state before the copy",
            hint="fix the job or the data, then run the copy again",
        ) from error
