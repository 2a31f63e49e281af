"""Views, triggers and routines of the source: views are carried over when sqlglot
translates them and the target accepts the result; everything else is listed for a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect

from ferry.db.target import Target

_SQLGLOT = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite"}


@dataclass
class ObjectReport:
    views_created: list[str] = field(default_factory=list)
    #: "view v: <why>", "trigger t on x", "procedure p", ...: for a person to translate
    needs_translation: list[str] = field(default_factory=list)


def _select_of(definition: str, dialect: str) -> Any:
    tree = sqlglot.parse_one(definition, read=dialect)
    if isinstance(tree, sqlglot.exp.Create) and tree.expression is not None:
        return tree.expression
    return tree


def carry_objects(source: Target, target: Target) -> ObjectReport:
    """Create the source's views on the target where they translate; list the rest."""
    report = ObjectReport()
    read = _SQLGLOT.get(source.adapter.name)
    write = _SQLGLOT.get(target.adapter.name)
    source_inspector = inspect(source.engine)
    existing = set(inspect(target.engine).get_view_names())
    for view in source_inspector.get_view_names():
        if view in existing:
            continue
        try:
            definition = source_inspector.get_view_definition(view)
            select = _select_of(str(definition), read or "")
            translated = select.sql(dialect=write or "", pretty=False)
            quoted = target.engine.dialect.identifier_preparer.quote(view)
            with target.connect() as conn, conn.begin():
                conn.exec_driver_sql(f"CREATE VIEW {quoted} AS {translated}")
            report.views_created.append(view)
        except (sqlglot.errors.SqlglotError, sa_exc.DBAPIError, ValueError) as error:
            reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
            report.needs_translation.append(f"view {view}: {reason}")
    with source.connect() as conn:
        report.needs_translation += source.adapter.list_routines(conn)
    return report
