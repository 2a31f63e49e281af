"""Views, triggers and routines of the source: views are carried over when sqlglot
translates them and the target accepts the result; everything else is listed for a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    import sqlglot

    tree = sqlglot.parse_one(definition, read=dialect)
    if isinstance(tree, sqlglot.exp.Create) and tree.expression is not None:
        return tree.expression
    return tree


def carry_objects(source: Target, target: Target) -> ObjectReport:
    """Create the source's views on the target where they translate; list the rest."""
    report = ObjectReport()
    source_inspector = inspect(source.engine)
    existing = set(inspect(target.engine).get_view_names())
    views = [v for v in source_inspector.get_view_names() if v not in existing]
    if views:  # a copy without views does not pay for sqlglot's import
        _carry_views(source, target, source_inspector, views, report)
    with source.connect() as conn:
        report.needs_translation += source.adapter.list_routines(conn)
    return report


def _carry_views(
    source: Target, target: Target, inspector: Any, views: list[str], report: ObjectReport
) -> None:
    import sqlglot

    # execute_script raises the driver's own errors, not SQLAlchemy's wrapping of them.
    driver_error: type[Exception] = target.engine.dialect.loaded_dbapi.Error
    read = _SQLGLOT.get(source.adapter.name) or ""
    write = _SQLGLOT.get(target.adapter.name) or ""
    for view in views:
        try:
            definition = inspector.get_view_definition(view)
            select = _select_of(str(definition), read)
            translated = select.sql(dialect=write, pretty=False)
            quoted = target.engine.dialect.identifier_preparer.quote(view)
            with target.connect() as conn, conn.begin():
                # Straight to the driver: a `%` in the view ('B%') is no parameter marker.
                target.adapter.execute_script(conn, f"CREATE VIEW {quoted} AS {translated}")
            report.views_created.append(view)
        except (sqlglot.errors.SqlglotError, sa_exc.DBAPIError, driver_error, ValueError) as error:
            reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
            report.needs_translation.append(f"view {view}: {reason}")
