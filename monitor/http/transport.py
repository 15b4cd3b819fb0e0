"""Http11Transport: httpx's transport API over a lean asyncio + httptools HTTP/1.1 client.

Why: the aiohttp transport cost ~270 µs of CPU per chat exchange, of which
a bare asyncio.Protocol + httptools client needs ~40 µs (see
benchmarks/transport_cpu.py). This is a drop-in for
monitor.http.aiohttp_transport.AiohttpTransport (same constructor, same contract):

* Requests go out as given: method, path and query, headers in their order
  (host included), body; no redirects, no cookies, no decompression (httpx
  decodes, and reports a broken Content-Encoding). A method, header name or
  value that h11 would refuse raises httpx.LocalProtocolError before any
  byte is written (monitor.http.request). Bodies come back raw through an
  httpx.AsyncByteStream: Content-Length, chunked, or until EOF; the reason
  phrase as sent is the ``reason_phrase`` extension, as httpcore sets it;
  ``network_stream`` (monitor.http.tlsinfo.StreamInfo) answers
  ``get_extra_info("ssl_object")`` with the connection's TLS object, as httpcore's does.
* Trace events (the request's ``"trace"`` extension, see monitor.http.timing):
  ``transport.measures_resolve`` first; on a new connection
  ``connection.connect_tcp.started``, ``connection.resolve.started`` /
  ``.complete`` inside it (not for an IP literal), ``connect_tcp.complete``,
  and for https ``connection.start_tls.started`` / ``.complete`` (TLS is
  timed apart, so no ``transport.tls_in_connect``); failed steps end with
  ``.failed``. Then ``http11.send_request_headers.started``, and
  ``http11.receive_response_headers.complete`` and
  ``http11.receive_response_body.complete`` with ``{"at": perf_counter}``
  of the socket read that completed them. Pool wait is in no event.
* Errors are httpx exceptions chained to the root cause (socket.gaierror,
  ssl.SSLError, ConnectionRefusedError, ConnectionResetError), which
  GatewayClient words: ConnectError / ConnectTimeout while connecting,
  ReadTimeout (no bytes for the ``read`` timeout), RemoteProtocolError
  ("invalid HTTP answer: ...", a server that closed without answering or
  mid-body), ReadError (reset), PoolTimeout; the same classes as httpx's
  default transport (tests/http/test_conformance.py). Cancellation drops
  the connection.
* Pool (monitor.http.pool): ``max_connections`` in use at once, idle
  ones kept ``keepalive_s`` per origin; a connection is reused only after
  its body was read to the end. Waiting for a free connection is bounded by
  the ``pool`` timeout (httpx.PoolTimeout), like httpcore's pool. A reused
  connection that the server had closed (no byte of answer) is retried once
  on a new one for idempotent methods, as aiohttp does (httpcore does not).
* ``trust_env``: SSL_CERT_FILE / SSL_CERT_DIR (httpx.create_ssl_context)
  and proxies. A request whose origin has a proxy by httpx's rules
  (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY, see monitor.http.proxy;
  read once per origin) goes through an inner AiohttpTransport: proxies are
  rare for a monitor, and that transport already handles CONNECT tunnels
  and proxy auth.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from monitor.http.aiohttp_transport import AiohttpTransport
from monitor.http.connection import Connection, Origin
from monitor.http.pool import Pool
from monitor.http.proxy import env_proxy
from monitor.http.request import RequestEncoder, check_request
from monitor.http.rxstamp import StampedSocket
from monitor.http.timing import NO_INFO, TraceFn
from monitor.http.tlsinfo import StreamInfo

_NO_TIMEOUTS: dict[str, float | None] = {}
_PORTS = {"http": 80, "https": 443}
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Body(httpx.AsyncByteStream):
    """The response body; closing it before the end drops the connection."""

    __slots__ = ("_conn", "_finished", "_pool", "_trace")

    def __init__(self, pool: Pool, conn: Connection, trace: TraceFn | None) -> None:
        self._pool = pool
        self._conn: Connection | None = conn
        self._trace = trace
        self._finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        while True:
            chunk = conn.take()
            if chunk:
                yield chunk
            elif conn.done:
                break
            else:
                await conn.wait()
        self._finished = True
        if self._trace is not None:
            await self._trace("http11.receive_response_body.complete", {"at": conn.body_at})

    @property
    def received_at(self) -> float | None:
        """Arrival stamp (perf_counter) of the newest socket read behind the bytes
        yielded so far; a streamed body's consumer times its pieces with it."""
        conn = self._conn
        return None if conn is None else conn.read_at

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.put(conn, reuse=self._finished)


