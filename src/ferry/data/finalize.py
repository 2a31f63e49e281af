"""After the load: primary keys, secondary indexes and foreign keys of the tables Ferry
created, built in parallel on separate connections (each commits on its own, so one that
fails, an orphan refusing a foreign key, is reported and leaves the others in place).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, MetaData, inspect
from sqlalchemy import exc as sa_exc
from sqlalchemy.schema import AddConstraint, CreateIndex, ForeignKeyConstraint, Index

from ferry.data.tables import TablePlan
from ferry.db.target import Target


@dataclass(frozen=True)
class Step:
    table: str
    what: str  # "primary key", "index x", "foreign key y"
    sql: str
    weight: int = 0  # expected work (table bytes x key columns): the heaviest starts first


def _run(
    target: Target,
    steps: list[Step],
    workers: int,
    warn: Callable[[str], None],
    *,
    settings: tuple[str, ...] = (),
    serial_sql: tuple[str, ...] = (),
) -> None:
    """Steps on `workers` connections, heaviest first. `settings` run before each step,
    `serial_sql` before each but the heaviest (the one that outlasts the others may use the
    server's own workers)."""
    steps = sorted(steps, key=lambda step: step.weight, reverse=True)
    heaviest = steps[0] if steps and workers > 1 else None

    def one(step: Step) -> None:
        with target.connect() as conn:
            held = heaviest is not None and step is not heaviest
            _tune(conn, settings + serial_sql if held else settings)
            try:
                conn.exec_driver_sql(step.sql)
                conn.commit()
            except sa_exc.DBAPIError as error:
                conn.rollback()
                reason = str(error.orig).strip().splitlines()[0]
                warn(f"{step.what} on `{step.table}` was not created: {reason}")

    if not steps:
        return
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(one, step) for step in steps]:
            future.result()


def _tune(conn: Connection, statements: tuple[str, ...]) -> None:
    """Session settings that only tune a build: a server that refuses one (an older
    version without it) builds with its defaults instead."""
    try:
        for statement in statements:
            conn.exec_driver_sql(statement)
    except sa_exc.DBAPIError:
        conn.rollback()


def build_keys(
    target: Target, created: list[TablePlan], *, workers: int, warn: Callable[[str], None]
) -> None:
    """Indexes (the primary key's among them) in parallel, then keys attached, identities
    reset, then foreign keys in parallel."""
    adapter = target.adapter
    if not adapter.concurrent_ddl:
        workers = 1
    dialect = target.engine.dialect
    preparer = dialect.identifier_preparer
    meta = MetaData()
    names = [p.target_name for p in created]
    with target.connect() as conn:
        # What exists already (a resumed run may have built part of it); one catalog query
        # per kind for all tables where the dialect batches them (PostgreSQL).
        meta.reflect(conn, only=names)
        inspector = inspect(conn)
        have_index = {
            name: {i["name"] for i in found}
            for (_, name), found in inspector.get_multi_indexes(filter_names=names).items()
        }
        have_fk = {
            name: {f["name"] for f in found}
            for (_, name), found in inspector.get_multi_foreign_keys(filter_names=names).items()
        }
        have_pk = {
            name: bool(found and found.get("constrained_columns"))
            for (_, name), found in inspector.get_multi_pk_constraint(filter_names=names).items()
        }
        # Sizes order concurrent builds (heaviest first); one at a time, order is moot.
        sizes = adapter.table_bytes(conn, names) if workers > 1 else {}
        conn.commit()
    indexes: list[Step] = []
    attach: list[Step] = []
    for plan in created:
        table = meta.tables[plan.target_name]
        key = [c.name for c in plan.target.primary_key.columns]
        if key and not have_pk[plan.target_name]:
            name = f"{plan.target_name}_pkey"[:63]
            columns = ", ".join(preparer.quote(c) for c in key)
            quoted = preparer.format_table(table)
            if name not in have_index[plan.target_name]:
                indexes.append(
                    Step(
                        plan.target_name,
                        "primary key index",
                        f"CREATE UNIQUE INDEX {preparer.quote(name)} ON {quoted} ({columns})",
                        sizes.get(plan.target_name, 0) * len(key),
                    )
                )
            attach.append(
                Step(
                    plan.target_name,
                    "primary key",
                    adapter.primary_key_using_index_sql(quoted, preparer.quote(name), columns),
                )
            )
        for spec in plan.deferred_indexes:
            if spec.name not in have_index[plan.target_name]:
                index = Index(spec.name, *[table.c[c] for c in spec.columns], unique=spec.unique)
                indexes.append(
                    Step(
                        plan.target_name,
                        f"index {spec.name}",
                        str(CreateIndex(index).compile(dialect=dialect)),
                        sizes.get(plan.target_name, 0) * len(spec.columns),
                    )
                )
    tuned = adapter.unflushed_commit_sql
    _run(target, indexes, workers, warn, settings=tuned, serial_sql=adapter.serial_index_build_sql)
    _run(target, attach, 1, warn, settings=tuned)
    with target.connect() as conn:
        keyed = MetaData()  # reflected again: the primary keys exist only now
        keyed.reflect(conn, only=names)
        for name in names:
            adapter.reset_identity(conn, keyed.tables[name])
            conn.commit()
    fks: list[Step] = []
    for plan in created if adapter.can_add_foreign_keys else []:
        table = meta.tables[plan.target_name]
        for fk in plan.deferred_fks:
            if fk.name in have_fk[plan.target_name] or fk.referred_table not in meta.tables:
                continue
            constraint = ForeignKeyConstraint(
                fk.columns, [f"{fk.referred_table}.{c}" for c in fk.referred_columns], name=fk.name
            )
            table.append_constraint(constraint)
            fks.append(
                Step(
                    plan.target_name,
                    f"foreign key {fk.name}",
                    str(AddConstraint(constraint).compile(dialect=dialect)),
                    sizes.get(plan.target_name, 0),
                )
            )
    _run(target, fks, workers, warn, settings=tuned)
