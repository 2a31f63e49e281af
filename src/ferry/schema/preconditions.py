"""Checks before a run: the objects the plan alters exist, no long transaction holds locks
on the tables it touches (a migration would queue behind it and block everyone), and the
database's disk has room for the run (where the database can tell)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlalchemy import inspect
from sqlglot import exp

from ferry.db.bookkeeping import FERRY_TABLES
from ferry.db.space import SpaceCheck, check_space, sizes
from ferry.db.target import Target
from ferry.schema.plan import Action, Step
from ferry.schema.scripts import Language

_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite"}


@dataclass
class Preconditions:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    #: every statement was read, so `tables` names all the plan touches (no Python
    #: migration, nothing sqlglot could not parse)
    complete: bool = True
    #: tables and views the plan creates
    created: set[str] = field(default_factory=set)
    space: SpaceCheck | None = None


@dataclass(frozen=True)
class BackupNeed:
    """Safe mode's backup: where it goes, and whether it holds only the touched tables."""

    root: Path
    touched_only: bool


def check_preconditions(
    target: Target,
    steps: list[Step],
    statements: dict[str, list[str]],
    *,
    long_after: int = 30,
    backup: BackupNeed | None = None,
) -> Preconditions:
    """`statements` maps each step's script name to its SQL statements; a transaction open
    longer than `long_after` seconds on a touched table is a warning. Free space must cover
    the touched tables once more (a rewriting ALTER copies the table) and, with `backup` on
    the database's disk, the backup; unknown free space is a warning."""
    found = Preconditions()
    names = inspect(target.engine).get_table_names()
    existing = {t.lower() for t in names}
    created = found.created
    dialect = _DIALECTS.get(target.adapter.name)
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        for step in steps:
            if step.action is Action.UNDO:
                continue
            if step.script.language is Language.PYTHON:
                found.complete = False
                continue
            for sql in statements.get(step.script.name, []):
                try:
                    tree = sqlglot.parse_one(sql, read=dialect)
                except sqlglot.errors.SqlglotError:
                    found.complete = False
                    continue
                if isinstance(tree, exp.Create) and tree.kind in ("TABLE", "VIEW"):
                    table = tree.find(exp.Table)
                    if table is not None:
                        created.add(table.name.lower())
                    continue
                altered = isinstance(tree, exp.Alter | exp.Drop) or (
                    isinstance(tree, exp.Create) and tree.kind == "INDEX"
                )
                for table in tree.find_all(exp.Table):
                    name = table.name.lower()
                    if not name:
                        continue
                    found.tables.add(name)
                    if (
                        altered
                        and name not in existing
                        and name not in created
                        and not (isinstance(tree, exp.Drop) and tree.args.get("exists"))
                    ):
                        found.errors.append(
                            f"{step.script.name} changes table `{name}`, which the target "
                            "does not have and no earlier migration of the plan creates"
                        )
    finally:
        quiet.setLevel(level)
    with target.connect() as conn:
        for holder in target.adapter.long_transactions(conn, sorted(found.tables), long_after):
            found.warnings.append(holder)
        conn.rollback()
    _check_space(target, found, names, backup)
    return found


def _check_space(
    target: Target, found: Preconditions, names: list[str], backup: BackupNeed | None
) -> None:
    all_sizes = sizes(target, names)
    touched = sum(size for name, size in all_sizes.items() if name.lower() in found.tables)
    if backup is None:
        backed_up = 0
    elif backup.touched_only and found.complete:
        backed_up = sum(
            size
            for name, size in all_sizes.items()
            if name.lower() in found.tables or name in FERRY_TABLES
        )
    else:
        backed_up = sum(all_sizes.values())
    found.space = check_space(
        target,
        touched,
        "the run",
        backup_root=backup.root if backup is not None else None,
        backup_bytes=backed_up,
    )
    if not found.space.enough:
        found.errors.append(str(found.space.error().message))
    elif (warning := found.space.warning()) is not None:
        found.warnings.append(warning)
