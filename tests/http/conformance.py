"""The conformance kit: Http11Transport and httpx's default transport, side by side.

Every conformance case sends the same request through
``httpx.AsyncClient(transport=T)`` for both transports (``KINDS``) and
reduces what the client yields to an ``Outcome`` (status, reason phrase, raw
headers, decoded body, or the exception class), so "the same observable
result" is one equality. Where the two may differ, ``DIFFERENCES`` says why
and what httpx's default transport yields instead; a case that is not in it
must give the same ``Outcome`` on both.

The servers are tests/gwfixtures.py's RawServer (exact bytes, one thread per
connection); ``answer`` and ``parts`` build its responders.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from gwfixtures import RawRequest, RawServer, Responder

from monitor.http.transport import Http11Transport

KINDS = ("http11", "httpx")


def make_transport(
    kind: str,
    *,
    max_connections: int = 100,
    verify: Any = True,
    trust_env: bool = True,
) -> httpx.AsyncBaseTransport:
    """A transport of ``kind`` with the same pool size, TLS and environment settings."""
    if kind == "http11":
        return Http11Transport(max_connections=max_connections, verify=verify, trust_env=trust_env)
    limits = httpx.Limits(max_connections=max_connections)
    return httpx.AsyncHTTPTransport(limits=limits, verify=verify, trust_env=trust_env)


@dataclass(frozen=True)
class Outcome:
    """What httpx's client yields for one request: a response, or an exception class."""

    status: int | None = None
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    error: str | None = None

    @classmethod
    def of(cls, response: httpx.Response) -> Outcome:
        raw = tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in response.headers.raw)
        return cls(response.status_code, response.reason_phrase, raw, response.content)


def ok(
    status: int = 200, body: bytes = b"", *headers: tuple[str, str], reason: str = "OK"
) -> Outcome:
    return Outcome(status, reason, tuple(headers), body)


def fails(error: type[Exception]) -> Outcome:
    return Outcome(error=error.__name__)


@dataclass(frozen=True)
class Difference:
    """A known, justified difference: why, and what httpx's default transport yields."""

    why: str
    httpx: Outcome | None = None  # None: the same Outcome as Http11Transport
    httpx_connections: int | None = None  # None: the same connection count


# Case name -> the difference. Each entry is asserted: both sides must still
# yield what is written here, so a fix on either side shows up as a failure.
DIFFERENCES: dict[str, Difference] = {
    "te-gzip-chunked": Difference(
        "RFC 9112 6.1: with chunked last the body is chunked (other codings are the "
        "application's to undo); h11 supports Transfer-Encoding: chunked alone",
        httpx=fails(httpx.RemoteProtocolError),
    ),
    "te-chunked-capitals": Difference(
        "the Transfer-Encoding value is kept as sent; h11 lower-cases it",
        httpx=ok(200, b"hello", ("Transfer-Encoding", "chunked")),
    ),
    "te-and-content-length": Difference(
        "same answer (chunked wins), but RFC 9112 6.3 calls the pair a smuggling sign: "
        "Http11Transport does not reuse that connection; h11 does",
        httpx_connections=1,
    ),
    "http-1.0-keep-alive": Difference(
        "an HTTP/1.0 answer with Connection: keep-alive keeps the connection (RFC 9112 "
        "C.2.2); h11 closes every HTTP/1.0 connection",
        httpx_connections=2,
    ),
    "stale-keep-alive-get": Difference(
        "a reused connection closed by the server before any byte of answer is retried "
        "once for an idempotent method (RFC 9110 9.2.2, as aiohttp and browsers do); "
        "httpcore raises",
        httpx=fails(httpx.RemoteProtocolError),
    ),
    "no-proxy-cidr": Difference(
        "a NO_PROXY entry in CIDR form covers the IP hosts inside it (as curl and "
        "requests read it); httpx matches the network address alone",
        httpx=ok(200, b"via proxy", ("Content-Length", "9")),
    ),
}


def expected(name: str, http11: Outcome) -> dict[str, Outcome]:
    """The Outcome each kind must yield for case ``name``."""
    difference = DIFFERENCES.get(name)
    other = http11 if difference is None or difference.httpx is None else difference.httpx
    return {"http11": http11, "httpx": other}


def expected_connections(name: str, http11: int) -> dict[str, int]:
    """The connection count each kind must open for case ``name``."""
    difference = DIFFERENCES.get(name)
    other = http11
    if difference is not None and difference.httpx_connections is not None:
        other = difference.httpx_connections
    return {"http11": http11, "httpx": other}


async def observe(
    kind: str,
    url: str,
    *,
    method: str = "GET",
    times: int = 1,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    timeout: httpx.Timeout | float = 3.0,
    **options: Any,
) -> list[Outcome]:
    """``times`` requests in a row through one client over a fresh transport of ``kind``."""
    outcomes = []
    transport = make_transport(kind, **options)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
        for _ in range(times):
            outcomes.append(await outcome(client, method, url, headers=headers, content=content))
    return outcomes


async def outcome(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Outcome:
    """One request's Outcome; any httpx error becomes its class."""
    try:
        return Outcome.of(await client.request(method, url, **kwargs))
    except httpx.HTTPError as exc:
        return fails(type(exc))


def answer(data: bytes, *, keep: bool = True) -> Responder:
    """A responder sending ``data`` as is; the connection stays open if ``keep``."""

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        conn.sendall(data)
        return keep

    return respond


def parts(chunks: Sequence[bytes], *, pause: float = 0.05, keep: bool = True) -> Responder:
    """A responder sending ``chunks`` in separate writes, ``pause`` seconds apart."""

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        for i, chunk in enumerate(chunks):
            if i and stop.wait(pause):
                return False
            conn.sendall(chunk)
        return keep

    return respond


def half_close(data: bytes) -> Responder:
    """Sends ``data``, shuts the write side (FIN) and keeps reading until the client leaves."""

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 3.0
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                if not conn.recv(65536):
                    break
            except TimeoutError:
                continue
        return False

    return respond


class RawServer6(RawServer):
    """RawServer on an IPv6 address (``host="::1"``); ``url`` brackets the literal."""

    def __post_init__(self) -> None:
        self._listener = socket.create_server((self.host, 0), family=socket.AF_INET6)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop)

    @property
    def url(self) -> str:
        return f"http://[{self.host}]:{self.port}/v1"


def head(status: str, *fields: str, body: bytes = b"") -> bytes:
    """``HTTP/1.1 <status>`` and ``fields`` with CRLF line ends, then ``body``."""
    lines = [f"HTTP/1.1 {status}", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
