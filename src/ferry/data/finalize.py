"""The keys of the tables a copy created, built as soon as each table's data is complete.

A table's indexes (its primary key's among them) start the moment its last chunk commits,
while other tables still load, on their own connections, heaviest first; then its primary
key adopts its index and its identity follows the largest id; then each foreign key starts
once both of its tables have their keys. Every step commits on its own, so one that fails,
an orphan refusing a foreign key, is reported and leaves the others in place.

Where the database can (PostgreSQL), a foreign key is added NOT VALID and then validated in
a second step: adding it locks the referenced table against other additions, validating only
shares it, so the foreign keys of several tables that point at one parent check their rows
at the same time instead of one after another.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

from sqlalchemy import Connection, MetaData, Table, inspect
from sqlalchemy import exc as sa_exc
from sqlalchemy.schema import AddConstraint, CreateIndex, Index

from ferry.config.project import PoolConfig
from ferry.data.tables import ForeignKeySpec, TablePlan
from ferry.db.target import Target
from ferry.errors import FerryError


@dataclass(frozen=True)
class Step:
    table: str
    what: str  # "primary key index", "index x", "foreign key y"
    sql: tuple[str, ...]  # each statement in its own transaction
    weight: int = 0  # expected work (table bytes x key columns): the heaviest starts first
    undo: str | None = None  # run when statement `undo_from` or a later one fails
    undo_from: int = 1
    #: The first statement locks two tables (adding a foreign key: the child, then the
    #: parent), so it runs alone: two tables with keys to each other would deadlock.
    adds_foreign_key: bool = False


@dataclass(frozen=True)
class _ForeignKey:
    step: Step
    child: str
    parent: str


class KeyBuilder:
    """Builds the keys of `created` (tables Ferry made for a copy) on `workers` connections.

    Call :meth:`loaded` for each table once its data is complete, then :meth:`finish`; after
    a failed load, :meth:`stop`. `weights` (bytes per table) order the builds; the heaviest
    index, when several run at once, is the only one left the server's parallel workers.
    """

    def __init__(
        self,
        target: Target,
        created: list[TablePlan],
        *,
        workers: int,
        warn: Callable[[str], None],
        weights: dict[str, int],
    ) -> None:
        self.target = target
        self.adapter = target.adapter
        self.workers = workers if self.adapter.concurrent_ddl else 1
        self.warn = warn
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.outstanding = 0
        self.stopping = False
        self.stopped = False  # by the caller (a failed load), whose error is reported
        self.created = {p.target_name for p in created}
        self.keyed: set[str] = set()
        self.indexing: dict[str, int] = {}  # table -> index steps still running
        # Ready work, heaviest first: a connection that frees up takes the heaviest step
        # (the big table's foreign key before a small one's that became ready earlier).
        self.ready: list[tuple[int, int, Callable[..., None], tuple[object, ...]]] = []
        self.order = itertools.count()
        self.threads: list[threading.Thread] = []
        self.closing = False
        self.errors: list[Exception] = []
        self.adding = threading.Lock()  # one foreign key added at a time
        # Connections of its own: a build holds one for seconds, and the copy's chunks must
        # not wait for the target's pool meanwhile (SQLite: one connection does it all).
        self.own_engine = self.adapter.concurrent_ddl
        self.engine = (
            self.adapter.create_engine(target.url, PoolConfig(min=0, max=self.workers))
            if self.own_engine
            else target.engine
        )
        self.plans = created
        self.meta = MetaData()
        self._plan(created, weights)

    # --- what to build ---

    def _plan(self, created: list[TablePlan], weights: dict[str, int]) -> None:
        dialect = self.target.engine.dialect
        preparer = dialect.identifier_preparer
        names = [p.target_name for p in created]
        with self.target.connect() as conn:
            # What exists already (a resumed run may have built part of it); one catalog
            # query per kind for all tables where the dialect batches them (PostgreSQL).
            self.meta.reflect(conn, only=names)
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
                for (_, name), found in inspector.get_multi_pk_constraint(
                    filter_names=names
                ).items()
            }
            conn.commit()
        self.index_steps: dict[str, list[Step]] = {}
        self.weight = {p.target_name: weights.get(p.name, 0) for p in created}
        self.attach_sql: dict[str, str] = {}
        self.fks: list[_ForeignKey] = []
        for plan in created:
            name = plan.target_name
            table = self.meta.tables[name]
            quoted = preparer.format_table(table)
            weight = self.weight[name]
            steps: list[Step] = []
            # The designed table: on a resumed run `plan.target` is the one read back from
            # the database, which has no primary key until this builds it.
            designed = plan.designed if plan.designed is not None else plan.target
            key = [c.name for c in designed.primary_key.columns]
            if key and not have_pk[name]:
                index = f"{name}_pkey"[:63]
                columns = ", ".join(preparer.quote(c) for c in key)
                if index not in have_index[name]:
                    sql = f"CREATE UNIQUE INDEX {preparer.quote(index)} ON {quoted} ({columns})"
                    steps.append(Step(name, "primary key index", (sql,), weight * len(key)))
                self.attach_sql[name] = self.adapter.primary_key_using_index_sql(
                    quoted, preparer.quote(index), columns
                )
            for spec in plan.deferred_indexes:
                if spec.name not in have_index[name]:
                    index_ = Index(
                        spec.name, *[table.c[c] for c in spec.columns], unique=spec.unique
                    )
                    sql = str(CreateIndex(index_).compile(dialect=dialect))
                    steps.append(
                        Step(name, f"index {spec.name}", (sql,), weight * len(spec.columns))
                    )
            self.index_steps[name] = steps
            if not self.adapter.can_add_foreign_keys:
                continue
            for fk in plan.deferred_fks:
                if fk.referred_table not in self.meta.tables:
                    continue  # a parent outside the job that the target does not have
                step = self._foreign_key(table, fk, exists=fk.name in have_fk[name], weight=weight)
                if step is not None:
                    self.fks.append(_ForeignKey(step, name, fk.referred_table))
        everything = [s for steps in self.index_steps.values() for s in steps]
        heaviest = max(everything, key=lambda s: s.weight, default=None)
        self.heaviest = heaviest if self.workers > 1 and len(everything) > 1 else None

    def _foreign_key(
        self, table: Table, fk: ForeignKeySpec, *, exists: bool, weight: int
    ) -> Step | None:
        name = fk.name
        dialect = self.target.engine.dialect
        preparer = dialect.identifier_preparer
        quoted = preparer.format_table(table)
        validate = self.adapter.validate_foreign_key_sql
        if exists:
            # Added by a run that stopped before validating it (a no-op when valid).
            if validate is None:
                return None
            sql = validate.format(table=quoted, name=preparer.quote(name))
            drop = f"ALTER TABLE {quoted} DROP CONSTRAINT {preparer.quote(name)}"
            return Step(table.name, f"foreign key {name}", (sql,), weight, drop, undo_from=0)
        constraint = fk.constraint()
        table.append_constraint(constraint)
        add = str(AddConstraint(constraint).compile(dialect=dialect))
        if validate is None:
            return Step(table.name, f"foreign key {name}", (add,), weight, adds_foreign_key=True)
        return Step(
            table.name,
            f"foreign key {name}",
            (
                f"{add} NOT VALID",
                validate.format(table=quoted, name=preparer.quote(name)),
            ),
            weight,
            undo=f"ALTER TABLE {quoted} DROP CONSTRAINT {preparer.quote(name)}",
            adds_foreign_key=True,
        )

    # --- driving it ---

    def loaded(self, *tables: str) -> None:
        """The data of `tables` is complete: start their indexes, heaviest first."""
        with self.lock:
            steps: list[Step] = []
            for table in tables:
                if table not in self.created:
                    continue
                mine = self.index_steps.get(table, [])
                self.indexing[table] = len(mine)
                if not mine:
                    self._submit(self.weight[table], self._attach, table)
                steps += mine
            for step in steps:
                self._submit(step.weight, self._index, step)

    def finish(self) -> None:
        """Wait until every key of every loaded table is built.

        Raises:
            FerryError: a step failed other than by its statement (a lost connection); the
                keys left are built by the next run.
        """
        with self.idle:
            while self.outstanding:
                self.idle.wait()
            self.closing = True
            self.idle.notify_all()
        for thread in self.threads:
            thread.join()
        if self.own_engine:
            self.engine.dispose()
        if self.errors and not self.stopped:
            error = self.errors[0]
            raise FerryError(
                f"building the keys of the copied tables failed: {error}",
                hint="the data is in place and checkpointed: run the same command again to "
                "build the keys that are missing",
            ) from error

    def stop(self) -> None:
        """The load failed: start nothing more, wait for what runs."""
        with self.lock:
            self.stopping = True
            self.stopped = True
            self.outstanding -= len(self.ready)
            self.ready.clear()
        self.finish()

    def _submit(self, weight: int, work: Callable[..., None], *args: object) -> None:
        # Called with the lock held.
        if self.stopping:
            return
        self.outstanding += 1
        heapq.heappush(self.ready, (-weight, next(self.order), work, args))
        if len(self.threads) < self.workers:
            thread = threading.Thread(target=self._worker, name="ferry-keys", daemon=True)
            self.threads.append(thread)
            thread.start()
        self.idle.notify_all()

    def _worker(self) -> None:
        while True:
            with self.idle:
                while not self.ready and not self.closing:
                    self.idle.wait()
                if not self.ready:
                    return
                _, _, work, args = heapq.heappop(self.ready)
            try:
                work(*args)
            except Exception as error:  # not a statement's (those are warned): a lost
                # connection, say. What depends on the step would never start: the copy
                # fails instead, its tables not finalized, so the next run builds the rest.
                with self.lock:
                    self.errors.append(error)
                    self.stopping = True
                    self.outstanding -= len(self.ready)
                    self.ready.clear()
            finally:
                with self.idle:
                    self.outstanding -= 1
                    self.idle.notify_all()

    def _index(self, step: Step) -> None:
        serial = self.heaviest is not None and step is not self.heaviest
        self._run(step, serial=serial)
        with self.lock:
            self.indexing[step.table] -= 1
            if self.indexing[step.table] == 0:
                self._submit(self.weight[step.table], self._attach, step.table)

    def _attach(self, table: str) -> None:
        attach = self.attach_sql.get(table)
        if attach is not None:
            self._run(Step(table, "primary key", (attach,)))
        with self.engine.connect() as conn:
            keyed = Table(table, MetaData(), autoload_with=conn)  # the key exists only now
            self.adapter.reset_identity(conn, keyed)
            conn.commit()
        with self.lock:
            self.keyed.add(table)
            ready = [
                fk
                for fk in self.fks
                if fk.child in self.keyed
                and (fk.parent in self.keyed or fk.parent not in self.created)
            ]
            for fk in ready:
                self.fks.remove(fk)
                self._submit(fk.step.weight, self._run, fk.step)

    def _run(self, step: Step, *, serial: bool = False) -> None:
        settings = self.adapter.unflushed_commit_sql
        if serial:
            settings += self.adapter.serial_index_build_sql
        with self.engine.connect() as conn:
            for done, statement in enumerate(step.sql):
                _tune(conn, settings)
                alone = self.adding if step.adds_foreign_key and done == 0 else nullcontext()
                try:
                    with alone:
                        conn.exec_driver_sql(statement)
                        conn.commit()
                except sa_exc.DBAPIError as error:
                    conn.rollback()
                    if step.undo is not None and done >= step.undo_from:
                        _undo(conn, step.undo)
                    reason = str(error.orig).strip().splitlines()[0]
                    self.warn(f"{step.what} on `{step.table}` was not created: {reason}")
                    return


def _undo(conn: Connection, statement: str) -> None:
    try:
        conn.exec_driver_sql(statement)
        conn.commit()
    except sa_exc.DBAPIError:
        conn.rollback()


def _tune(conn: Connection, statements: tuple[str, ...]) -> None:
    """Session settings that only tune a build: a server that refuses one (an older
    version without it) builds with its defaults instead."""
    try:
        for statement in statements:
            conn.exec_driver_sql(statement)
    except sa_exc.DBAPIError:
        conn.rollback()
