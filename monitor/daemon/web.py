"""The HTTP routes (/metrics, /healthz, /readyz, /api/v1/status, /) and their server.

Contracts:

- ``/metrics``: Prometheus text format 0.0.4 from the given registry, rendered
  by ``render_metrics`` (default ``generate_latest``, in a worker thread; a
  coroutine function is awaited on the loop instead: the daemon passes
  ``Exporter.render_async``, the same samples and values, incrementally and
  in slices). With a ``metrics_token`` the request must carry
  ``Authorization: Bearer <token>`` (compared in constant time), else 401
  with ``WWW-Authenticate: Bearer``. A client that accepts gzip (Prometheus
  asks for it at every scrape) gets the body gzip-compressed (level 1, in a
  worker thread), as prometheus_client's own handlers do: 10,000 models in
  ``model_metrics = "compact"`` are ~9.7 MB of text, ~0.6 MB on the wire.
- ``/healthz``: 200 ``ok`` while the process serves HTTP at all.
- ``/readyz``: 200 ``{"status": "ready"}`` or 503
  ``{"status": "not ready", "reason": ...}`` from the ``ready()`` callback.
- ``/api/v1/status``: the ``status()`` dict as JSON (datetimes as ISO 8601,
  Decimals as strings). It shows errors, request ids, tokens and cost, so it
  asks for the same bearer token as ``/metrics``, or for ``status_token``
  when one is given (a separate audience); open only when neither is set.
  ``/``, ``/healthz`` and ``/readyz`` stay open.
- The callbacks may be synchronous and slow (database queries): they run in
  a worker thread, never on the event loop, and an exception in one becomes
  a 503/500 answer and a log line, not a dead server.

``WebServer`` runs uvicorn inside the caller's event loop. It binds the
socket itself (so port 0 works and a taken port raises ``OSError`` instead
of uvicorn's ``sys.exit``) and leaves signal handling and logging setup to
the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hmac
import inspect
import logging
import random
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from monitor.daemon.jsonbody import encode

log = logging.getLogger("nexomon.web")

_INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>nexomon</title></head>
<body><h1>nexomon</h1><ul>
<li><a href="/metrics">/metrics</a> Prometheus metrics</li>
<li><a href="/healthz">/healthz</a> liveness</li>
<li><a href="/readyz">/readyz</a> readiness</li>
<li><a href="/api/v1/status">/api/v1/status</a> last results, 24 h uptime and p95</li>
</ul></body></html>
"""


def _json(content: Any, status_code: int = 200) -> Response:
    """``content`` encoded (monitor.daemon.jsonbody), or as is when it is JSON bytes already."""
    body = content if isinstance(content, bytes) else encode(content)
    return Response(body, status_code=status_code, media_type="application/json")


