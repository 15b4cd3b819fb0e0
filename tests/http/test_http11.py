"""Http11Transport over real sockets: framing, pool, phases, errors, hostile peers.

Behaviours both transports share run over both (``any_transport``), so the
lean transport is held to what AiohttpTransport already does; the rest is
specific to Http11Transport (TLS timed apart, per-read timeouts, pool rules).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from gwfixtures import (  # noqa: F401 - the fixtures
    RawRequest,
    SelfSigned,
    ServeFn,
    _head,
    answer_garbage,
    closed_port,
    drip,
    read_request,
    reply,
    reset,
    reset_mid_body,
    self_signed_fixture,
    serve_fixture,
)
from testutil import need_localhost

from monitor.gateway.client import GatewayClient
from monitor.http.aiohttp_transport import AiohttpTransport
from monitor.http.transport import Http11Transport

KEY = "sk-nexomon-http11-7d41a2"
MODELS = {"object": "list", "data": [{"id": "m1", "object": "model"}]}
TransportFactory = Callable[..., httpx.AsyncBaseTransport]


@pytest.fixture(name="any_transport", params=[AiohttpTransport, Http11Transport])
def any_transport_fixture(request: pytest.FixtureRequest) -> TransportFactory:
    return request.param  # type: ignore[no-any-return]


def client(base_url: str, transport: httpx.AsyncBaseTransport, **kwargs: Any) -> GatewayClient:
    options: dict[str, Any] = {"timeout": 3.0, **kwargs}
    return GatewayClient(base_url, KEY, transport=transport, **options)


class Trace:
    """A trace callback keeping (name, info) in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.events.append((name, info))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]


@pytest.fixture(name="h11")
async def h11_fixture() -> AsyncIterator[Callable[..., Http11Transport]]:
    """``h11(**options)``: an Http11Transport closed at teardown."""
    made: list[Http11Transport] = []

    def make(**options: Any) -> Http11Transport:
        made.append(Http11Transport(**options))
        return made[-1]

    yield make
    for transport in made:
        await transport.aclose()


async def fetch(
    transport: httpx.AsyncBaseTransport,
    url: str,
    *,
    method: str = "GET",
    trace: Trace | None = None,
    connect: float | None = 3.0,
    read: float | None = 3.0,
) -> tuple[httpx.Response, bytes]:
    extensions: dict[str, Any] = {"timeout": {"connect": connect, "read": read}}
    if trace is not None:
        extensions["trace"] = trace
    request = httpx.Request(method, url, extensions=extensions)
    response = await transport.handle_async_request(request)
    try:
        body = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
    finally:
        await response.aclose()
    return response, body


def raw_answer(data: bytes, *, keep: bool = True) -> Callable[..., bool]:
    """A responder sending ``data`` as is; keeps the connection open if ``keep``."""

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        conn.sendall(data)
        return keep

    return respond


# -- both transports ------------------------------------------------------


