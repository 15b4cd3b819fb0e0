"""AiohttpTransport: httpx's transport API over an aiohttp connection pool.

Why: httpcore (httpx's default transport) re-checks every pooled connection
on each request, so its CPU cost per request grows with the number of
connections; at 50 probes in flight that queueing landed in the measured
latency (see benchmarks/README.md). aiohttp's pool costs the same per
request at any concurrency. httpx stays the API: GatewayClient builds
httpx requests and reads httpx responses, and any httpx transport can
still be passed in its place.

Contract:

* Requests go out as given: headers (user-agent, authorization, host...),
  body, no redirects followed (httpx's client decides that), no cookies
  kept here (httpx's client keeps them). Bodies come back raw and are
  decoded by httpx, so a broken Content-Encoding is an httpx.DecodingError.
  The ``network_stream`` extension (monitor.http.tlsinfo.StreamInfo)
  answers ``get_extra_info("ssl_object")`` as httpcore's does.
* Phase events go to the request's ``"trace"`` extension, an async callable
  ``trace(name, info)`` like httpcore's, with httpcore's event names where
  the step is the same (see monitor.http.timing): ``connection.resolve.*``
  (aiohttp's DNS signals; a DNS-cache hit or an IP literal resolves
  nothing), ``connection.connect_tcp.*`` (a new connection: name
  resolution, TCP and, for https, the TLS handshake, which aiohttp does in
  the same ``loop.create_connection`` call and so cannot be timed apart),
  ``http11.send_request_headers.started``,
  ``http11.receive_response_headers.complete`` and
  ``http11.receive_response_body.complete``; all three carry
  ``{"at": perf_counter}``. The start is when the request's first bytes
  were handed to the socket (aiohttp writes a body from a task a loop turn
  after it signals the headers; this event is therefore traced only once
  the answer's headers are in, or when the request fails, never dropped).
  The answer's events are when the kernel received its first and last
  bytes (``SO_TIMESTAMPNS``, monitor.http.rxstamp), else when the loop read
  them; at many requests in flight both are well before the waiting
  coroutine resumes, and the kernel time also leaves out the loop turns
  an answer waited in the socket buffer (see monitor.http.aiohttp_trace:
  StampedHandler, _request_end). Two flags come first: ``transport.measures_resolve`` and,
  for https, ``transport.tls_in_connect``. Time waiting for a free
  connection (aiohttp's connection_queued signals) is in no event.
* Kernel stamps need Linux and asyncio's own selector loop (which reads
  through the socket object; uvloop does not) and a connection this
  transport opened itself (not an https tunnel through a proxy); TLS is
  stamped too (the ciphertext reads). Elsewhere the read and
  headers-signal times are used, as before.
* Every aiohttp error is raised as the httpx exception of the same kind,
  chained (``from``) to the original, so the cause (socket.gaierror,
  ssl.SSLError, ConnectionRefusedError...) stays readable.
* ``trust_env``: HTTP(S)_PROXY / ALL_PROXY / NO_PROXY by httpx's rules
  (monitor.http.proxy) and SSL_CERT_FILE / SSL_CERT_DIR, like httpx's
  default client, read once (proxies: once per origin)
  rather than per request: aiohttp's own ``trust_env`` re-reads the
  environment and parses ~/.netrc on every request, which profiled at
  ~20 % of the daemon's CPU.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx

from monitor.http.aiohttp_trace import StampedHandler, Stamps, backdated, trace_config
from monitor.http.proxy import NO_PROXY, EnvProxy, env_proxy
from monitor.http.rxstamp import SocketRegistry
from monitor.http.timing import NO_INFO, TraceFn
from monitor.http.tlsinfo import StreamInfo

_CHUNK = 1 << 16

# Most specific first: the first isinstance match wins.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.HTTPError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientHttpProxyError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, DNS, TLS
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),  # reset or cut mid-body
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # not HTTP
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.NetworkError),
)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """Re-raise aiohttp errors as httpx errors; anything else passes through."""
    try:
        yield
    except aiohttp.ClientError as exc:
        message = str(exc) or type(exc).__name__
        if type(exc) is aiohttp.ClientResponseError:  # a parse error: drop "400, url=..."
            message = f"invalid HTTP answer: {exc.message}"
        for source, target in _ERRORS:
            if isinstance(exc, source):
                # Chain to the root cause when aiohttp wrapped one (gaierror,
                # SSLError, ConnectionRefusedError): that is what gets worded.
                raise target(message) from (exc.__cause__ or exc)
        raise  # pragma: no cover - ClientError is the last row


def _cut_short(exc: aiohttp.ClientPayloadError) -> tuple[httpx.ReadError, BaseException]:
    """The body ended early: the httpx error and its cause (a reset, or aiohttp's error).

    aiohttp keeps the socket error only in its message ("... .
    ConnectionResetError(104, ...)"); a reset is re-attached as a real
    ConnectionResetError so GatewayClient words it like any other reset.
    """
    if "ConnectionResetError" in str(exc):
        reset = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        return httpx.ReadError("connection reset by peer"), reset
    why = getattr(exc.__cause__, "message", None) or str(exc.__cause__ or exc)
    return httpx.ReadError(f"connection closed mid-body: {why}"), exc


class _Body(httpx.AsyncByteStream):
    """The response body as an httpx stream; closing it early drops the connection."""

    def __init__(self, response: aiohttp.ClientResponse, stamps: Stamps | None) -> None:
        self._response = response
        self._stamps = stamps

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            try:
                async for chunk in self._response.content.iter_chunked(_CHUNK):
                    yield chunk
            except aiohttp.ClientPayloadError as exc:
                error, cause = _cut_short(exc)
                raise error from cause
        if self._stamps is not None:
            at = self._stamps.body_at
            await self._stamps.trace("http11.receive_response_body.complete", backdated(at))

    async def aclose(self) -> None:
        response = self._response
        if response.content.at_eof():
            response.release()  # fully read: the connection goes back to the pool
        else:
            response.close()  # half read (capped, timed out): never reuse it


def _transport_of(response: aiohttp.ClientResponse) -> Any:
    """The asyncio transport that carried ``response``, for its ``network_stream``.

    Its connection while the response holds it; aiohttp hands a connection
    back to the pool as soon as a short body is in (often before the response
    is returned), and then only the protocol it was read with (private,
    hence getattr: a later aiohttp without it gives None, not an error) still
    names it.
    """
    connection = response.connection
    if connection is not None:
        return connection.transport
    return getattr(getattr(response, "_protocol", None), "transport", None)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp ClientSession, created on first use.

    ``max_connections`` bounds the pool (requests beyond it wait, untimed);
    ``keepalive_s`` is how long an idle connection is kept; ``verify`` is
    True (system/certifi CAs), False, or an SSLContext. The session is
    created lazily because aiohttp binds it to the running event loop,
    and GatewayClient may be built before the loop runs.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_s: float = 5.0,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._ssl = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}
        self._proxies: dict[tuple[str, str, int | None], EnvProxy] = {}

    def _open(self) -> aiohttp.ClientSession:
        sockets = SocketRegistry()  # kernel receive stamps (monitor.http.rxstamp)
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_s,
            ssl=self._ssl,
            socket_factory=sockets,
        )
        if hasattr(connector, "_factory"):  # aiohttp's protocol factory; else no stamps
            connector._factory = functools.partial(
                StampedHandler, loop=asyncio.get_running_loop(), sockets=sockets
            )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trace_configs=[trace_config()],
            trust_env=False,  # read once in _proxy(), not per request
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx's client owns cookies
            auto_decompress=False,  # httpx decodes, and reports broken encodings
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        """aiohttp's per-socket timeouts from httpx's per-request ones (cached)."""
        limits = request.extensions.get("timeout") or {}
        key = (limits.get("connect"), limits.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=key[0], sock_read=key[1])
            self._timeouts[key] = timeout
        return timeout

    def _proxy(self, url: httpx.URL) -> EnvProxy:
        """The environment's proxy for ``url``'s origin (cached), or no proxy."""
        key = (url.scheme, url.host, url.port)
        proxy = self._proxies.get(key)
        if proxy is None:
            proxy = self._proxies[key] = env_proxy(url) if self._trust_env else NO_PROXY
        return proxy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        trace: TraceFn | None = request.extensions.get("trace")
        stamps = None if trace is None else Stamps(trace)
        if trace is not None:
            await trace("transport.measures_resolve", NO_INFO)
            if request.url.scheme == "https":
                await trace("transport.tls_in_connect", NO_INFO)
        body = await request.aread()
        proxy = self._proxy(request.url)
        headers = request.headers.multi_items()
        if proxy.headers is not None and request.url.scheme == "http":
            # aiohttp sends proxy_headers on a CONNECT only (https); a plain http
            # request goes to the proxy itself and carries the proxy's auth.
            headers += proxy.headers.items()
        try:
            with _httpx_errors():
                response = await session.request(
                    request.method,
                    str(request.url),
                    headers=headers,
                    data=body or None,
                    allow_redirects=False,
                    timeout=self._timeout(request),
                    trace_request_ctx=stamps,
                    proxy=proxy.url,
                    proxy_headers=proxy.headers,
                )
        except BaseException:
            # Sent but never answered (timeout, reset, cancelled): the start
            # is still traced, so the failure is timed and worded from it.
            if stamps is not None:
                await stamps.started(stamps.sent_at)
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, stamps),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
                "network_stream": StreamInfo(_transport_of(response)),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
