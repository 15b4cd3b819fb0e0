"""What one gateway call returns: the Exchange, its failure kinds and their wording.

``Exchange`` is GatewayClient's answer and classify()'s input. ``failure``
is one of the FAILURE_* kinds; ``connection_detail`` words a transport
failure from its exception chain (DNS, TLS, refused, reset...) for
``failure_detail``.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from monitor.gateway.ratelimit import RateLimits
from monitor.http.timing import PhaseClock
from monitor.results import Phases

FAILURE_TIMEOUT = "timeout"
FAILURE_CONNECTION = "connection"
FAILURE_TOO_LARGE = "too_large"
FAILURE_DECODING = "decoding"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and whatever came back, parsed; the input of classify().

    ``status`` is None when no response headers arrived. ``body`` is the
    parsed JSON (None when there was no body or it was not JSON, then
    ``parse_error`` says why). ``failure`` is the transport failure kind or
    None; ``failure_detail`` is a short, redacted, single line.
    ``ratelimits`` holds every rate-limit header family's figures (see
    monitor.gateway.ratelimit). ``duration_s`` is gateway latency, from
    connect start (or request-headers start on a reused connection) to the
    body end, without pool wait; None when the request never got a connection.
    """

    method: str
    path: str
    started_at: datetime
    status: int | None
    body: Any = None
    parse_error: str | None = None
    failure: str | None = None
    failure_detail: str | None = None
    request_id: str | None = None
    ratelimits: RateLimits = RateLimits()  # noqa: RUF009 - frozen, shared safely
    cors: tuple[tuple[str, str], ...] = ()  # (access-control-* name, value), clean
    retry_after_s: float | None = None
    phases: Phases = field(default_factory=Phases)
    duration_s: float | None = None
    body_bytes: int = 0
    content_type: str | None = None

    @property
    def ok_status(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def connection_detail(exc: BaseException, clock: PhaseClock, host: str) -> str:
    """A short wording of a transport failure, from the exception chain."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed for {host}: {cause.strerror or cause}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return f"connection reset by peer {clock.stage()}"
    if clock.has("start_tls.started") and not clock.has("start_tls.complete"):
        return f"TLS handshake failed: {exc}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return f"{exc or 'connection closed'} {clock.stage()}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