def _close_after_request(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    conn.close()


def _not_http(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    conn.close()


def _reset_before_answer(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    reset(conn)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (_close_after_request, "disconnected"),
        (_not_http, "invalid http answer: bad status line"),
        (_reset_before_answer, "reset"),
    ],
    ids=["closed-without-answer", "not-http", "reset"],
)
async def test_broken_answers_are_connection_failures(
    serve: ServeFn, any_transport: TransportFactory, raw: Any, words: str
) -> None:
    server = serve(raw=raw)
    async with client(server.base_url, any_transport()) as gw:
        ex = await gw.chat("m", "p", 1)
    assert (ex.failure, ex.status) == ("connection", None)
    assert ex.failure_detail and words in ex.failure_detail.lower()


async def test_reset_mid_body_is_worded_as_a_reset(
    serve: ServeFn, any_transport: TransportFactory
) -> None:
    async with client(serve(reset_mid_body()).base_url, any_transport()) as gw:
        ex = await gw.list_models()
    assert ex.failure == "connection" and "reset" in (ex.failure_detail or "")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_answers_are_read_and_the_connection_reused(
    serve: ServeFn, any_transport: TransportFactory, chunked: bool
) -> None:
    big = {"data": ["x" * 100] * 3000}  # ~300 kB: several reads, flow control
    server = serve(reply(200, big, chunked=chunked, headers={"x-request-id": "r-1"}))
    async with client(server.base_url, any_transport(), max_body_bytes=1 << 22) as gw:
        first = await gw.list_models()
        second = await gw.chat("m1", "hi", 1)
    assert first.body == big and second.body == big and first.request_id == "r-1"
    assert server.connections == 1
    assert server.requests[1].json()["messages"] == [{"role": "user", "content": "hi"}]


async def test_failures_before_any_answer(
    serve: ServeFn, any_transport: TransportFactory, self_signed: SelfSigned
) -> None:
    tls = serve(reply(200, MODELS), tls=self_signed.server_context())
    plain = serve(raw=answer_garbage)
    cases = [
        (f"http://127.0.0.1:{closed_port()}/v1", "connection refused"),
        ("http://nonexistent.invalid/v1", "DNS lookup failed for nonexistent.invalid"),
        (tls.base_url, "CERTIFICATE_VERIFY_FAILED"),
        (plain.base_url.replace("http:", "https:"), "TLS handshake failed"),
    ]
    for base_url, words in cases:
        async with client(base_url, any_transport()) as gw:
            ex = await gw.list_models()
        assert ex.failure == "connection" and words in (ex.failure_detail or ""), ex


# -- Http11Transport ------------------------------------------------------


async def test_https_times_tls_apart_and_reuses_the_connection(
    serve: ServeFn, self_signed: SelfSigned, h11: Callable[..., Http11Transport]
) -> None:
    server = serve(reply(200, MODELS), tls=self_signed.server_context())
    transport = h11(verify=self_signed.client_context())
    async with client(server.base_url, transport) as gw:
        first = await gw.list_models()
        reused = await gw.list_models()
    assert first.status == 200 and first.body == MODELS and server.connections == 1
    p = first.phases
    assert p.tls > 0 and p.connect > 0 and p.resolve == 0.0  # an IP literal resolves nothing
    assert first.duration_s is not None
    assert p.connect + p.tls + p.processing + p.transfer <= first.duration_s
    assert (reused.phases.tls, reused.phases.connect) == (0.0, 0.0)


async def test_trace_events_in_order_with_backdated_arrivals(
    serve: ServeFn, self_signed: SelfSigned, h11: Callable[..., Http11Transport]
) -> None:
    server = serve(reply(200, MODELS), tls=self_signed.server_context())
    transport = h11(verify=self_signed.client_context())
    new, reused = Trace(), Trace()
    await fetch(transport, server.base_url + "/models", trace=new)
    await fetch(transport, server.base_url + "/models", trace=reused)
    answer = [
        "http11.send_request_headers.started",
        "http11.receive_response_headers.complete",
        "http11.receive_response_body.complete",
    ]
    assert new.names == [
        "transport.measures_resolve",
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "connection.start_tls.started",
        "connection.start_tls.complete",
        *answer,
    ]
    assert reused.names == ["transport.measures_resolve", *answer]
    stamps = [info["at"] for name, info in reused.events if name.startswith("http11.")]
    assert all(isinstance(at, float) for at in stamps) and stamps == sorted(stamps)


async def test_a_host_name_is_resolved_in_its_own_phase(
    serve: ServeFn, h11: Callable[..., Http11Transport]
) -> None:
    server = serve(reply(200, MODELS))
    need_localhost(server.port)
    trace = Trace()
    await fetch(h11(), f"http://localhost:{server.port}/v1/models", trace=trace)
    names = trace.names
    assert (
        names.index("connection.connect_tcp.started")
        < names.index("connection.resolve.started")
        < names.index("connection.resolve.complete")
        < names.index("connection.connect_tcp.complete")
    )


async def test_the_request_goes_out_as_given(
    serve: ServeFn, h11: Callable[..., Http11Transport]
) -> None:
    server = serve(reply(200, MODELS))
    request = httpx.Request(
        "POST",
        server.base_url + "/chat/completions?x=1&y=%20",
        headers={"X-Custom": "v", "Authorization": "Bearer k"},
        content=b'{"a": 1}',
    )
    response = await h11().handle_async_request(request)
    await response.aread()
    await response.aclose()
    got = server.requests[0]
    assert (got.method, got.path, got.body) == (
        "POST",
        "/v1/chat/completions?x=1&y=%20",
        b'{"a": 1}',
    )
    assert got.headers["host"] == f"127.0.0.1:{server.port}"
    assert (got.headers["x-custom"], got.headers["content-length"]) == ("v", "8")
    assert response.extensions["http_version"] == b"HTTP/1.1"


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end", b"until the end"),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nhi", b"hi"),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi", b"hi"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n\r\n", b"hi"),
    ],
    ids=["read-until-close", "http-1.0", "100-continue", "extra-answer"],
)
async def test_framing_and_when_a_connection_is_not_reused(
    serve: ServeFn, h11: Callable[..., Http11Transport], answer: bytes, body: bytes
) -> None:
    server = serve(raw_answer(answer, keep=b"close" not in answer))
    transport = h11()
    first = await fetch(transport, server.base_url)
    second = await fetch(transport, server.base_url)
    assert first[1] == body and second[1] == body and first[0].status_code == 200
    reusable = b"100 Continue" in answer
    assert server.connections == (1 if reusable else 2)


