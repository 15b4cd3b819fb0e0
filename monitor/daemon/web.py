"""The HTTP routes (/metrics, /healthz, /readyz, /api/v1/status, /) and their server.

Contracts:

- ``/metrics``: Prometheus text format 0.0.4 from the given registry, rendered
  by ``render_metrics`` (default ``generate_latest``, in a worker thread; a
  coroutine function is awaited on the loop instead: the daemon passes
  ``Exporter.render_async``, the same samples and values, incrementally and
  in slices). With a ``metrics_token`` the request must carry
  ``Authorization: Bearer <token>`` (compared in constant time), else 401
  with ``WWW-Authenticate: Bearer``.
- ``/healthz``: 200 ``ok`` while the process serves HTTP at all.
- ``/readyz``: 200 ``{"status": "ready"}`` or 503
  ``{"status": "not ready", "reason": ...}`` from the ``ready()`` callback.
- ``/api/v1/status``: the ``status()`` dict as JSON (datetimes as ISO 8601,
  Decimals as strings).
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
import hmac
import inspect
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Generator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

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


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _json(content: Any, status_code: int = 200) -> Response:
    body = json.dumps(content, default=_json_default, ensure_ascii=False, allow_nan=False)
    return Response(body, status_code=status_code, media_type="application/json")


def _bearer_ok(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # compare_digest on str refuses non-ASCII; bytes compare any header safely.
    return hmac.compare_digest(given.strip().encode(), token.encode())


def build_app(
    *,
    registry: CollectorRegistry,
    ready: Callable[[], tuple[bool, str]],
    status: Callable[[], dict[str, Any]],
    metrics_token: str | None,
    render_metrics: Callable[[CollectorRegistry], bytes | Awaitable[bytes]] = generate_latest,
) -> Starlette:
    """The ASGI app of nexomon's HTTP routes (see the module docstring)."""
    render_on_loop = inspect.iscoroutinefunction(render_metrics)

    async def metrics(request: Request) -> Response:
        if metrics_token and not _bearer_ok(request, metrics_token):
            return PlainTextResponse(
                "unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        if render_on_loop:
            body = await render_metrics(registry)  # type: ignore[misc]
        else:
            body = await run_in_threadpool(render_metrics, registry)
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

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
        try:
            content = await run_in_threadpool(status)
        except Exception as exc:
            log.exception("building /api/v1/status failed")
            return _json({"error": f"status unavailable: {type(exc).__name__}"}, 500)
        return _json(content)

    async def index(request: Request) -> Response:
        return HTMLResponse(_INDEX)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/api/v1/status", api_status),
        ]
    )


# How long a connection may sit without a request in progress: before its
# first complete request head, or after a response. uvicorn's keep-alive
# timer starts only after a first response, so without this an idle or
# half-sent request (a slow-loris) holds its slot forever, and 100 of them
# (limit_concurrency) turn every scrape into a 503.
REQUEST_HEAD_TIMEOUT_S = 10.0


class _HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for receiving a request head."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(REQUEST_HEAD_TIMEOUT_S, self._head_timeout)

    def _head_timeout(self) -> None:
        # A request being answered is left alone; only an idle connection goes.
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and not self.transport.is_closing():
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
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class WebServer:
    """uvicorn serving ``app`` as a task in the running event loop.

    Limits keep junk and slow clients from taking it down: at most 100
    concurrent connections (then 503), 5 s keep-alive, 16 KiB of request
    head, and a connection with no request in progress is closed after
    ``REQUEST_HEAD_TIMEOUT_S`` (idle, or a half-sent head: a slow-loris).
    """

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._config = uvicorn.Config(
            app,
            http=_HeadDeadlineProtocol,
            log_level="warning",
            log_config=None,  # keep the daemon's logging setup
            access_log=False,
            lifespan="off",
            limit_concurrency=100,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=5,
            h11_max_incomplete_event_size=16 * 1024,
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
