"""Stream loading: one reader per table fills a bounded buffer; the loader flushes it when it
holds a batch's worth of rows or when the flush interval has passed.

The buffer's bound is the back-pressure: a reader faster than the target blocks instead of
filling memory. Each flush commits its rows with a checkpoint naming the last key flushed, so
a resumed stream starts right after it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ferry.data.chunks import KeyRange
from ferry.data.extract import _unify, chunk_query, stream_select
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

    def _batches(self) -> Iterator[pa.RecordBatch]:
        query = chunk_query(self.source, self.plan, self.start, extra=self.extra)
        yield from stream_select(self.source, query, self.read_rows)

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
        """Tables of about `flush_rows` rows, or fewer when `flush_interval` has passed."""
        pending: list[pa.RecordBatch] = []
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
                    yield _unify(pa.Table.from_batches(pending))
                return
            if item is not None:
                pending.append(item)
                rows += item.num_rows
            if pending and (rows >= flush_rows or time.monotonic() - since >= flush_interval):
                yield _unify(pa.Table.from_batches(pending))
                pending, rows, since = [], 0, time.monotonic()
