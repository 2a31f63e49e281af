"""Constraint checks on the target: foreign-key orphans, duplicate unique keys, NULLs in
NOT NULL columns — so a load done with constraints set aside is proven clean."""

from __future__ import annotations

from sqlalchemy import MetaData, Table, and_, func, inspect, select

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
            primary = [c.name for c in table.primary_key.columns]
            for columns in ([primary] if primary else []) + uniques:
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
            for column in table.columns:
                if not column.nullable:
                    nulls = conn.execute(
                        select(func.count()).select_from(table).where(column.is_(None))
                    ).scalar()
                    if nulls:
                        category.fail(
                            f"`{table.name}.{column.name}`: {nulls} NULLs in a NOT NULL column"
                        )
            conn.commit()
