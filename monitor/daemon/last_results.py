"""The last result of every job, written on the event loop and read from worker threads.

``/api/v1/status`` and the status page build their bodies in worker threads
(a 10,000-model status is ~10 MB of JSON: too long for the event loop) while
the loop keeps recording results. Iterating the loop's dict from a thread
failed with "dictionary changed size during iteration" (two 500s in a
10,000-model scale run): a list built from the dict allocates, an
allocation can start a garbage collection, a collection runs Python code
(finalizers, weakref callbacks), and the interpreter may switch threads
there, so the loop inserts a new job's first result mid-copy.

``LastResults`` holds the dict behind a lock: ``put`` (the loop) and
``snapshot`` (any thread) never overlap. A snapshot of 10,000 entries is one
C-level dict copy (~0.1 ms), so the loop waits at most that long.
"""

from __future__ import annotations

import threading

from monitor.results import ProbeResult

JobKey = tuple[str, str, str]  # (target, probe, model), as ProbeResult names them


class LastResults:
    """The newest ``ProbeResult`` per job (the one recorded last)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_job: dict[JobKey, ProbeResult] = {}

    def put(self, result: ProbeResult) -> None:
        """Record ``result`` as its job's last (a sink of the runner)."""
        key = (result.target, result.probe, result.model)
        with self._lock:
            self._by_job[key] = result

    def snapshot(self) -> dict[JobKey, ProbeResult]:
        """A copy of every job's last result, in the order jobs first reported;
        safe from any thread, never changed afterwards by ``put``."""
        with self._lock:
            return self._by_job.copy()

    def __len__(self) -> int:
        return len(self._by_job)
