"""The 24-hour window of ``/api/v1/status``, kept fresh in the background while it is asked for.

The sums come from ``monitor.store.status_tally.WindowTally``, which reads
the day once and then only the rows added since (the window runs from the
top of the hour 24 hours ago). Encoding 10,000 rows (~10 MB with each last
result) is still a few tenths of a second, and a 24-hour availability does
not move in a minute, so the answer is computed off the request path, as a
status page's figures are:

- ``StatusWindow.rows(now)`` returns ``(computed_at, rows)``, ``rows`` the
  JSON array of ``StatusRow.to_json()`` objects, encoded (kept as bytes:
  the dicts took twice as much). The first call computes in the caller's
  thread (a worker thread of the web server, never the event loop) and
  starts the keeper; every later call returns the cached rows at once.
- The keeper, one background thread, recomputes them ``max_age_s`` after the
  last attempt, so a request never waits for them nor runs beside a
  recomputation it started (with the refresh a request used to start, the
  10,000-model status answer took twice as long, 0.3 -> 0.6 s). It stops
  after ``idle_s`` without a request; the next request restarts it and is
  answered with the rows it left, however old (``window_24h_at`` says).
- A failed query logs a warning and keeps the previous rows (``[]`` when
  there are none); it never raises. The tally then starts again.
- ``close()`` stops the keeper (the daemon's shutdown).
- ``warm``, when given, is called by the keeper every ``warm_every_s``
  between two recomputations (the daemon passes the refresh of the last
  results' encodings, monitor.daemon.jsonbody.ResultsJson.refresh). With
  chat every 60 s at 10,000 models every last result changes between two
  requests a minute apart, and each request encoded all 10,000 (p50
  0.64 s); warmed every 5 s, a request finds at most 5 s of them. It costs
  what the requests would have spent, and only while someone asks. A
  ``warm`` that raises logs a warning and the keeper goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from monitor.daemon.jsonbody import json_array
from monitor.store.startup import Store
from monitor.store.status_tally import WindowTally

log = logging.getLogger("nexomon.daemon")

MAX_AGE_S = 60.0
WARM_EVERY_S = 5.0
IDLE_S = 600.0  # a keeper with nobody asking stops: its query is a CPU cost at 10,000 models
EMPTY = b"[]"


class StatusWindow:
    """The cached ``window_24h`` of one daemon's store (see the module docstring)."""

    def __init__(
        self,
        store: Callable[[], Store | None],
        *,
        now: Callable[[], datetime],
        max_age_s: float = MAX_AGE_S,
        idle_s: float = IDLE_S,
        warm: Callable[[], object] | None = None,
        warm_every_s: float = WARM_EVERY_S,
    ) -> None:
        """``store`` returns the open store or None (not open yet, or closed)."""
        self._store = store
        self._now = now
        self.max_age_s = max_age_s
        self.idle_s = idle_s
        self._warm = warm
        self.warm_every_s = warm_every_s
        self._warmed = 0.0  # time.monotonic() of the last warm() call
        self._lock = threading.Lock()
        self._cached: tuple[datetime, bytes] | None = None
        self._asked = 0.0  # time.monotonic() of the last rows() call
        self._tried = 0.0  # time.monotonic() of the last computation's start
        self._keeper: threading.Thread | None = None
        self._closed = threading.Event()
        self._compute_lock = threading.Lock()  # the tally is not thread-safe
        self._tally = WindowTally()

    def rows(self, now: datetime) -> tuple[datetime | None, bytes]:
        """``(computed_at, rows)``; ``(None, b"[]")`` without a store."""
        with self._lock:
            self._asked = time.monotonic()
            cached = self._cached
        answer = self._compute(now) if cached is None else cached
        self._start_keeper()
        return answer

    def close(self) -> None:
        """Stop the keeper; a computation under way finishes on its own."""
        self._closed.set()

    def _start_keeper(self) -> None:
        with self._lock:
            if self._keeper is not None or self._closed.is_set():
                return
            self._keeper = threading.Thread(target=self._keep, name="nexomon-status", daemon=True)
            self._keeper.start()

    def _keep(self) -> None:
        while True:
            with self._lock:
                if time.monotonic() - self._asked > self.idle_s or self._closed.is_set():
                    self._keeper = None
                    return
                due = self._tried + self.max_age_s - time.monotonic()
            if due <= 0:
                self._compute(self._now())
                continue
            if self._warm is not None:
                warm_due = self._warmed + self.warm_every_s - time.monotonic()
                if warm_due <= 0:
                    self._run_warm()
                    continue
                due = min(due, warm_due)
            self._closed.wait(due)  # then look again: closed, idle, or time to work

    def _run_warm(self) -> None:
        self._warmed = time.monotonic()
        try:
            self._warm()  # type: ignore[misc]
        except Exception as exc:  # a bug there must not stop the window's refresh
            log.warning("status: warming the last results failed: %s", exc)

    def _compute(self, now: datetime) -> tuple[datetime | None, bytes]:
        self._tried = time.monotonic()  # the keeper's next try is max_age_s after this one
        store = self._store()
        if store is None:
            return None, EMPTY
        try:
            with self._compute_lock, Session(store.engine) as session:
                summary = self._tally.summary(session, now)
            rows = json_array(row.to_json() for row in summary)  # never one long GIL hold
        except Exception as exc:  # any driver error: keep what we had
            log.warning("status: database query failed: %s", type(exc).__name__)
            with self._lock:
                return self._cached or (None, EMPTY)
        with self._lock:
            if self._cached is None or self._cached[0] <= now:
                self._cached = (now, rows)
            return self._cached
