"""Checks before a run: the objects the plan alters exist, and no long transaction holds
locks on the tables it touches (a migration would queue behind it and block everyone)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import sqlglot
from sqlalchemy import inspect
from sqlglot import exp

from ferry.db.target import Target
from ferry.schema.plan import Action, Step
from ferry.schema.scripts import Language

_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite"}


@dataclass
class Preconditions:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)


def check_preconditions(
    target: Target, steps: list[Step], statements: dict[str, list[str]], *, long_after: int = 30
) -> Preconditions:
    """`statements` maps each step's script name to its SQL statements; a transaction open
    longer than `long_after` seconds on a touched table is a warning."""
    found = Preconditions()
    existing = {t.lower() for t in inspect(target.engine).get_table_names()}
    created: set[str] = set()
    dialect = _DIALECTS.get(target.adapter.name)
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        for step in steps:
            if step.action is Action.UNDO or step.script.language is Language.PYTHON:
                continue
            for sql in statements.get(step.script.name, []):
                try:
                    tree = sqlglot.parse_one(sql, read=dialect)
                except sqlglot.errors.SqlglotError:
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
    return found
