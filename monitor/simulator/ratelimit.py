"""Token buckets per (api key, model): the truth behind ``x-ratelimit-*``.

Each bucket holds up to ``limit`` tokens, starts full, refills continuously
at ``per_s`` tokens per second and spends one per chat request. An empty
bucket answers 429 with ``retry-after`` = time until one token is back.
Time comes from an injected monotonic clock so tests can refill buckets by
advancing a ManualClock instead of sleeping.
"""

from __future__ import annotations

import email.utils
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from monitor.simulator.scenario import RateLimit

# Bucket count is bounded because keys come from clients: with an empty
# ``api_keys`` any bearer passes, and a flood of random keys must not grow memory.
MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class Decision:
    """One take: allowed or not, the header values, and the wait when refused."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float = 0.0


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    """All buckets of one simulator; safe to call from several threads."""

    def __init__(self, clock: Callable[[], float], max_buckets: int = MAX_BUCKETS) -> None:
        self._clock = clock
        self._max = max_buckets
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, model: str, spec: RateLimit) -> Decision:
        """Spend one token of (key, model)'s bucket if there is one."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get((key, model))
            if bucket is None:
                bucket = _Bucket(float(spec.limit), now)
                self._buckets[(key, model)] = bucket
                if len(self._buckets) > self._max:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end((key, model))
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(float(spec.limit), bucket.tokens + elapsed * spec.per_s)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return Decision(True, spec.limit, int(bucket.tokens))
            wait = (1.0 - bucket.tokens) / spec.per_s
            return Decision(False, spec.limit, 0, wait)

    def reset(self) -> None:
        """Forget every bucket (they start full again)."""
        with self._lock:
            self._buckets.clear()


def format_retry_after(wait_s: float, fmt: str, wall_now: float) -> str:
    """``retry-after`` value: whole seconds (rounded up, at least 1) or an HTTP-date.

    The HTTP-date is computed from wall time because it is read by clients
    against their own wall clock; it is rounded up to the next whole second.
    """
    seconds = max(1, math.ceil(wait_s))
    if fmt == "http-date":
        return email.utils.formatdate(math.ceil(wall_now) + seconds, usegmt=True)
    return str(seconds)
