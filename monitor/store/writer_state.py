"""The ResultWriter's bookkeeping: its journal (``JournalKeeper``) and its exit summary.

``JournalKeeper`` decides, for one writer, when ``submit`` may append to the
journal, which rows a sealed segment still waits for, when to fsync, what
to do with the journals of stopped writers, and whether the journal can be
deleted at close. Thread use: ``append`` runs under the writer's lock on
any thread (the event loop), ``seal`` under the lock on the writer thread,
everything else on the writer thread, or in ``close`` once it has stopped.

The rule that makes deleting safe: ``seal(segment, rows)`` is called, under
the writer's lock, with the number of rows then in the buffer, so those
rows are exactly the ones whose lines are in sealed segments (rows leave
the buffer from its head, and only into the database or the spool);
``release(done)`` counts them off as they are committed or spooled and
deletes the sealed segments once none is left.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from monitor.store.journal import Journal, Segment
from monitor.store.spool import Item, Spool

# In the "nexomon" tree: formatted, scrubbed of secrets, JSON when asked.
log = logging.getLogger("nexomon.store.writer")


@dataclass(frozen=True)
class CloseSummary:
    """What a closed writer leaves behind, for the exit message.

    ``left``: rows on disk for the next start (the spool, or the journal when
    even the spool could not be written); ``refused``: rows the database
    refused, in ``dead_letter``; ``dropped``: rows ``submit`` turned away;
    ``lost``: rows that were only in memory.
    """

    written: int
    left: int
    refused: int
    dropped: int
    lost: int
    dead_letter: Path

    @property
    def clean(self) -> bool:
        return not (self.left or self.refused or self.dropped or self.lost)

    def __str__(self) -> str:
        text = f"{self.written} rows written, {self.left} left in the spool, {self.refused} refused"
        if self.dropped:
            text += f", {self.dropped} dropped"
        if self.lost:
            text += f", {self.lost} lost"
        if self.refused:
            text += f" (refused rows are kept in {self.dead_letter})"
        return text


class JournalKeeper:
    """One writer's use of its ``Journal`` (see the module docstring)."""

    def __init__(self, journal: Journal, spool: Spool, fsync_interval: float) -> None:
        self.journal = journal
        self.spool = spool
        self.fsync_interval = fsync_interval
        # True while submit appends; False until open(), and after a failed
        # write until a fresh segment is installed (the old one may end torn).
        self.journaling = False
        self.unjournaled = 0
        self._opened = False
        self._ever_opened = False
        self._sealed_left = 0
        self._synced_at = time.monotonic()
        self._failing = False
        self._write_failing = False

    def _trouble(self, what: str, exc: BaseException) -> None:
        if not self._failing:  # once per streak: a full disk fails every round
            log.error("%s, results are in memory only until it works again: %s", what, exc)
        self._failing = True

    def open(self) -> list[Item]:
        """Open the journal and move what stopped writers left in theirs to the spool.

        Returns the items it could not spool (their segments are kept): the
        caller writes them from memory.
        """
        try:
            self.journal.open()
        except OSError as exc:
            log.error(
                "cannot open the results journal in %s, a crash can lose up to a flush"
                " interval of results: %s",
                self.journal.directory,
                exc,
            )
            return []
        self._opened = self._ever_opened = self.journaling = True
        try:
            leftovers = self.journal.claim_leftovers()
        except OSError as exc:
            log.error("cannot read the journals left in %s: %s", self.journal.directory, exc)
            return []
        items: list[Item] = []
        try:
            items = list(leftovers.items())
            if items:
                self.spool.append(items)
        except OSError as exc:
            leftovers.release(delete=False)
            log.error("cannot move journaled results to the spool, writing them now: %s", exc)
            return items
        leftovers.release(delete=True)
        if items:
            log.info(
                "%d result(s) left in the journal by a stopped process go to the spool", len(items)
            )
        return []

    def append(self, line: bytes | None) -> str | None:
        """Journal one row's line (caller holds the writer's lock). Returns the error
        text to log when a write fails, once per streak of failures (a full disk
        fails again after every rotation). A row without a line is counted in
        ``unjournaled``."""
        if line is None or not self.journaling:
            self.unjournaled += 1
            return None
        try:
            self.journal.append(line)
        except OSError as exc:
            self.journaling = False
            self.unjournaled += 1
            first, self._write_failing = not self._write_failing, True
            return str(exc) if first else None
        self._write_failing = False
        return None

    def fresh_segment(self) -> Segment | None:
        """The next segment to install, or None when the current one can stay (it is
        empty and healthy) or no new file can be made (logged)."""
        if not self._opened:
            return None
        current = self.journal.current
        if current is not None and current.size == 0 and self.journaling:
            return None
        try:
            return self.journal.new_segment()
        except OSError as exc:
            self._trouble("cannot rotate the results journal", exc)
            return None

    def seal(self, segment: Segment | None, rows: int) -> None:
        """Install ``segment`` (if any); ``rows`` = rows now in the buffer (under the lock)."""
        if segment is not None:
            self.journal.install(segment)
            self.journaling = True
            self._failing = False
        self._sealed_left = rows

    def release(self, done: int) -> None:
        """``done`` more rows from the buffer's head are committed or spooled."""
        self._sealed_left -= done
        if self._sealed_left <= 0 and self.journal.has_sealed:
            try:
                self.journal.release_sealed()
            except OSError as exc:
                log.warning("cannot remove a results journal segment: %s", exc)

    def sync(self) -> None:
        """fsync the journal when ``fsync_interval`` has passed since the last time."""
        now = time.monotonic()
        if not self._opened or now - self._synced_at < self.fsync_interval:
            return
        self._synced_at = now
        try:
            self.journal.sync()
        except OSError as exc:
            self._trouble("cannot fsync the results journal", exc)

    def close(self, *, rows_in_memory: int) -> None:
        """Close the journal: deleted when no row is left in memory, else kept for the
        next start (the process is about to lose those rows otherwise)."""
        if not self._opened:
            return
        self._opened = self.journaling = False
        try:
            self.journal.close(delete=rows_in_memory == 0)
        except OSError as exc:
            log.warning("cannot close the results journal: %s", exc)

    def lost_of(self, in_memory: int) -> int:
        """How many of ``in_memory`` rows exist nowhere else (no journal line)."""
        return min(in_memory, self.unjournaled) if self._ever_opened else in_memory
