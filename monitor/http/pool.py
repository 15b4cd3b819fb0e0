"""The pool of monitor.http.connection connections behind Http11Transport.

Contract: at most ``max_connections`` connections are in use at once
(callers beyond it wait in FIFO order, each at most its ``timeout``, then
httpx.PoolTimeout as httpcore raises it); idle connections are kept
per origin, newest first, and closed once idle ``keepalive_s`` or longer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import httpx

from monitor.http.connection import Connection, Origin


class Pool:
    """Connection slots and idle connections; see the module docstring."""

    def __init__(self, max_connections: int, keepalive_s: float) -> None:
        self._free = max_connections
        self._keepalive_s = keepalive_s
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: dict[Origin, list[Connection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def slot(self, timeout: float | None = None) -> None:
        """Wait for a free slot (FIFO), at most ``timeout`` seconds (None: unbounded).

        The caller must ``put`` or ``release`` the slot; httpx.PoolTimeout
        when none came in time.
        """
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            if timeout is None:
                await waiter
            else:
                await self._wait(waiter, timeout)
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot while being cancelled: pass it on
            elif waiter in self._waiters:  # release() may have skipped it already
                self._waiters.remove(waiter)
            raise

    @staticmethod
    async def _wait(waiter: asyncio.Future[None], timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError as exc:
            limit = f"{timeout:g}"
            raise httpx.PoolTimeout(f"no free connection within {limit}s") from exc

    def release(self) -> None:
        """Give a slot back without a connection."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def idle(self, origin: Origin) -> Connection | None:
        """A live idle connection to ``origin``, newest first, or None."""
        conns = self._idle.get(origin)
        if not conns:
            return None
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            if conn.reusable and not conn._busy and now - conn.idle_since < self._keepalive_s:
                conn.reused = True
                return conn
            conn.abort()
        return None

    def put(self, conn: Connection, *, reuse: bool) -> None:
        """Release ``conn``'s slot; keep the connection if ``reuse`` and it can serve again."""
        conn._busy = False
        if reuse and conn.reusable and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.origin, []).append(conn)
            if self._sweeper is None:
                self._sweeper = conn.loop.call_later(self._keepalive_s, self._sweep)
        else:
            conn.abort()
        self.release()

    def _sweep(self) -> None:
        """Close connections idle for keepalive_s; run again while any stay idle."""
        self._sweeper = None
        cutoff = time.monotonic() - self._keepalive_s
        left = 0
        for conns in self._idle.values():
            for conn in [c for c in conns if c.idle_since <= cutoff or not c.reusable]:
                conns.remove(conn)
                conn.abort()
            left += len(conns)
        if left:
            self._sweeper = asyncio.get_running_loop().call_later(self._keepalive_s, self._sweep)

    def close(self) -> None:
        """Close every idle connection; connections in use are dropped when put back."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conns in self._idle.values():
            for conn in conns:
                conn.abort()
        self._idle.clear()

    def stats(self) -> dict[str, Any]:
        """For tests and debugging: free slots, waiters, idle connections per origin."""
        idle = {origin: len(conns) for origin, conns in self._idle.items() if conns}
        return {"free": self._free, "waiting": len(self._waiters), "idle": idle}
