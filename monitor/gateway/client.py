"""GatewayClient: the two calls nexomon makes, each returned as an Exchange.

Contract:

* ``list_models()`` and ``chat()`` never raise for gateway or network
  trouble. Every transport problem becomes an Exchange with ``failure`` set:
  ``"timeout"``, ``"connection"`` (refused, reset, DNS, TLS, protocol
  garbage), ``"too_large"`` (the body passed ``max_body_bytes``, counted
  while decoding) or ``"decoding"`` (a broken, unsupported or nested
  Content-Encoding). Cancellation from outside
  still propagates.
* ``timeout`` bounds the whole exchange, pool wait and body included: httpx's
  own timeouts are per read, so a server dripping one byte a second would
  otherwise never time out.
* The body is read streaming and capped; the connection is closed as soon
  as the cap is passed.
* The default transport is monitor.http.transport.Http11Transport, httpx's API over
  a lean HTTP/1.1 client chosen by measurement (benchmarks/transport_cpu.py,
  README "Design notes"); behind an environment proxy it hands the request
  to monitor.http.aiohttp_transport.AiohttpTransport. The Exchange is monitor.gateway.exchange's.
* Timings come from the transport's trace events (see monitor.http.timing): time
  spent queueing for a free pooled connection is not gateway latency.
* The API key goes only into the Authorization header. It is removed from
  ``failure_detail``, from the whitelisted header values and from the body
  before it is parsed (a gateway may echo a bad key in its error message).
* ``tls`` is the monitor.http.tlsinfo.TlsInfo (leaf notAfter, TLS version)
  of the connection that served the last ``list_models()`` answer whose
  headers arrived over TLS: read from that connection's ssl object, so no
  extra connection is made; None before one, for http, and behind a
  transport that does not expose ``network_stream``. A failed exchange
  leaves the last one. Chat exchanges never read it (no per-request cost).
* ``stream_chat()`` asks for ``stream: true``: a 2xx ``text/event-stream``
  body is handed to its ``StreamSink`` as it arrives (decoded, each piece
  with its arrival time: the socket read's kernel stamp where the
  transport exposes one, ``received_at``, else the time of the read) and
  is not kept in the Exchange (``body`` None, no ``parse_error``). The cap
  and the timeout bound it as any body: a stalled stream is a
  ``"timeout"``. Any other answer (an error status, a JSON body) is read
  and parsed as usual. ``parse_json`` gives the sink the cleaning the
  client applies to bodies (key removed, ``clean_json``).
* Every string of an Exchange that came from the gateway has passed
  monitor.untrusted.clean: valid UTF-8 and free of the key in any encoding
  (a JSON ``\\/`` or ``\\u`` escape, percent-encoding...); the parsed body's
  strings and keys included (``clean_json``).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

from monitor import __version__
from monitor.gateway.body import EVENT_STREAM, Received, StreamSink, parse_body, read_body
from monitor.gateway.decoding import ACCEPT_ENCODING, DecodingFailed, TooLarge
from monitor.gateway.exchange import (
    FAILURE_CONNECTION,
    FAILURE_DECODING,
    FAILURE_TIMEOUT,
    FAILURE_TOO_LARGE,
    Exchange,
    connection_detail,
)
from monitor.gateway.headers import GatewayHeaders, one_line, read_headers
from monitor.http.timing import HEADERS, SENT, PhaseClock
from monitor.http.tlsinfo import TlsInfo, response_tls
from monitor.http.transport import Http11Transport
from monitor.results import Phases

USER_AGENT = f"nexomon/{__version__}"


def _checked_host(base_url: str) -> str:
    """The host of ``base_url``; ValueError for a URL no request could use.

    A bad base URL is a config bug, reported once at construction rather
    than as a failed probe every interval.
    """
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid base_url: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("invalid base_url: must be http(s)://host[:port]/path")
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"invalid base_url: port {url.port} is out of range")
    return url.host


class GatewayClient:
    """An httpx.AsyncClient bound to one gateway base URL and API key.

    ``base_url`` is the API root, e.g. ``https://api.nexorouter.com/v1``;
    a URL that is not http(s) with a host and a valid port raises ValueError.
    ``transport`` replaces the default Http11Transport with any httpx
    transport: httpx.AsyncHTTPTransport (httpcore: tls timed apart, resolve
    not), or an ASGITransport in tests; one without trace events gets
    coarser phases (see monitor.http.timing). ``max_connections`` applies to the
    default transport only. ``max_body_bytes`` caps the decoded body.
    ``user_agent`` is sent on every request (the daemon adds its location).
    ``verify`` (default transport only): True, False or an SSLContext, which
    the daemon shares among its targets (a context per client costs ~0.8 MB).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        max_body_bytes: int = 1 << 20,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
        user_agent: str = USER_AGENT,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._max_body_bytes = max_body_bytes
        self._host = _checked_host(self._base_url)
        if transport is None:
            # trust_env as below: HTTP(S)_PROXY / ALL_PROXY / NO_PROXY, SSL_CERT_FILE/_DIR.
            transport = Http11Transport(
                max_connections=max_connections, trust_env=True, verify=verify
            )
        self._client = httpx.AsyncClient(
            headers={
                "user-agent": user_agent,
                "accept": "application/json",
                # Only what CappedDecoder can inflate in capped slices.
                "accept-encoding": ACCEPT_ENCODING,
                "authorization": f"Bearer {api_key}",
            },
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            follow_redirects=False,  # a redirect is an answer to report, not to follow
            # Like curl: honour HTTP(S)_PROXY / ALL_PROXY / SSL_CERT_FILE, which some hosts need to
            # reach the gateway at all; behind a proxy the phases time the proxy hop.
            trust_env=True,
        )
        # Requests are built here and handed to the transport directly: httpx's
        # client layer (URL and header merging, cookie extraction through
        # urllib's cookiejar, auth and redirect machinery) profiled at a
        # quarter of the daemon's CPU and nexomon uses none of it per request.
        # The client stays as the source of the merged default headers
        # (accept-encoding, connection...) and closes the transport.
        self._transport = transport
        self._headers = self._client.headers
        self._cookies = self._client.cookies  # kept as httpx's client keeps them
        self._has_cookies = False  # the gateway ever set one
        self._timeouts = httpx.Timeout(timeout).as_dict()
        self._templates: dict[tuple[str, str], httpx.Request] = {}
        self.tls: TlsInfo | None = None  # see the module docstring

    def __repr__(self) -> str:
        return f"GatewayClient({self._base_url!r}, timeout={self._timeout})"

    async def list_models(self) -> Exchange:
        """GET {base_url}/models."""
        return await self._exchange("GET", "/models", None, read_tls=True)

    async def chat(self, model: str, prompt: str, max_tokens: int) -> Exchange:
        """POST {base_url}/chat/completions: one non-streaming user message."""
        payload = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
        }
        return await self._exchange("POST", "/chat/completions", payload)

    async def stream_chat(
        self, model: str, prompt: str, max_tokens: int, sink: StreamSink
    ) -> Exchange:
        """POST {base_url}/chat/completions with ``stream: true`` and usage asked for;
        a 2xx event stream goes to ``sink`` (see the module docstring)."""
        payload = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        accept = {"accept": f"{EVENT_STREAM}, application/json"}
        return await self._exchange("POST", "/chat/completions", payload, headers=accept, sink=sink)

    def parse_json(self, raw: bytes) -> tuple[Any, str | None]:
        """One JSON document of a streamed body, cleaned as bodies are: (value, None)
        or (None, what is wrong)."""
        return parse_body(raw, "application/json", self._api_key)

    async def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: Mapping[str, str | None] | None = None,
    ) -> Exchange:
        """Any other call (the contract checks): ``headers`` change this request's
        defaults (a None value removes one, e.g. Authorization from a CORS preflight)."""
        return await self._exchange(method, path, payload, headers=headers)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _exchange(
        self,
        method: str,
        path: str,
        payload: Any,
        *,
        read_tls: bool = False,
        headers: Mapping[str, str | None] | None = None,
        sink: StreamSink | None = None,
    ) -> Exchange:
        started_at = datetime.now(UTC)
        clock = PhaseClock()
        got = Received(read_tls=read_tls, sink=sink)
        failure: str | None = None
        detail: str | None = None
        try:
            async with asyncio.timeout(self._timeout):
                await self._send(method, path, payload, clock, got, headers)
        except (TimeoutError, httpx.TimeoutException):
            failure = FAILURE_TIMEOUT
            detail = f"timed out after {self._timeout:g}s {clock.stage()}"
        except TooLarge:
            failure = FAILURE_TOO_LARGE
            detail = f"response body larger than {self._max_body_bytes} bytes"
        except DecodingFailed as exc:
            failure = FAILURE_DECODING
            detail = f"cannot decode the body: {exc}"
        except httpx.DecodingError as exc:
            failure = FAILURE_DECODING
            detail = f"cannot decode the body: {exc}"
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            failure = FAILURE_CONNECTION
            detail = connection_detail(exc, clock, self._host)
        stop = time.perf_counter()
        if got.tls is not None:
            self.tls = got.tls
        phases, duration = clock.phases(stop)
        return self._build(method, path, started_at, got, failure, detail, phases, duration)

    async def _send(
        self,
        method: str,
        path: str,
        payload: Any,
        clock: PhaseClock,
        got: Received,
        headers: Mapping[str, str | None] | None = None,
    ) -> None:
        request = self._request(method, path, payload, clock, headers)
        clock.mark(SENT)
        response = await self._transport.handle_async_request(request)
        try:
            clock.mark(HEADERS)
            if got.read_tls:
                got.tls = response_tls(response)
            got.status, got.headers = response.status_code, read_headers(response.headers)
            if "set-cookie" in response.headers:
                self._cookies.extract_cookies(response)
                self._has_cookies = True
            declared = got.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_body_bytes:
                raise TooLarge
            await read_body(response, got, self._max_body_bytes, clock)
        finally:
            # Closing a half-read response drops the connection instead of
            # returning it to the pool, which is what a capped body needs.
            await response.aclose()

    def _request(
        self,
        method: str,
        path: str,
        payload: Any,
        clock: PhaseClock,
        changes: Mapping[str, str | None] | None = None,
    ) -> httpx.Request:
        """The request httpx's client would build: same URL, headers, body, timeouts.

        No redirects are followed and no auth flow runs (there is none to
        run); cookies a gateway set are sent back, as httpx's client does.
        httpx.Request builds one template per (method, path); each request
        copies its URL and headers and sets only the body and Content-Length
        (encoded as httpx encodes JSON): ~8 µs of CPU instead of ~22 µs.
        """
        if self._client.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        template = self._templates.get((method, path))
        if template is None:
            template = httpx.Request(
                method, self._base_url + path, headers=self._headers, json=payload
            )
            self._templates[(method, path)] = template
        headers = httpx.Headers(template.headers)
        for name, value in (changes or {}).items():
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        if payload is None:
            body = b""
        else:
            body = json.dumps(
                payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
            headers["Content-Length"] = str(len(body))
        # stream=: httpx adds no headers of its own; the template's are complete.
        request = httpx.Request(
            method,
            template.url,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"trace": clock, "timeout": self._timeouts},
        )
        # Not `if jar:`: CookieJar's len() walks the whole jar on every request.
        if self._has_cookies:
            self._cookies.set_cookie_header(request)
        return request

    def _build(
        self,
        method: str,
        path: str,
        started_at: datetime,
        got: Received,
        failure: str | None,
        detail: str | None,
        phases: Phases,
        duration: float | None,
    ) -> Exchange:
        headers = GatewayHeaders.parse(got.headers or {}, self._api_key)
        content_type = None
        if got.headers and "content-type" in got.headers:
            content_type = one_line(got.headers["content-type"].split(";")[0], 80, self._api_key)
        body: Any = None
        parse_error: str | None = None
        if failure is None and got.status is not None and not got.streamed:
            body, parse_error = parse_body(bytes(got.body), content_type, self._api_key)
        return Exchange(
            method=method,
            path=path,
            started_at=started_at,
            status=got.status,
            body=body,
            parse_error=parse_error,
            failure=failure,
            failure_detail=None if detail is None else one_line(detail, 200, self._api_key),
            request_id=headers.request_id,
            ratelimits=headers.ratelimits,
            cors=headers.cors,
            retry_after_s=headers.retry_after_s,
            phases=phases,
            duration_s=duration,
            body_bytes=len(got.body),
            content_type=content_type or None,
        )
