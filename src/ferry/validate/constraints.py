"""Constraint checks on the target: foreign-key orphans, duplicates under unique indexes and
rows that break a CHECK — what a load with constraints set aside (foreign keys dropped,
`NOT VALID`, an invalid index, MariaDB's `check_constraint_checks=0`, SQLite's
`ignore_check_constraints`) could leave behind. NOT NULL cannot be set aside in the engines
Ferry serves (MariaDB turns a NULL into the column's default instead), so it needs no scan."""

from __future__ import annotations

from sqlalchemy import MetaData, Table, and_, func, inspect, select, text

from ferry.db.target import Target
from ferry.validate.report import Category


def check_constraints(target: Target, tables: list[Table], category: Category) -> None:
    meta = MetaData()
    with target.connect() as conn:
        names = set(inspect(conn).get_table_names())
        for wanted in tables:
            if wanted.name not in names:
                continue
            table = Table(wanted.name, meta, autoload_with=conn)
            for fk in table.foreign_key_constraints:
                parent = fk.referred_table
                pairs = [(e.parent, e.column) for e in fk.elements]
                orphans = conn.execute(
                    select(func.count())
                    .select_from(table.outerjoin(parent, and_(*[c == p for c, p in pairs])))
                    .where(and_(*[c.is_not(None) for c, _ in pairs]))
                    .where(pairs[0][1].is_(None))
                ).scalar()
                if orphans:
                    category.fail(
                        f"`{table.name}`: {orphans} rows reference a missing "
                        f"`{parent.name}` row ({', '.join(c.name for c, _ in pairs)})"
                    )
            uniques: list[list[str]] = [
                [str(c) for c in index["column_names"]]
                for index in inspect(conn).get_indexes(table.name)
                if index.get("unique") and None not in index["column_names"]
            ]
            uniques += [
                [str(c) for c in u["column_names"]]
                for u in inspect(conn).get_unique_constraints(table.name)
            ]
            # Primary keys and NOT NULL are enforced by every engine Ferry serves and a load
            # never sets them aside; a unique index can exist and still hold duplicates
            # (PostgreSQL's invalid index after a failed CREATE INDEX CONCURRENTLY).
            for columns in uniques:
                if not columns:
                    continue
                cols = [table.c[c] for c in columns]
                dupes = conn.execute(
                    select(func.count()).select_from(
                        select(*cols)
                        .where(and_(*[c.is_not(None) for c in cols]))
                        .group_by(*cols)
                        .having(func.count() > 1)
                        .subquery()
                    )
                ).scalar()
                if dupes:
                    category.fail(
                        f"`{table.name}`: {dupes} duplicated values of unique "
                        f"({', '.join(columns)})"
                    )
            for check in inspect(conn).get_check_constraints(table.name):
                # NOT (x): a row whose check is NULL passes it, as the database decides.
                broken = conn.execute(
                    select(func.count()).select_from(table).where(text(f"NOT ({check['sqltext']})"))
                ).scalar()
                if broken:
                    category.fail(
                        f"`{table.name}`: {broken} rows break CHECK "
                        f"{check.get('name') or ''} ({check['sqltext']})".replace("  ", " ")
                    )
            conn.commit()