class Http11Transport(httpx.AsyncBaseTransport):
    """An httpx transport over pooled asyncio HTTP/1.1 connections.

    ``max_connections`` bounds the connections in use (requests beyond it
    wait, at most the ``pool`` timeout); ``keepalive_s`` is how long an idle connection is kept;
    ``verify`` is True (system/certifi CAs), False, or an SSLContext. Given
    True or False, the context is made at the first TLS handshake: loading
    the CA bundle costs ~0.8 MB and ~10 ms, which a plain-http gateway never
    needs (the daemon shares one context among its https targets instead).
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_s: float = 5.0,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
    ) -> None:
        self._options: dict[str, Any] = {
            "max_connections": max_connections,
            "keepalive_s": keepalive_s,
            "verify": verify,
            "trust_env": trust_env,
        }
        self._ssl: ssl.SSLContext | None = verify if isinstance(verify, ssl.SSLContext) else None
        self._trust_env = trust_env
        self._pool = Pool(max_connections, keepalive_s)
        self._encoder = RequestEncoder()
        self._proxied: dict[Origin, bool] = {}
        self._proxy_transport: AiohttpTransport | None = None

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            options = self._options
            self._ssl = httpx.create_ssl_context(
                verify=options["verify"], trust_env=options["trust_env"]
            )
        return self._ssl

    def _uses_proxy(self, origin: Origin, url: httpx.URL) -> bool:
        """Whether the environment sets a proxy for ``origin`` (cached per origin)."""
        hit = self._proxied.get(origin)
        if hit is None:
            hit = self._proxied[origin] = env_proxy(url).url is not None
        return hit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in _PORTS or not url.host:
            raise httpx.UnsupportedProtocol(f"cannot send to {scheme}://{url.host}")
        origin = (scheme, url.host, url.port or _PORTS[scheme])
        if self._trust_env and self._uses_proxy(origin, url):
            check_request(request)  # aiohttp has rules of its own: h11's apply here too
            if self._proxy_transport is None:
                self._proxy_transport = AiohttpTransport(**self._options)
            return await self._proxy_transport.handle_async_request(request)
        trace: TraceFn | None = request.extensions.get("trace")
        timeouts = request.extensions.get("timeout") or _NO_TIMEOUTS
        if trace is not None:
            await trace("transport.measures_resolve", NO_INFO)
        # A stream of unknown length goes chunked (httpx then set transfer-encoding).
        chunked = not isinstance(request.stream, httpx.ByteStream) and (
            request.headers.get("transfer-encoding", "").lower() == "chunked"
        )
        data = self._encoder.encode(request, await request.aread(), chunked)
        pool = self._pool
        await pool.slot(timeouts.get("pool"))
        conn: Connection | None = None
        try:
            conn = pool.idle(origin) or await self._connect(origin, timeouts.get("connect"), trace)
            while True:
                conn.begin(timeouts.get("read"))
                if request.method == "HEAD":
                    conn.head_only()
                sent = time.perf_counter()
                conn.transport.write(data)  # type: ignore[union-attr]  # sent now if it fits
                if trace is not None:
                    await trace("http11.send_request_headers.started", {"at": sent})
                try:
                    while conn.status is None:
                        await conn.wait()
                    break
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    if not (conn.reused and conn.received == 0 and request.method in _IDEMPOTENT):
                        raise
                conn.abort()  # the server had closed it while idle: once more, anew
                conn = None
                conn = await self._connect(origin, timeouts.get("connect"), trace)
            if trace is not None:
                # max(): a realtime clock step must not put the answer before the request.
                at = max(conn.headers_at or sent, sent)
                await trace("http11.receive_response_headers.complete", {"at": at})
        except BaseException:
            if conn is None:
                pool.release()
            else:
                pool.put(conn, reuse=False)
            raise
        return httpx.Response(
            status_code=conn.status,
            headers=conn.headers,
            stream=_Body(pool, conn, trace),
            request=request,
            extensions={
                "http_version": conn.version,
                "reason_phrase": conn.reason,
                # httpcore's name: get_extra_info("ssl_object") for the TLS facts.
                "network_stream": StreamInfo(conn.transport),
            },
        )

    async def _connect(
        self, origin: Origin, timeout: float | None, trace: TraceFn | None
    ) -> Connection:
        """A new connection to ``origin``: resolve, TCP, and TLS for https, each traced."""
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        await _emit(trace, "connection.connect_tcp.started")
        try:
            async with asyncio.timeout(timeout):
                sock = await _tcp(loop, await _resolve(loop, host, port, trace))
        except TimeoutError as exc:
            await _emit(trace, "connection.connect_tcp.failed")
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from exc
        except OSError as exc:  # refused, unreachable, DNS (socket.gaierror)
            await _emit(trace, "connection.connect_tcp.failed")
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        conn = Connection(loop, origin)
        conn.sock = sock
        try:
            await loop.create_connection(lambda: conn, sock=sock)
        except BaseException:
            sock.close()
            raise
        await _emit(trace, "connection.connect_tcp.complete")
        if scheme == "https":
            await self._start_tls(loop, conn, host, timeout, trace)
        return conn

    async def _start_tls(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: Connection,
        host: str,
        timeout: float | None,
        trace: TraceFn | None,
    ) -> None:
        """The TLS handshake on ``conn`` (SNI and certificate check for ``host``)."""
        await _emit(trace, "connection.start_tls.started")
        try:
            async with asyncio.timeout(timeout):
                context = self._tls_context()
                tls = await loop.start_tls(conn.transport, conn, context, server_hostname=host)  # type: ignore[arg-type]
        except TimeoutError as exc:
            conn.abort()
            await _emit(trace, "connection.start_tls.failed")
            raise httpx.ConnectTimeout("timed out during the TLS handshake") from exc
        except OSError as exc:  # ssl.SSLError, or a reset during the handshake
            conn.abort()
            await _emit(trace, "connection.start_tls.failed")
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            conn.abort()
            raise
        conn.transport = tls  # type: ignore[assignment]
        await _emit(trace, "connection.start_tls.complete")

    async def aclose(self) -> None:
        self._pool.close()
        if self._proxy_transport is not None:
            await self._proxy_transport.aclose()
            self._proxy_transport = None


async def _emit(trace: TraceFn | None, name: str) -> None:
    if trace is not None:
        await trace(name, NO_INFO)


async def _resolve(
    loop: asyncio.AbstractEventLoop, host: str, port: int, trace: TraceFn | None
) -> list[tuple[int, Any]]:
    """(family, address) pairs for ``host``: an IP literal as is, a name via getaddrinfo."""
    if _is_ip(host):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return [(family, (host, port))]
    await _emit(trace, "connection.resolve.started")
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        await _emit(trace, "connection.resolve.failed")
        raise
    await _emit(trace, "connection.resolve.complete")
    return [(family, address) for family, _, _, _, address in infos]


async def _tcp(loop: asyncio.AbstractEventLoop, addresses: list[tuple[int, Any]]) -> StampedSocket:
    """A connected socket (kernel receive stamps) to the first address that accepts."""
    error: OSError = OSError("no address to connect to")
    for family, address in addresses:
        sock = StampedSocket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error