def _bearer_ok(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # compare_digest on str refuses non-ASCII; bytes compare any header safely.
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _unauthorized() -> Response:
    return PlainTextResponse(
        "unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


# Level 1: ~10x smaller for exposition text at a fraction of level 6's CPU.
METRICS_GZIP_LEVEL = 1


def build_app(
    *,
    registry: CollectorRegistry,
    ready: Callable[[], tuple[bool, str]],
    status: Callable[[], dict[str, Any] | bytes],
    metrics_token: str | None,
    status_token: str | None = None,
    render_metrics: Callable[[CollectorRegistry], bytes | Awaitable[bytes]] = generate_latest,
    page_routes: Sequence[BaseRoute] | None = None,
) -> Starlette:
    """The ASGI app of nexomon's HTTP routes (see the module docstring).

    ``page_routes`` (the status page, monitor.statuspage) replace the link
    list at ``/``; without them ``/`` is the link list.
    """
    render_on_loop = inspect.iscoroutinefunction(render_metrics)
    status_token = status_token or metrics_token

    async def metrics(request: Request) -> Response:
        if metrics_token and not _bearer_ok(request, metrics_token):
            return _unauthorized()
        if render_on_loop:
            body = await render_metrics(registry)  # type: ignore[misc]
        else:
            body = await run_in_threadpool(render_metrics, registry)
        headers = {"Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = await run_in_threadpool(gzip.compress, body, METRICS_GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4, headers=headers)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        try:
            ok, reason = await run_in_threadpool(ready)
        except Exception as exc:
            log.exception("readiness check failed")
            ok, reason = False, f"readiness check failed: {type(exc).__name__}"
        if ok:
            return _json({"status": "ready"})
        return _json({"status": "not ready", "reason": reason}, status_code=503)

    async def api_status(request: Request) -> Response:
        if status_token and not _bearer_ok(request, status_token):
            return _unauthorized()
        try:
            content = await run_in_threadpool(status)
        except Exception as exc:
            log.exception("building /api/v1/status failed")
            return _json({"error": f"status unavailable: {type(exc).__name__}"}, 500)
        return _json(content)

    async def index(request: Request) -> Response:
        return HTMLResponse(_INDEX)

    routes: list[BaseRoute] = [
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/api/v1/status", api_status),
    ]
    routes += list(page_routes) if page_routes is not None else [Route("/", index)]
    return Starlette(routes=routes)


# How long a connection may sit without a request in progress: before its
# first complete request head, or after a response. uvicorn's keep-alive
# timer starts only after a first response, so without this an idle or
# half-sent request (a slow-loris) holds its slot forever.
REQUEST_HEAD_TIMEOUT_S = 10.0
# Open connections at most. Beyond it a new connection is not refused: the
# connection idle the longest (no request in progress: a slow-loris, an idle
# keep-alive) is closed to make room. A scrape or health check sends its whole
# request at once, so it is never the idle one for long; measured with 1,000
# slow-loris and 10,000 idle connections (tests/reliability/test_rel_http_load.py),
# where uvicorn's own limit (refuse with 503 past 100) failed every scrape.
MAX_CONNECTIONS = 16384
EVICTION_LOG_EVERY_S = 60.0
# Connections accepted per event-loop turn (asyncio accepts up to the
# server's backlog in one callback). A burst of 10,000 junk connections
# accepted in one turn held the loop for ~0.5 s, past the probes' schedule;
# 64 a turn keeps each turn short. The kernel's queue stays deep
# (LISTEN_BACKLOG): a scrape's connect waits there, it is not dropped.
ACCEPT_BATCH = 64
LISTEN_BACKLOG = 4096


FD_RESERVE = 512  # open files kept for the database, the spool, probes and logs


def connection_limit(open_file_limit: int) -> int:
    """How many HTTP connections to keep with this soft RLIMIT_NOFILE."""
    return max(64, min(MAX_CONNECTIONS, open_file_limit - FD_RESERVE))


class ConnectionTable:
    """A server's open connections, the longest idle first.

    ``opened`` adds a connection and returns the one to close to make room
    (None when there is room, or when every other connection is busy: then
    the new one itself is closed by the caller). ``active`` moves a
    connection to the back when it finishes a response.
    """

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self.limit = limit
        self.evicted = 0
        self._open: OrderedDict[_GuardedProtocol, None] = OrderedDict()
        self._logged_at = 0.0
        self._logged_count = 0

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, conn: _GuardedProtocol) -> _GuardedProtocol | None:
        self._open[conn] = None
        if len(self._open) <= self.limit:
            return None
        victim = next((c for c in self._open if c is not conn and c.idle), None) or conn
        # Out of the table now, not at connection_lost: closing takes a loop
        # turn, and a burst of new connections must not pick it again.
        self._open.pop(victim)
        self.evicted += 1
        return victim

    def active(self, conn: _GuardedProtocol) -> None:
        if conn in self._open:
            self._open.move_to_end(conn)

    def closed(self, conn: _GuardedProtocol) -> None:
        self._open.pop(conn, None)

    def log_evictions(self, now: float) -> None:
        """One line a minute at most while connections are being closed for room."""
        if self.evicted > self._logged_count and now - self._logged_at >= EVICTION_LOG_EVERY_S:
            log.warning(
                "HTTP connection limit %d reached: %d idle connections closed to make room "
                "(slow or idle clients)",
                self.limit,
                self.evicted - self._logged_count,
            )
            self._logged_at, self._logged_count = now, self.evicted


class _GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol plus a request-head deadline and the connection table."""

    table: ConnectionTable  # set per server by WebServer (a subclass per server)
    _head_deadline: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        """No request in progress: before a complete head, or after a response."""
        return self.cycle is None or self.cycle.response_complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()
        victim = self.table.opened(self)
        if victim is not None:
            victim.transport.close()
            self.table.log_evictions(self.loop.time())

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.table.active(self)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.table.closed(self)
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        # Jittered (1 to 1.5 times): connections opened in one burst must not
        # all time out, and reconnect, in the same loop turn.
        delay = REQUEST_HEAD_TIMEOUT_S * (1.0 + 0.5 * random.random())
        self._head_deadline = self.loop.call_later(delay, self._head_timeout)

    def _head_timeout(self) -> None:
        # A request being answered is left alone; only an idle connection goes.
        if self.idle and not self.transport.is_closing():
            self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn without its SIGINT/SIGTERM handlers: the daemon owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one)."""
    family, type_, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class WebServer:
    """uvicorn serving ``app`` as a task in the running event loop.

    Limits keep junk and slow clients from taking it down: at most
    ``MAX_CONNECTIONS`` open connections (past it the longest idle one is
    closed to make room, see ``ConnectionTable``), 5 s keep-alive, 16 KiB of
    request head, and a connection with no request in progress is closed
    after ``REQUEST_HEAD_TIMEOUT_S`` (idle, or a half-sent head: a slow-loris).
    """

    def __init__(
        self, app: Starlette, host: str, port: int, *, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self._host = host
        self._port = port
        self.connections = ConnectionTable(max_connections)
        protocol = type("GuardedProtocol", (_GuardedProtocol,), {"table": self.connections})
        self._config = uvicorn.Config(
            app,
            http=protocol,
            log_level="warning",
            log_config=None,  # keep the daemon's logging setup
            access_log=False,
            lifespan="off",
            # No 503 past a count: the table bounds the connections. uvicorn's
            # count includes connections still closing, so under a burst of
            # junk it refused every scrape (tests/reliability/test_rel_http_load.py).
            limit_concurrency=None,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=5,
            h11_max_incomplete_event_size=16 * 1024,
            backlog=ACCEPT_BATCH,
            server_header=False,
        )
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when asked for port 0); before start, the asked one."""
        return self._port

    @property
    def started(self) -> bool:
        """True once uvicorn accepts connections, until ``stop()``."""
        return self._server is not None and self._server.started

    async def start(self) -> None:
        """Bind and serve; returns once uvicorn accepts connections.

        Raises ``OSError`` when the address cannot be bound.
        """
        self._sock = bind(self._host, self._port)
        self._port = int(self._sock.getsockname()[1])
        self._server = _Server(self._config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what failed
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        # asyncio's create_server listened again with the accept batch; deepen
        # the kernel's queue once more (the batch per loop turn stays).
        self._sock.listen(LISTEN_BACKLOG)

    async def stop(self) -> None:
        """Stop accepting, let open requests finish (at most 5 s), close the socket."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            if self._sock is not None:
                self._sock.close()
            self._server = self._task = self._sock = None


async def serve(app: Starlette, host: str, port: int) -> WebServer:
    """Start a ``WebServer`` for ``app`` on host:port and return it (call ``stop()``)."""
    server = WebServer(app, host, port)
    await server.start()
    return server
