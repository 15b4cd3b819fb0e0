"""Committing one batch: the writer thread's database step, which no row can break.

``Committer.write(items)`` commits ``items`` in one transaction
(``batch.write_batch``) and returns, or raises ``Outage`` when the database
does not answer (``OUTAGE_ERRORS``: the rows are the caller's to keep).
Any other exception, whatever its type (SQLAlchemy's, or one the driver
raises unwrapped such as the ``UnicodeEncodeError`` of a lone surrogate on
SQLite, a ``ValueError``, a bug in the row conversion), means the database
refused something in the batch: each row is then retried on its own, and a
row refused alone is logged once with its ``result_id``, counted in
``refused`` and kept in the dead-letter file (``deadletter.py``). So one bad
row never costs the batch, the stream or the thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from sqlalchemy import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from monitor.catalog import CatalogEvent
from monitor.store.batch import write_batch
from monitor.store.deadletter import DeadLetter
from monitor.store.spool import Item

# In the "nexomon" tree: formatted, scrubbed of secrets, JSON when asked.
log = logging.getLogger("nexomon.store.writer")

OUTAGE_ERRORS = (OperationalError, InterfaceError, DisconnectionError, OSError)


class Outage(Exception):
    """The database did not answer; keep the rows and retry later."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, else its type name (log-friendly)."""
    line = (str(exc).splitlines() or [type(exc).__name__])[0]
    # Errors can quote the row (a lone surrogate included): keep the line encodable.
    return line.encode("utf-8", "backslashreplace").decode("utf-8")


class Committer:
    """Commits batches for one writer thread and keeps its write counters."""

    def __init__(
        self,
        engine: Engine,
        dead_letter: DeadLetter,
        *,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.dead_letter = dead_letter
        self.on_catalog_events: Callable[[list[CatalogEvent]], None] | None = None
        # target -> max_models, bounding each listing's catalog events (batch.py).
        self.catalog_limits: Mapping[str, int] | None = None
        # Called after every commit: the writer's heartbeat.
        self._on_commit = on_commit
        self.written = 0
        self.errors = 0
        self.refused = 0

    def write(self, items: list[Item]) -> None:
        """Commit ``items``; raises Outage when the database is away, nothing else."""
        try:
            with self.engine.begin() as conn:
                inserted, events = write_batch(conn, items, self.catalog_limits)
        except OUTAGE_ERRORS as exc:
            self.errors += 1
            raise Outage(first_line(exc)) from exc
        except Exception as exc:  # any type: the database refused a row of the batch
            self.errors += 1
            if len(items) == 1:
                self._refuse(items[0], exc)
                return
            for item in items:
                self.write([item])
            return
        self.written += inserted
        self._on_commit()
        if events and self.on_catalog_events is not None:
            try:
                self.on_catalog_events(events)
            except Exception:  # a metrics callback must never stop the writer
                log.exception("on_catalog_events callback failed")

    def _refuse(self, item: Item, exc: Exception) -> None:
        self.refused += 1
        reason = f"{type(exc).__name__}: {first_line(exc)}"
        if self.dead_letter.append(item, reason):
            log.error(
                "database refused result %s, kept in %s: %s",
                item[0],
                self.dead_letter.path,
                reason,
            )
