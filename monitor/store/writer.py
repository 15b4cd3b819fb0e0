"""ResultWriter: batches results into the database on its own thread, and loses nothing.

``submit()`` never blocks on the database. It gives the result a unique
``result_id``, appends it as one line to the journal (``journal.py``: one
OS write, no fsync) and then to an in-memory buffer (bounded by
``max_buffer``; beyond it rows are dropped and counted). The writer thread
commits a batch when ``batch_size`` rows are waiting or every
``flush_interval`` seconds, deletes a journal segment once every row in it
is committed or spooled, and fsyncs the journal every ``fsync_interval``.
So a killed process (``kill -9``) loses no result it accepted: the next
writer on the same folder moves what is left of the journal to the spool.
A power loss can lose the results of the last ``fsync_interval``.

When the database is unreachable the failed batch goes back to the head of
the buffer and the whole buffer spills to the on-disk spool (``spool.py``,
beside the data); while the outage lasts new rows keep spilling there, and
the database is retried with exponential backoff up to ``retry_max``
seconds. An optional ``prepare`` callable (the deferred migration of a
daemon that started while the database was down) runs before the first
write; until it succeeds, rows are kept the same way. When the database
answers again the spool is written back first, in order, then the buffer.
The insert skips ``result_id``s already present, so replaying the spool or
the journal after a crash cannot duplicate a row.

The thread never dies of a row or a bug: a row the database refuses, with
any exception type, is isolated (``commit.py``: retried alone, logged,
counted in ``refused_total``, kept in the dead-letter file); any other
exception in the loop is logged, counted in ``loop_errors_total``, and the
loop goes on after a pause (doubling up to ``retry_max``). ``health()``
says why the writer is not working (thread dead, or stalled with rows
pending) for ``/readyz``; ``close()`` flushes everything to the database,
or to the spool if the database is down, and returns what it left behind.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from itertools import count
from pathlib import Path

from sqlalchemy import Engine

from monitor.catalog import CatalogEvent
from monitor.results import ProbeResult
from monitor.store.commit import OUTAGE_ERRORS, Committer
from monitor.store.deadletter import DeadLetter
from monitor.store.journal import Journal, encode_entry
from monitor.store.spool import Item, Spool
from monitor.store.writer_loop import WriterLoop
from monitor.store.writer_state import CloseSummary, JournalKeeper

__all__ = ["OUTAGE_ERRORS", "CloseSummary", "ResultWriter"]

# In the "nexomon" tree: formatted, scrubbed of secrets, JSON when asked.
log = logging.getLogger("nexomon.store.writer")


class ResultWriter(WriterLoop):
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
        journal: bool = True,
        fsync_interval: float = 1.0,
        stall_after: float | None = None,
    ) -> None:
        self.engine = engine
        self.spool = Spool(Path(spool_dir))
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.retry_max = retry_max
        # /readyz: three of the longest waits of a working loop, plus slack for a slow commit.
        self.stall_after = (
            3 * max(flush_interval, retry_max) + 10 if stall_after is None else stall_after
        )
        self._committer = Committer(engine, DeadLetter(self.spool.directory), on_commit=self._beat)
        self._committer.on_catalog_events = on_catalog_events
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
        # next() on itertools.count is atomic under the GIL: no lock needed.
        self._id_prefix = os.urandom(10).hex()
        self._id_counter = count()
        self._keeper = (
            JournalKeeper(
                Journal(self.spool.directory, self._id_prefix), self.spool, fsync_interval
            )
            if journal
            else None
        )
        self._inflight = 0
        self._spooled = 0
        self._closing = False
        self._final_flush_done = False
        self._thread: threading.Thread | None = None
        self._errors = 0
        self._dropped = 0
        self._loop_errors = 0
        self._db_down = False
        self._beat_at = time.monotonic()
        self._backoff = self._first_backoff()
        self._retry_at = 0.0
        self._spool_unreadable = False
        self._error_pause = 0.1

    # -- counters for nexomon_store_* -------------------------------------------------
    @property
    def pending(self) -> int:
        """Rows accepted but not yet committed (memory, in flight and spool)."""
        return len(self._buffer) + self._inflight + self._spooled

    @property
    def written_total(self) -> int:
        return self._committer.written

    @property
    def errors_total(self) -> int:
        return self._errors + self._committer.errors

    @property
    def dropped_total(self) -> int:
        """Rows ``submit`` turned away (buffer full, or the writer closing)."""
        return self._dropped

    @property
    def refused_total(self) -> int:
        """Rows the database refused on their own (in the dead-letter file)."""
        return self._committer.refused

    @property
    def loop_errors_total(self) -> int:
        """Unexpected exceptions the writer thread caught and survived (bugs)."""
        return self._loop_errors

    @property
    def unjournaled_total(self) -> int:
        """Rows accepted without a journal line (not safe from a kill until written)."""
        return self._keeper.unjournaled if self._keeper is not None else 0

    @property
    def database_down(self) -> bool:
        return self._db_down

    @property
    def dead_letter_path(self) -> Path:
        return self._committer.dead_letter.path

    @property
    def on_catalog_events(self) -> Callable[[list[CatalogEvent]], None] | None:
        return self._committer.on_catalog_events

    @on_catalog_events.setter
    def on_catalog_events(self, callback: Callable[[list[CatalogEvent]], None] | None) -> None:
        self._committer.on_catalog_events = callback

    @property
    def catalog_limits(self) -> Mapping[str, int] | None:
        """target -> max_models, bounding each listing's catalog events (batch.py)."""
        return self._committer.catalog_limits

    @catalog_limits.setter
    def catalog_limits(self, limits: Mapping[str, int] | None) -> None:
        self._committer.catalog_limits = limits

    # -- health, for /readyz -----------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def heartbeat(self) -> float:
        """``time.monotonic()`` of the thread's last loop round or commit."""
        return self._beat_at

    def health(self) -> str | None:
        """None while the writer works, else why not: never started, dead, or
        stalled (no round or commit for ``stall_after`` seconds with rows pending)."""
        if self._thread is None:
            return "store writer not started"
        if not self._thread.is_alive():
            return "store writer stopped" if self._closing else "store writer thread is dead"
        idle = time.monotonic() - self._beat_at
        pending = self.pending
        if pending and idle > self.stall_after:
            return f"store writer stalled: no progress for {idle:.1f}s, {pending} rows pending"
        return None

    # -- producer side -------------------------------------------------------------------
    def submit(self, result: ProbeResult) -> None:
        """Queue one result (thread-safe, never blocks on the database).

        With the journal open the result is on disk (one OS write) before it is
        in the buffer. One that cannot be journaled (it does not serialize, the
        disk is full) is kept in memory all the same, logged and counted.
        """
        result_id = f"{self._id_prefix}{next(self._id_counter):012x}"
        keeper = self._keeper
        line: bytes | None = None
        if keeper is not None and keeper.journaling:
            try:  # serialized before taking the lock: the writer thread waits less
                line = encode_entry(result_id, result)
            except Exception as exc:  # a value JSON cannot hold: a bug, not a lost row
                log.error("cannot journal result %s, kept in memory only: %s", result_id, exc)
        with self._cond:
            if self._closing or len(self._buffer) >= self.max_buffer:
                self._dropped += 1
                log.warning("store buffer full or writer closed: result dropped")
                return
            failure = keeper.append(line) if keeper is not None else None
            self._buffer.append((result_id, result))
            if len(self._buffer) >= self.batch_size:
                self._cond.notify()
        if failure is not None:
            log.error("cannot write the results journal, rows are in memory only: %s", failure)

    def start(self) -> None:
        """Start the writer thread; it first replays any spool (and journal) left behind."""
        if self._thread is not None:
            return
        if self._keeper is not None:
            stranded = self._keeper.open()
            with self._cond:  # rows it could not move to the spool: written from memory
                self._buffer.extendleft(reversed(stranded))
        try:
            self._spooled = sum(1 for _ in self.spool.read()) if self.spool.exists() else 0
        except OSError as exc:
            log.error("cannot read the spool %s: %s", self.spool.path, exc)
        self._thread = threading.Thread(target=self._run, name="nexomon-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30) -> CloseSummary:
        """Flush everything (to the database, else to the spool), stop the thread, and
        say what is left: rows written, left in the spool or journal, refused, lost."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if thread is not None and thread.is_alive():
            log.error(
                "store writer did not stop within %.0fs; %d rows pending", timeout, self.pending
            )
        else:
            if not self._final_flush_done:  # never started, or the thread died: flush here
                self._guarded(self._final_flush)
            if self._keeper is not None:
                self._keeper.close(rows_in_memory=len(self._buffer) + self._inflight)
        return self.summary()

    def summary(self) -> CloseSummary:
        """What the writer has done and left so far (``close()``'s answer)."""
        in_memory = len(self._buffer) + self._inflight
        # Rows in memory are in the journal unless it failed for some of them.
        lost = in_memory if self._keeper is None else self._keeper.lost_of(in_memory)
        return CloseSummary(
            written=self.written_total,
            left=self._spooled + in_memory - lost,
            refused=self.refused_total,
            dropped=self._dropped,
            lost=lost,
            dead_letter=self.dead_letter_path,
        )
