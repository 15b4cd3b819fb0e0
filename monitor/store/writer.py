"""ResultWriter: batches results into the database on its own thread, and loses nothing.

``submit()`` never blocks on the database: it appends to an in-memory
buffer (bounded by ``max_buffer``; beyond it rows are dropped and counted).
The writer thread commits a batch when ``batch_size`` rows are waiting or
every ``flush_interval`` seconds.

When the database is unreachable the failed batch goes back to the head of
the buffer and the whole buffer spills to the on-disk spool (``spool.py``,
beside the data); while the outage lasts new rows keep spilling there, and
the database is retried with exponential backoff up to ``retry_max``
seconds. An optional ``prepare`` callable (the deferred migration of a
daemon that started while the database was down) runs before the first
write; until it succeeds, rows are kept the same way. When the database
answers again the spool is written back first, in order, then the buffer.
Each result gets a unique ``result_id`` at submit time and the insert skips
ids already present, so a crash between a commit and the spool's removal
cannot duplicate a row. A new writer replays any spool left by an earlier
process before anything else. ``close()`` flushes everything to the
database, or to the spool if the database is down.

Errors that are not an outage (a row the database rejects) are retried row
by row; a row rejected on its own is dropped, logged and counted, so one bad
row cannot block the stream.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import count, islice
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError

from monitor.catalog import CatalogEvent
from monitor.results import ProbeResult
from monitor.store.batch import write_batch
from monitor.store.spool import Item, Spool

# In the "nexomon" tree: formatted, scrubbed of secrets, JSON when asked.
log = logging.getLogger("nexomon.store.writer")

OUTAGE_ERRORS = (OperationalError, InterfaceError, DisconnectionError, OSError)


class _Outage(Exception):
    """The database did not answer; keep the rows and retry later."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class ResultWriter:
    """The one path from ProbeResults to ``probe_results`` (and the catalog)."""

    def __init__(
        self,
        engine: Engine,
        *,
        spool_dir: Path,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        max_buffer: int = 100_000,
        retry_max: float = 5.0,
        on_catalog_events: Callable[[list[CatalogEvent]], None] | None = None,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.spool = Spool(Path(spool_dir))
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.retry_max = retry_max
        self.on_catalog_events = on_catalog_events
        # Run once before the first write (the daemon's deferred migration when
        # the database was down at startup); until it succeeds rows are kept.
        self._prepare = prepare
        self._cond = threading.Condition()
        self._buffer: deque[Item] = deque()
        # result_id: 80 random bits per writer + a 48-bit counter (32 hex, the
        # column's width): unique within a process by construction, across
        # processes by the random part. Not uuid4(): its os.urandom() call
        # releases the GIL on the event loop, which then waits for the writer
        # or /metrics thread to hand it back (profiled at ~2 % of samples).
        self._id_prefix = os.urandom(10).hex()
        self._id_counter = count()
        self._inflight = 0
        self._spooled = 0
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._written = 0
        self._errors = 0
        self._dropped = 0
        self._db_down = False

    # -- counters for nexomon_store_* -------------------------------------------------
    @property
    def pending(self) -> int:
        """Rows accepted but not yet committed (memory, in flight and spool)."""
        return len(self._buffer) + self._inflight + self._spooled

    @property
    def written_total(self) -> int:
        return self._written

    @property
    def errors_total(self) -> int:
        return self._errors

    @property
    def dropped_total(self) -> int:
        return self._dropped

    @property
    def database_down(self) -> bool:
        return self._db_down

    # -- producer side -------------------------------------------------------------------
    def submit(self, result: ProbeResult) -> None:
        """Queue one result (thread-safe, never blocks on the database)."""
        with self._cond:
            if self._closed or len(self._buffer) >= self.max_buffer:
                self._dropped += 1
                log.warning("store buffer full or writer closed: result dropped")
                return
            self._buffer.append((f"{self._id_prefix}{next(self._id_counter):012x}", result))
            if len(self._buffer) >= self.batch_size:
                self._cond.notify()

    def start(self) -> None:
        """Start the writer thread; it first replays any spool left behind."""
        if self._thread is not None:
            return
        self._spooled = sum(1 for _ in self.spool.read()) if self.spool.exists() else 0
        self._thread = threading.Thread(target=self._run, name="nexomon-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30) -> None:
        """Flush everything (to the database, else to the spool) and stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is None:
            self._final_flush()
        else:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error(
                    "store writer did not stop within %.0fs; %d rows pending", timeout, self.pending
                )
        with self._cond:
            self._closed = True

    # -- writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        backoff = min(self.flush_interval, self.retry_max) or 0.1
        retry_at = 0.0
        while True:
            with self._cond:
                if not self._closing:
                    wait = self.flush_interval
                    if self._db_down:
                        wait = max(0.0, min(wait, retry_at - time.monotonic()))
                    self._cond.wait_for(
                        lambda: self._closing or len(self._buffer) >= self.batch_size, wait
                    )
                closing = self._closing
            if closing:
                self._final_flush()
                return
            if self._db_down and time.monotonic() < retry_at:
                self._spill()
                continue
            if self._flush():
                self._db_down = False
                backoff = min(self.flush_interval, self.retry_max) or 0.1
            else:
                self._db_down = True
                retry_at = time.monotonic() + backoff
                backoff = min(backoff * 2, self.retry_max)
                self._spill()

    def _final_flush(self) -> None:
        if not self._flush():
            self._db_down = True
            self._spill()

    def _flush(self) -> bool:
        """Write the spool, then the buffer; False at the first outage."""
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception as exc:  # any failure: keep the rows, retry with backoff
                self._errors += 1
                log.warning("database not ready, keeping rows: %s", _first_line(exc))
                return False
            self._prepare = None
        try:
            if self.spool.exists():
                for chunk in _chunks(self.spool.read(), self.batch_size):
                    self._write(chunk)
                self.spool.clear()
                self._spooled = 0
            while True:
                with self._cond:
                    batch = [
                        self._buffer.popleft()
                        for _ in range(min(self.batch_size, len(self._buffer)))
                    ]
                    self._inflight = len(batch)
                if not batch:
                    return True
                try:
                    self._write(batch)
                except _Outage:
                    with self._cond:
                        self._buffer.extendleft(reversed(batch))
                    raise
                finally:
                    self._inflight = 0
        except _Outage as exc:
            log.warning("database unavailable, keeping rows: %s", exc)
            return False

    def _write(self, items: list[Item]) -> None:
        """Commit ``items`` in one transaction; raises _Outage when the DB is away."""
        try:
            with self.engine.begin() as conn:
                inserted, events = write_batch(conn, items)
        except OUTAGE_ERRORS as exc:
            self._errors += 1
            raise _Outage(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        except SQLAlchemyError as exc:
            self._errors += 1
            if len(items) == 1:
                self._dropped += 1
                log.error(
                    "database rejected result %s, dropped: %s",
                    items[0][0],
                    str(exc).splitlines()[0],
                )
                return
            for item in items:
                self._write([item])
            return
        self._written += inserted
        if events and self.on_catalog_events is not None:
            try:
                self.on_catalog_events(events)
            except Exception:  # a metrics callback must never stop the writer
                log.exception("on_catalog_events callback failed")

    def _spill(self) -> None:
        """Move the in-memory buffer to the spool (kept in memory if the disk fails)."""
        with self._cond:
            items = list(self._buffer)
            self._buffer.clear()
        if not items:
            return
        try:
            self._spooled += self.spool.append(items)
        except OSError as exc:
            self._errors += 1
            log.error("cannot write spool %s, keeping rows in memory: %s", self.spool.path, exc)
            with self._cond:
                self._buffer.extendleft(reversed(items))
