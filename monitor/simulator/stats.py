"""SimStats: request counters and a bounded request log, for tests and benchmarks.

Served as JSON on ``GET /_sim/stats`` and readable in-process as
``Simulator.stats``. Safe to read from another thread than the server's.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

LOG_SIZE = 10_000


class SimStats:
    """Counts GET /models and chat requests (per model id) and logs each request."""

    def __init__(self, log_size: int = LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._models = 0
        self._chat: Counter[str] = Counter()
        self._log: deque[dict[str, Any]] = deque(maxlen=log_size)

    def record(
        self,
        *,
        t: float,
        path: str,
        model: str | None,
        status: int | None,
        request_id: str,
        fault: str | None,
    ) -> None:
        """Log one request. ``status`` is None for a hang (no answer is ever sent).

        Chat requests are counted under the requested model id ("" when the
        body had none), whatever the answer.
        """
        entry = {
            "t": t,
            "path": path,
            "model": model,
            "status": status,
            "request_id": request_id,
            "fault": fault,
        }
        with self._lock:
            if path.endswith("/models"):
                self._models += 1
            elif path.endswith("/chat/completions"):
                self._chat[model or ""] += 1
            self._log.append(entry)

    @property
    def models_requests(self) -> int:
        with self._lock:
            return self._models

    def chat_requests(self, model: str | None = None) -> int:
        """Chat requests for ``model``, or for all models when None."""
        with self._lock:
            return sum(self._chat.values()) if model is None else self._chat[model]

    def log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._log]

    def snapshot(self) -> dict[str, Any]:
        """The ``/_sim/stats`` document."""
        with self._lock:
            return {
                "requests": {"models": self._models, "chat": dict(self._chat)},
                "log": [dict(e) for e in self._log],
            }

    def reset(self) -> None:
        with self._lock:
            self._models = 0
            self._chat.clear()
            self._log.clear()