async def test_head_answers_end_with_their_headers(
    serve: ServeFn, h11: Callable[..., Http11Transport]
) -> None:
    server = serve(raw_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n"))
    response, body = await fetch(h11(), server.base_url, method="HEAD")
    assert (response.status_code, body) == (200, b"")


async def test_a_body_cut_short_by_the_server_is_a_protocol_error(
    serve: ServeFn, h11: Callable[..., Http11Transport]
) -> None:
    server = serve(raw_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart", keep=False))
    with pytest.raises(httpx.RemoteProtocolError, match="closed the connection mid-body"):
        await fetch(h11(), server.base_url)


async def test_an_oversized_response_head_is_refused(
    serve: ServeFn, h11: Callable[..., Http11Transport]
) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"x-filler: " + b"a" * 200_000 + b"\r\n\r\n"
    server = serve(raw_answer(head))
    with pytest.raises(httpx.RemoteProtocolError, match="invalid HTTP answer: response head"):
        await fetch(h11(), server.base_url)


async def test_read_timeout_is_per_read(
    serve: ServeFn, h11: Callable[..., Http11Transport]
) -> None:
    body = b'{"a": 1}'
    server = serve(drip(body, interval=0.1))
    transport = h11()
    _, got = await fetch(transport, server.base_url, read=1.0)  # 8 reads, each in time
    assert got == body
    slow = serve(drip(body, interval=1.0))
    with pytest.raises(httpx.ReadTimeout):
        await fetch(transport, slow.base_url, read=0.2)
    assert transport._pool.stats()["free"] == 100  # the slot came back; the connection did not
    assert transport._pool.stats()["idle"] == {("http", "127.0.0.1", server.port): 1}


async def test_a_stalled_tls_handshake_is_a_connect_timeout(
    serve: ServeFn, h11: Callable[..., Http11Transport]
) -> None:
    def silent(conn: socket.socket, stop: threading.Event) -> None:
        stop.wait(10)

    server = serve(raw=silent)
    trace = Trace()
    with pytest.raises(httpx.ConnectTimeout):
        await fetch(h11(), server.base_url.replace("http:", "https:"), trace=trace, connect=0.2)
    assert trace.names[-2:] == ["connection.start_tls.started", "connection.start_tls.failed"]


async def test_cancelling_an_exchange_drops_its_connection(
    serve: ServeFn, h11: Callable[..., Http11Transport]
) -> None:
    server = serve(reply(200, MODELS, delay=30))
    transport = h11(max_connections=1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await fetch(transport, server.base_url)
    assert transport._pool.stats() == {"free": 1, "waiting": 0, "idle": {}}
    fast = serve(reply(200, MODELS))
    _, body = await fetch(transport, fast.base_url)  # the only slot is free again
    assert body


async def test_idle_connections_expire_and_server_closes_are_noticed(
    serve: ServeFn, h11: Callable[..., Http11Transport]
) -> None:
    server = serve(reply(200, MODELS))
    transport = h11(keepalive_s=0.2)
    await fetch(transport, server.base_url)
    await asyncio.sleep(0.5)
    await fetch(transport, server.base_url)
    assert server.connections == 2  # the first one had expired
    closing = serve(raw_answer(_head(200, {"content-length": "2"}) + b"ok", keep=False))
    await fetch(transport, closing.base_url, method="POST")
    await asyncio.sleep(0.2)  # the server's FIN reaches the idle connection
    _, body = await fetch(transport, closing.base_url, method="POST")
    assert body == b"ok" and closing.connections == 2


@pytest.mark.parametrize("size", [2, 1_000_000], ids=["arrived-whole", "still-arriving"])
async def test_a_body_closed_before_its_end_drops_the_connection(
    serve: ServeFn, h11: Callable[..., Http11Transport], size: int
) -> None:
    server = serve(reply(200, b"x" * size))
    transport = h11()
    response = await transport.handle_async_request(httpx.Request("GET", server.base_url))
    if size > 2:
        async for _ in response.stream:  # type: ignore[union-attr]
            break
    await response.aclose()  # even a body already in our buffers was not read to its end
    await fetch(transport, server.base_url)
    assert server.connections == 2


async def test_environment_proxies_go_through_the_aiohttp_transport(
    serve: ServeFn, monkeypatch: pytest.MonkeyPatch, h11: Callable[..., Http11Transport]
) -> None:
    proxy = serve(reply(200, MODELS))
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.base_url.removesuffix("/v1"))
    async with client("http://gateway.invalid/v1", h11()) as gw:
        ex = await gw.list_models()
    assert ex.status == 200 and ex.body == MODELS
    assert proxy.requests[0].path == "http://gateway.invalid/v1/models"


async def test_unsupported_schemes_and_closing_twice(h11: Callable[..., Http11Transport]) -> None:
    transport = h11()
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.handle_async_request(httpx.Request("GET", "ftp://example.com/"))
    await transport.aclose()
    await transport.aclose()
