"""ManualClock: an injectable monotonic clock that only moves when told to.

The simulator reads time through a ``Callable[[], float]`` (``time.monotonic``
by default) for its token buckets and for models that disappear, so tests
pass a ManualClock and advance it instead of sleeping.
"""

from __future__ import annotations

import threading


class ManualClock:
    """A thread-safe fake monotonic clock; call it to read, ``advance`` to move."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        with self._lock:
            self._now += seconds
