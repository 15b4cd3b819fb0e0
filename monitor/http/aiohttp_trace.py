"""aiohttp's side of AiohttpTransport's phase timing: trace signals and arrival stamps.

``trace_config()`` forwards aiohttp's DNS, connection, request-headers and
request-end signals to the request's ``trace`` callback (monitor.http.timing)
under httpcore's event names; ``StampedHandler`` is aiohttp's connection
protocol noting when each read's bytes arrived (the kernel's receive time
from monitor.http.rxstamp when the socket has one, else the read time) and when
the request was first written; ``Stamps`` carries one request's callback
and times between them. See monitor.http.aiohttp_transport for the contract.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from monitor.http.rxstamp import SocketRegistry, StampedSocket
from monitor.http.timing import NO_INFO, TraceFn

_ARRIVALS_KEPT = 8


class StampedHandler(ResponseHandler):
    """aiohttp's connection protocol, noting when bytes arrived.

    Each read (this ``data_received``) is stamped with the kernel's receive
    time of its bytes when the socket is a StampedSocket that got one
    (monitor.http.rxstamp), else with the time of the read. The kernel time
    counts neither the loop turns an answer waited in the socket buffer
    while the loop resumed other requests, nor the resumptions queued
    behind each other; the read time counts the first, not the second.
    """

    def __init__(self, *args: Any, sockets: SocketRegistry | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: deque[float] = deque(maxlen=_ARRIVALS_KEPT)
        self._sockets = sockets
        self.socket: StampedSocket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._sockets is not None:
            self.socket = self._sockets.find(transport)

    def data_received(self, data: bytes) -> None:
        if data:
            # The read that delivered ``data`` set rx_at just before this call.
            at = None if self.socket is None else self.socket.rx_at
            self.arrivals.append(time.perf_counter() if at is None else at)
        super().data_received(data)

    def writtenbackdated(self, since: float) -> float:
        """When the first request bytes after ``since`` went to the socket (else ``since``).

        aiohttp hands a request with a body to a task that writes it a loop
        turn later (on Python < 3.12); at 50 requests started in one turn
        that is milliseconds after the headers-sent signal.
        """
        sends = None if self.socket is None else self.socket.sends
        if not sends or (len(sends) == sends.maxlen and sends[0] >= since):
            return since  # no socket times, or the first send may have been dropped
        return next((at for at in sends if at >= since), since)


class Stamps:
    """One request's trace callback, and the arrival times its handlers noted."""

    __slots__ = ("body_at", "sent_at", "start_traced", "trace")

    def __init__(self, trace: TraceFn) -> None:
        self.trace = trace
        self.sent_at: float | None = None  # aiohttp's headers-sent signal
        self.start_traced = False
        self.body_at: float | None = None

    async def started(self, at: float | None) -> None:
        """Trace the request start once, backdated to ``at``, if the headers were sent."""
        if self.sent_at is not None and not self.start_traced:
            self.start_traced = True
            await self.trace("http11.send_request_headers.started", backdated(at))


def backdated(when: float | None) -> dict[str, Any]:
    """A trace event's info: ``at`` backdates the event (see monitor.http.timing)."""
    return NO_INFO if when is None else {"at": when}


def _emitter(name: str) -> Callable[..., Awaitable[None]]:
    """An aiohttp trace handler that forwards one event to the request's trace."""

    async def handler(session: object, ctx: SimpleNamespace, params: object) -> None:
        stamps = ctx.trace_request_ctx
        if stamps is not None:
            await stamps.trace(name, NO_INFO)

    return handler


async def _headers_sent(session: object, ctx: SimpleNamespace, params: object) -> None:
    """Note the request start; traced later, backdated to the first write (_request_end).

    aiohttp signals before it writes (for a body, a loop turn before), and
    no signal follows the write, so the start event waits for the answer's
    headers (or the request's failure, handle_async_request) to be traced.
    """
    stamps = ctx.trace_request_ctx
    if stamps is not None:
        stamps.sent_at = time.perf_counter()


async def _request_end(
    session: object, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    """Response headers are in: trace the request start, then the headers' arrival.

    The start is backdated to the request's first socket write. On a
    keep-alive HTTP/1.1 connection nothing but this answer can arrive
    between the request and its body's end, so the first read after sending
    is its first byte and the read that completed the body (noted when the
    body reaches EOF, before the connection can serve another request) is
    its last. Without stamps (another protocol class) the start is the
    headers-sent signal and the answer's events are not backdated.
    """
    stamps = ctx.trace_request_ctx
    if stamps is None:
        return
    response = params.response
    handler = getattr(response, "_protocol", None)
    since = stamps.sent_at or 0.0
    headers_at = None
    if not isinstance(handler, StampedHandler):
        await stamps.started(stamps.sent_at)
    else:
        written = handler.writtenbackdated(since)
        await stamps.started(written)
        arrivals = handler.arrivals
        headers_at = next((at for at in arrivals if at >= since), None)
        if headers_at is not None:
            headers_at = max(headers_at, written)  # a realtime step cannot reorder them

        def body_done() -> None:
            if arrivals and arrivals[-1] >= since:
                stamps.body_at = arrivals[-1]

        response.content.on_eof(body_done)
    await stamps.trace("http11.receive_response_headers.complete", backdated(headers_at))


def trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    signals = (
        (config.on_dns_resolvehost_start, "connection.resolve.started"),
        (config.on_dns_resolvehost_end, "connection.resolve.complete"),
        (config.on_connection_create_start, "connection.connect_tcp.started"),
        (config.on_connection_create_end, "connection.connect_tcp.complete"),
    )
    for signal, name in signals:
        signal.append(_emitter(name))
    config.on_request_headers_sent.append(_headers_sent)
    config.on_request_end.append(_request_end)
    config.freeze()
    return config
