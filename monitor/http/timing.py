"""Phase timing of one HTTP exchange, from transport trace events.

The transport calls the request extension ``extensions={"trace": callback}``
with events named ``<layer>.<step>.<started|complete|failed>``. httpcore
(httpx's own transport) uses layer ``connection`` (``connect_tcp``,
``start_tls``) and ``http11``/``http2`` (``send_request_headers``,
``receive_response_headers``, ...); monitor.http.transport.Http11Transport (the
default) and monitor.http.aiohttp_transport.AiohttpTransport (used behind a proxy) emit
the same names where the step is the same, plus ``connection.resolve.*``
and the flags ``transport.measures_resolve`` and (aiohttp over https)
``transport.tls_in_connect``. An event whose info has a float ``"at"`` is
marked at that perf_counter time instead of when the callback runs: both
transports backdate the response headers and body end to when the
kernel received those bytes (SO_TIMESTAMPNS; else when the loop read them),
and the request start to the request's first write, so time our own loop
spends reaching a response (many answers arriving together) or writing a
request is not counted as gateway latency.

These events fire only once the request owns a connection, so time spent
queueing for a free connection in the pool is in no phase and not in the
duration.

``resolve``: timed when the transport measures it (ours: 0.0 on a reused
connection, a DNS-cache hit or an IP literal); None under httpcore, which
resolves and connects in one call, so DNS time is part of ``connect``.
``connect`` is the connect span minus the resolve span inside it.
``tls``: timed under Http11Transport and httpcore; None under aiohttp for
https, whose TLS handshake is inside the same ``create_connection`` call as
TCP (it is then part of ``connect``); 0.0 for plain http.

A transport that emits no trace events (httpx ASGITransport) falls back to
the client's own marks: ``processing`` then runs from just before ``send()``
(pool wait and connect included) to the response headers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from monitor.results import Phases

# The request's "trace" extension, as the transports call it: (event, info).
TraceFn = Callable[[str, dict[str, Any]], Awaitable[None]]
NO_INFO: dict[str, Any] = {}  # the info of an event that is not backdated (never mutated)

# Our own marks, set by the gateway client around the httpx calls.
SENT = "nexomon.sent"  # just before client.send()
HEADERS = "nexomon.headers"  # client.send() returned: status and headers are in
BODY_END = "nexomon.body_end"  # the last body byte was read

# (phase, start event, end event) for the trace-driven phases.
_SPANS = (
    ("resolve", "resolve.started", "resolve"),
    ("connect", "connect_tcp.started", "connect_tcp"),
    ("tls", "start_tls.started", "start_tls"),
    ("processing", "send_request_headers.started", "receive_response_headers"),
)

# What the exchange was doing when it stopped, newest step first; used to
# word timeouts ("timed out after 5s while reading the body").
_STAGES = (
    (BODY_END, "after the body"),
    ("receive_response_headers.complete", "while reading the body"),
    (HEADERS, "while reading the body"),
    ("send_request_headers.started", "while waiting for the response headers"),
    ("start_tls.started", "during the TLS handshake"),
    ("resolve.complete", "while connecting"),
    ("resolve.started", "while resolving the host name"),
    ("connect_tcp.started", "while connecting"),
    (SENT, "while waiting for a free connection"),
)


class PhaseClock:
    """Collects perf_counter marks for one request; pass it as the trace callback.

    Each event keeps its first occurrence (a retried connect keeps the
    first start). ``phases()`` turns the marks into Phases and the gateway
    latency; ``stage()`` words where the exchange stopped.
    """

    __slots__ = ("_marks",)

    def __init__(self) -> None:
        self._marks: dict[str, float] = {}

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        # Drop the layer prefix so http11 and http2 events read the same.
        _, _, event = name.partition(".")
        # A float "at" backdates the event to when its bytes were read
        # (our transports); otherwise the event happened now.
        at = info.get("at")
        self._marks.setdefault(event, at if isinstance(at, float) else time.perf_counter())

    def mark(self, event: str) -> None:
        self._marks.setdefault(event, time.perf_counter())

    def has(self, event: str) -> bool:
        return event in self._marks

    def request_sent_at(self) -> float | None:
        """When the request began going out: its first write (traced), else the
        client's mark just before sending; None before either."""
        marks = self._marks
        return marks.get("send_request_headers.started", marks.get(SENT))

    @property
    def traced(self) -> bool:
        """True when the transport emitted trace events (ours or httpcore)."""
        return any(not key.startswith("nexomon.") for key in self._marks)

    def _end_of(self, step: str, stop: float) -> float:
        for suffix in ("complete", "failed"):
            at = self._marks.get(f"{step}.{suffix}")
            if at is not None:
                return at
        return stop

    def phases(self, stop: float | None = None) -> tuple[Phases, float | None]:
        """Phases and duration_s; ``stop`` is when the exchange gave up (default now).

        A phase that never started is 0.0; one still running at ``stop`` is
        counted up to ``stop``. Duration runs from connect start (or request
        headers start on a reused connection) to the body end or ``stop``;
        it is None when the request never left the pool queue.
        """
        stop = time.perf_counter() if stop is None else stop
        marks = self._marks
        end = marks.get(BODY_END, stop)
        if BODY_END in marks:  # the transport's own body end, when it read it earlier
            end = min(end, marks.get("receive_response_body.complete", end))
        spans: dict[str, float] = {}
        if self.traced:
            for phase, start_event, step in _SPANS:
                start = marks.get(start_event)
                spans[phase] = 0.0 if start is None else max(0.0, self._end_of(step, stop) - start)
            headers_at = marks.get("receive_response_headers.complete", marks.get(HEADERS))
            origin = marks.get("connect_tcp.started", marks.get("send_request_headers.started"))
        else:
            sent, headers_at = marks.get(SENT), marks.get(HEADERS)
            spans["processing"] = 0.0 if sent is None else max(0.0, (headers_at or stop) - sent)
            origin = sent
        transfer = 0.0 if headers_at is None else max(0.0, end - headers_at)
        duration = None if origin is None else max(0.0, end - origin)
        resolve: float | None = None
        if "resolve.started" in marks or "measures_resolve" in marks:
            resolve = spans.get("resolve", 0.0)
        # The resolve span lies inside the connect span (our transports resolve as
        # part of creating the connection): count it once.
        connect = max(0.0, spans.get("connect", 0.0) - (resolve or 0.0))
        phases = Phases(
            resolve=resolve,
            connect=connect,
            tls=None if "tls_in_connect" in marks else spans.get("tls", 0.0),
            processing=spans["processing"],
            transfer=transfer,
        )
        return phases, duration

    def stage(self) -> str:
        """Where the exchange was when it stopped, as a short phrase."""
        for event, words in _STAGES:
            if event in self._marks:
                return words
        return "before sending"
