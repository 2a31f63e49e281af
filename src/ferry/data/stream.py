"""Stream loading: one reader per table fills a bounded buffer; the loader flushes it when it
holds a batch's worth of rows or when the flush interval has passed.

The buffer's bound is the back-pressure: a reader faster than the target blocks instead of
filling memory. It reads in keyset pages (`key > last ORDER BY key LIMIT n`), one query each:
a single streamed query would not block, as connectorx reads its whole result ahead on its
own threads (a 250 MB table sat in memory while the target was busy). A page ends between
two keys, so does every flush; each commits its rows with a checkpoint naming the last key
flushed, and a resumed stream starts right after it. A table without a key has no order to
page or resume by: it is read and flushed whole, all or nothing, as a bulk copy's one chunk.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
from sqlalchemy import Select

from ferry.data.chunks import KeyRange
from ferry.data.extract import _unify, chunk_query, read_select
from ferry.data.tables import TablePlan
from ferry.db.target import Target

_END = object()


class BoundedReader:
    """Reads a key range in order on a thread into a queue of at most `capacity` batches."""

    def __init__(
        self,
        source: Target,
        plan: TablePlan,
        start: KeyRange,
        *,
        read_rows: int,
        capacity: int,
        extra: Any = None,
    ) -> None:
        self.source = source
        self.plan = plan
        self.start = start
        self.read_rows = read_rows
        self.extra = extra
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"ferry-read-{plan.name}", daemon=True
        )

    def __enter__(self) -> BoundedReader:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        while self.thread.is_alive():  # unblock a reader waiting on a full queue
            try:
                self.queue.get_nowait()
            except queue.Empty:
                time.sleep(0.01)

    def _batches(self) -> Iterator[pa.Table]:
        def ranged(lo: list[Any] | None, hi: list[Any] | None) -> Select[Any]:
            chunk = KeyRange(self.start.index, lo, hi)
            return chunk_query(self.source, self.plan, chunk, extra=self.extra)

        if not self.plan.key:
            yield read_select(self.source, ranged(None, None))
            return
        source_pk = [c.name for c in self.plan.source.primary_key.columns]
        unique = bool(source_pk) and set(source_pk) <= set(self.plan.key)
        yield from key_pages(
            self.source,
            ranged,
            self.plan.key,
            self.read_rows,
            self.start.lo,
            unique=unique,
            stopped=self.stopped.is_set,
        )

    def _put(self, item: Any) -> bool:
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for batch in self._batches():
                if batch.num_rows and not self._put(batch):
                    return
        except BaseException as error:  # handed to the loader thread
            self.error = error
        self._put(_END)

    def buffers(self, flush_rows: int, flush_interval: float) -> Iterator[pa.Table]:
        """Tables of about `flush_rows` rows, or fewer when `flush_interval` has passed; each
        ends between two keys (whole pages). A keyless table comes as one table."""
        pending: list[pa.Table] = []
        rows = 0
        since = time.monotonic()
        while True:
            wait = max(0.0, flush_interval - (time.monotonic() - since))
            try:
                item = self.queue.get(timeout=wait if pending else None)
            except queue.Empty:
                item = None
            if item is _END:
                if self.error is not None:
                    raise self.error
                if pending:
                    yield _joined(pending)
                return
            if item is not None:
                pending.append(item)
                rows += item.num_rows
            if pending and (rows >= flush_rows or time.monotonic() - since >= flush_interval):
                yield _joined(pending)
                pending, rows, since = [], 0, time.monotonic()


def _joined(pages: list[pa.Table]) -> pa.Table:
    # Pages read by the driver type an all-NULL column as null: promoted to the others'.
    return _unify(pa.concat_tables(pages, promote_options="permissive"))


def key_pages(
    source: Target,
    ranged: Callable[[list[Any] | None, list[Any] | None], Select[Any]],
    key: list[str],
    rows: int,
    lo: list[Any] | None,
    *,
    unique: bool,
    stopped: Callable[[], bool] = lambda: False,
) -> Iterator[pa.Table]:
    """The rows of `ranged(lo, None)` (a query in key order of the rows with lo < key <= hi)
    in pages of about `rows` rows, one query each, so a consumer that stops taking pages
    stops the reading. Each page ends between two keys. Where `key` is not `unique`, the
    database names the page's last key (its `rows`-th from `lo`) and the page is every row
    up to it: equal keys are the database's to judge ('a' and 'A' under a case-insensitive
    collation), and a key holding more rows than a page comes whole."""
    fast = True

    def unserved(_: str) -> None:
        nonlocal fast
        fast = False  # connectorx refused this query: the driver, without asking again

    def read(query: Select[Any]) -> pa.Table:
        return read_select(source, query, fast=fast, unserved=unserved)

    while not stopped():
        if unique:
            page = read(ranged(lo, None).limit(rows))
            if page.num_rows < rows:
                if page.num_rows:
                    yield page
                return
            last = [page[k][page.num_rows - 1].as_py() for k in key]
        else:
            following = ranged(lo, None)
            columns = [following.selected_columns[k] for k in key]
            with source.connect() as conn:
                bound = conn.execute(
                    following.with_only_columns(*columns).offset(rows - 1).limit(1)
                ).first()
            if bound is None:  # fewer rows than a page are left
                page = read(following)
                if page.num_rows:
                    yield page
                return
            last = list(bound)
            page = read(ranged(lo, last))
        yield page
        lo = last
