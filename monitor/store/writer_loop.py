"""The writer thread's side of ResultWriter: its rounds, flushes, spills and guard.

``WriterLoop`` is a base class of ``monitor.store.writer.ResultWriter``
(split out by size; it holds no state of its own: the attributes below are
ResultWriter's, set in its ``__init__``). Everything here runs on the
``nexomon-writer`` thread, or in ``close()`` once that thread has stopped.

Contracts: ``_run`` never lets an exception escape to ``threading.excepthook``
(an ``Exception`` is logged and counted by ``_guarded``, and the loop goes on
after a pause that doubles up to ``retry_max``; anything else, such as
``SystemExit``, ends the thread with a critical log line, which
``ResultWriter.health()`` then reports). A batch leaves the buffer only into
the database, the dead-letter file or the spool; on an outage or a bug it
goes back to the buffer's head.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from monitor.store.commit import Committer, Outage
from monitor.store.spool import Item, Spool
from monitor.store.writer_state import JournalKeeper

# In the "nexomon" tree: formatted, scrubbed of secrets, JSON when asked.
log = logging.getLogger("nexomon.store.writer")


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class WriterLoop:
    """The thread body of ResultWriter (see the module docstring)."""

    spool: Spool
    batch_size: int
    flush_interval: float
    retry_max: float
    _cond: threading.Condition
    _buffer: deque[Item]
    _committer: Committer
    _keeper: JournalKeeper | None
    _prepare: Callable[[], None] | None
    _inflight: int
    _spooled: int
    _closing: bool
    _final_flush_done: bool
    _errors: int
    _loop_errors: int
    _db_down: bool
    _backoff: float
    _retry_at: float
    _spool_unreadable: bool
    _error_pause: float
    _beat_at: float

    def _beat(self) -> None:
        self._beat_at = time.monotonic()

    def _first_backoff(self) -> float:
        return min(self.flush_interval, self.retry_max) or 0.1

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:  # SystemExit & co.: Exceptions never get here
            # Logged here, not by threading.excepthook: formatted and scrubbed.
            log.critical("store writer thread stopped; rows are no longer written", exc_info=True)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._closing:
                    wait = self.flush_interval
                    if self._keeper is not None:
                        wait = min(wait, self._keeper.fsync_interval)
                    if self._db_down:
                        wait = max(0.0, min(wait, self._retry_at - time.monotonic()))
                    self._cond.wait_for(
                        lambda: self._closing or len(self._buffer) >= self.batch_size, wait
                    )
                closing = self._closing
            self._beat()
            if closing:
                self._guarded(self._final_flush)
                return
            self._guarded(self._round)

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run ``step``; an exception is logged, counted, and followed by a pause so
        a persistent bug does not spin (cut short by ``close()``)."""
        try:
            step()
            self._error_pause = 0.1
        except Exception:
            self._loop_errors += 1
            log.exception("store writer: unexpected error, carrying on")
            pause = self._error_pause
            self._error_pause = min(pause * 2, max(self.retry_max, 0.1))
            with self._cond:
                self._cond.wait_for(lambda: self._closing, pause)

    def _round(self) -> None:
        if self._keeper is not None:
            self._keeper.sync()
        if self._db_down and time.monotonic() < self._retry_at:
            self._spill()
            return
        if self._flush():
            self._db_down = False
            self._backoff = self._first_backoff()
        else:
            self._db_down = True
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self.retry_max)
            self._spill()

    def _final_flush(self) -> None:
        if not self._flush():
            self._db_down = True
            self._spill()
        self._final_flush_done = True

    def _flush(self) -> bool:
        """Write the spool, then the buffer; False at the first outage."""
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception as exc:  # any failure: keep the rows, retry with backoff
                self._errors += 1
                log.warning("database not ready, keeping rows: %s", exc)
                return False
            self._prepare = None
        try:
            self._replay_spool()
            self._seal()
            while True:
                with self._cond:
                    batch = [
                        self._buffer.popleft()
                        for _ in range(min(self.batch_size, len(self._buffer)))
                    ]
                    self._inflight = len(batch)
                if not batch:
                    self._release(0)
                    return True
                try:
                    self._committer.write(batch)
                except BaseException:  # an outage or a bug: the rows stay ours
                    with self._cond:
                        self._buffer.extendleft(reversed(batch))
                        self._inflight = 0
                    raise
                self._inflight = 0
                self._release(len(batch))
        except Outage as exc:
            log.warning("database unavailable, keeping rows: %s", exc)
            return False

    def _replay_spool(self) -> None:
        """Commit the spool's rows, then remove it; an unreadable spool waits (logged
        once), so it cannot stop new rows. Raises Outage."""
        try:
            if not self.spool.exists():
                return
            for chunk in _chunks(self.spool.read(), self.batch_size):
                self._committer.write(chunk)
            self.spool.clear()
        except OSError as exc:  # the file, not the database (that is an Outage)
            self._errors += 1
            if not self._spool_unreadable:
                log.error("cannot read the spool %s, its rows wait there: %s", self.spool.path, exc)
            self._spool_unreadable = True
            return
        self._spool_unreadable = False
        self._spooled = 0

    def _seal(self) -> None:
        """Rotate the journal: every row now in the buffer is in a sealed segment."""
        if self._keeper is not None:
            segment = self._keeper.fresh_segment()
            with self._cond:
                self._keeper.seal(segment, len(self._buffer))

    def _release(self, done: int) -> None:
        """``done`` rows from the buffer's head are safe; free the journal if it can."""
        if self._keeper is not None:
            self._keeper.release(done)

    def _spill(self) -> None:
        """Move the in-memory buffer to the spool (kept in memory if the disk fails)."""
        segment = self._keeper.fresh_segment() if self._keeper is not None else None
        with self._cond:
            items = list(self._buffer)
            self._buffer.clear()
            if self._keeper is not None:
                self._keeper.seal(segment, len(items))
        if items:
            try:
                self._spooled += self.spool.append(items)
            except Exception as exc:  # the disk, or a value JSON cannot hold: keep them all
                self._errors += 1
                log.error("cannot write spool %s, keeping rows in memory: %s", self.spool.path, exc)
                with self._cond:
                    self._buffer.extendleft(reversed(items))
                return
            self._beat()
        self._release(len(items))
