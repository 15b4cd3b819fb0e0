"""The 24-hour window of ``/api/v1/status``, computed at most once a minute and served from cache.

At 10,000 models the window is a query over every job's day of rows and a
~10 MB answer: ~1-3 s of work. A 24-hour availability does not move in a
minute, so the daemon keeps the last one (stale-while-revalidate, as HTTP
caches do):

- ``StatusWindow.rows(now)`` returns ``(computed_at, rows)``, ``rows`` the
  JSON array of ``StatusRow.to_json()`` objects, encoded (kept as bytes:
  ~5 MB at 10,000 models, where the dicts took ~20 MB). The first call
  computes in the caller's thread (a worker thread of the web server, never
  the event loop). Later calls return the cached rows at once; when they are
  older than ``max_age_s`` one background thread recomputes them for the
  next caller (one at a time, never a pile of them).
- A failed query logs a warning and keeps the previous rows (``[]`` when
  there are none); it never raises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from monitor.daemon.jsonbody import encode
from monitor.store import queries
from monitor.store.startup import Store

log = logging.getLogger("nexomon.daemon")

WINDOW = timedelta(hours=24)
MAX_AGE_S = 60.0
EMPTY = b"[]"


class StatusWindow:
    """The cached ``window_24h`` of one daemon's store (see the module docstring)."""

    def __init__(
        self,
        store: Callable[[], Store | None],
        *,
        now: Callable[[], datetime],
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        """``store`` returns the open store or None (not open yet, or closed)."""
        self._store = store
        self._now = now
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._cached: tuple[datetime, bytes] | None = None
        self._refreshing = False

    def rows(self, now: datetime) -> tuple[datetime | None, bytes]:
        """``(computed_at, rows)``; ``(None, b"[]")`` without a store."""
        with self._lock:
            cached = self._cached
            stale = cached is not None and (now - cached[0]).total_seconds() > self.max_age_s
            start = stale and not self._refreshing
            if start:
                self._refreshing = True
        if cached is None:
            return self._compute(now)
        if start:
            threading.Thread(target=self._refresh, name="nexomon-status", daemon=True).start()
        return cached

    def _refresh(self) -> None:
        try:
            self._compute(self._now())
        finally:
            with self._lock:
                self._refreshing = False

    def _compute(self, now: datetime) -> tuple[datetime | None, bytes]:
        store = self._store()
        if store is None:
            return None, EMPTY
        try:
            with Session(store.engine) as session:
                summary = queries.status_summary(session, now - WINDOW)
            rows = encode([row.to_json() for row in summary])
        except Exception as exc:  # any driver error: keep what we had
            log.warning("status: database query failed: %s", type(exc).__name__)
            with self._lock:
                return self._cached or (None, EMPTY)
        with self._lock:
            if self._cached is None or self._cached[0] <= now:
                self._cached = (now, rows)
            return self._cached
