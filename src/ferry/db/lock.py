"""One migration run per database at a time.

The lock is session-level and held on its own connection, so the database releases it when
the process dies, and it never waits on (or blocks) the migration's own transactions, which
matters for `CREATE INDEX CONCURRENTLY`. No lock table exists that could outlive a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ferry.errors import LockTimeout

if TYPE_CHECKING:
    from ferry.db.adapter import Adapter


class LockSession:
    """A lock attempt on its own session. Subclasses: a connection, or a side file."""

    def try_acquire(self) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def holder(self) -> str | None:
        return None

    def close(self) -> None:
        raise NotImplementedError


class ConnectionLockSession(LockSession):
    """Advisory lock on a dedicated AUTOCOMMIT connection (PostgreSQL, MySQL)."""

    def __init__(self, adapter: Adapter, engine: Engine, key: str) -> None:
        self.adapter = adapter
        self.key = key
        # AUTOCOMMIT: the lock session must never sit inside an open transaction.
        self._conn: Connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._held = False

    def try_acquire(self) -> bool:
        self._held = self.adapter.try_lock(self._conn, self.key)
        return self._held

    def release(self) -> None:
        if self._held:
            self.adapter.unlock(self._conn, self.key)
            self._held = False

    def holder(self) -> str | None:
        found = self.adapter.lock_holder(self._conn, self.key)
        return found.description if found else None

    def close(self) -> None:
        try:
            self.release()
        finally:
            self._conn.close()


@contextmanager
def migration_lock(
    adapter: Adapter,
    engine: Engine,
    key: str,
    *,
    timeout: float,
    target: str,
    poll: float = 0.2,
) -> Iterator[None]:
    """Hold the target's migration lock for the duration of the block.

    Raises:
        LockTimeout: another process held it for longer than `timeout` seconds.
    """

    def busy(holder: str | None) -> LockTimeout:
        by = f": held by {holder}" if holder else ""
        return LockTimeout(
            f"target `{target}` is being migrated by another process{by}; waited {timeout:g} s",
            hint="wait for that run to finish, or raise `migrations.lock_timeout`",
        )

    with held_lock(adapter, engine, key, timeout=timeout, target=target, busy=busy, poll=poll):
        yield


@contextmanager
def held_lock(
    adapter: Adapter,
    engine: Engine,
    key: str,
    *,
    timeout: float,
    target: str,
    busy: Callable[[str | None], LockTimeout],
    poll: float = 0.2,
) -> Iterator[None]:
    """Hold the session lock `key` on `target` for the duration of the block; `busy` makes
    the error when another process held it for `timeout` seconds (it hears the holder)."""
    from ferry.db.target import connection_failed  # target imports this module

    try:
        session = adapter.open_lock_session(engine, key)
    except DBAPIError as error:
        raise connection_failed(
            target, engine.url.render_as_string(hide_password=True), error
        ) from error
    try:
        deadline = time.monotonic() + timeout
        while not session.try_acquire():
            if time.monotonic() >= deadline:
                raise busy(session.holder())
            time.sleep(poll)
        yield
    finally:
        session.close()
