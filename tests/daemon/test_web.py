"""The HTTP routes, served by a real uvicorn on a real socket in the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from monitor.daemon.web import WebServer, build_app, serve

TOKEN = "s3cret-token"


@dataclass
class Callbacks:
    """What the daemon would pass: readiness and status, switchable per test."""

    readiness: tuple[bool, str] = (True, "")
    status_doc: dict[str, Any] = field(default_factory=lambda: {"targets": []})
    fail: bool = False
    gate: threading.Event | None = None  # when set, status() blocks until the event is set

    def ready(self) -> tuple[bool, str]:
        if self.fail:
            raise RuntimeError("database is on fire")
        return self.readiness

    def status(self) -> dict[str, Any]:
        if self.gate is not None:
            self.gate.wait(timeout=30)
        if self.fail:
            raise RuntimeError("database is on fire")
        return self.status_doc


@dataclass
class Served:
    base_url: str
    port: int
    callbacks: Callbacks
    client: httpx.AsyncClient


async def start(
    token: str | None, status_token: str | None = None, max_connections: int | None = None
) -> tuple[WebServer, Served]:
    registry = CollectorRegistry()
    Counter("nexomon_test_events", "A test counter.", registry=registry).inc(3)
    callbacks = Callbacks()
    app = build_app(
        registry=registry,
        ready=callbacks.ready,
        status=callbacks.status,
        metrics_token=token,
        status_token=status_token,
    )
    if max_connections is None:
        server = await serve(app, "127.0.0.1", 0)
    else:
        server = WebServer(app, "127.0.0.1", 0, max_connections=max_connections)
        await server.start()
    base_url = f"http://127.0.0.1:{server.port}"
    client = httpx.AsyncClient(base_url=base_url, timeout=10)
    return server, Served(base_url, server.port, callbacks, client)


@pytest.fixture
async def web() -> AsyncIterator[Served]:
    server, served = await start(token=None)
    try:
        yield served
    finally:
        await served.client.aclose()
        await server.stop()


@pytest.fixture
async def web_with_token() -> AsyncIterator[Served]:
    server, served = await start(token=TOKEN)
    try:
        yield served
    finally:
        await served.client.aclose()
        await server.stop()


async def test_metrics_serves_the_registry_in_prometheus_text_format(web: Served) -> None:
    response = await web.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "nexomon_test_events_total 3.0" in response.text


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401),
        ({"Authorization": "Bearer s\u00e9cret".encode()}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
        ({"Authorization": f"bearer {TOKEN}"}, 200),
    ],
    ids=["none", "wrong", "basic", "longer", "non-ascii", "right", "lowercase-scheme"],
)
async def test_metrics_token_is_required_when_configured(
    web_with_token: Served, headers: dict[str, str | bytes], expected: int
) -> None:
    response = await web_with_token.client.get("/metrics", headers=headers)
    assert response.status_code == expected
    if expected == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert "nexomon_test_events" not in response.text


async def test_other_routes_need_no_token(web_with_token: Served) -> None:
    for path in ("/healthz", "/readyz", "/"):
        assert (await web_with_token.client.get(path)).status_code == 200, path


async def test_status_asks_for_the_metrics_token(web_with_token: Served) -> None:
    # It shows errors, request ids, tokens and cost: as private as /metrics.
    response = await web_with_token.client.get("/api/v1/status")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "targets" not in response.text
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await web_with_token.client.get("/api/v1/status", headers=auth)).status_code == 200


async def test_a_status_token_opens_status_and_nothing_else() -> None:
    server, served = await start(token=TOKEN, status_token="status-readers-token")
    try:
        client = served.client
        readers = {"Authorization": "Bearer status-readers-token"}
        scraper = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/api/v1/status", headers=readers)).status_code == 200
        assert (await client.get("/api/v1/status", headers=scraper)).status_code == 401
        assert (await client.get("/metrics", headers=readers)).status_code == 401
        assert (await client.get("/metrics", headers=scraper)).status_code == 200
    finally:
        await served.client.aclose()
        await server.stop()


async def _closed_by_server(sock: socket.socket, timeout: float = 2.0) -> bool:
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.sock_recv(sock, 1), timeout) == b""
    except (TimeoutError, ConnectionResetError):
        return False


async def test_past_the_connection_limit_the_longest_idle_connection_makes_room() -> None:
    server, served = await start(token=None, max_connections=4)
    loop = asyncio.get_running_loop()
    idle: list[socket.socket] = []
    try:
        for _ in range(4):  # idle: connected, no request (a slow-loris sends half of one)
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", served.port))
            idle.append(sock)
        await asyncio.sleep(0.1)
        await loop.sock_sendall(idle[0], b"GET /healthz HTTP/1.1\r\n")  # half a head
        # A scrape on a fifth connection is answered; the oldest idle one went.
        response = await served.client.get("/healthz")
        assert response.status_code == 200
        assert await _closed_by_server(idle[0])
        assert not await _closed_by_server(idle[3], timeout=0.2)
        assert len(server.connections) <= 4
    finally:
        for sock in idle:
            sock.close()
        await served.client.aclose()
        await server.stop()


async def test_healthz_answers_ok(web: Served) -> None:
    response = await web.client.get("/healthz")
    assert (response.status_code, response.text.strip()) == (200, "ok")


async def test_readyz_is_200_when_ready(web: Served) -> None:
    response = await web.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_readyz_is_503_with_the_reason_when_not_ready(web: Served) -> None:
    web.callbacks.readiness = (False, "database unreachable")
    response = await web.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "reason": "database unreachable"}


async def test_readyz_is_503_when_the_check_itself_fails(web: Served) -> None:
    web.callbacks.fail = True
    response = await web.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "readiness check failed: RuntimeError"


async def test_status_returns_the_callbacks_document_as_json(web: Served) -> None:
    web.callbacks.status_doc = {
        "generated_at": datetime(2025, 1, 2, tzinfo=UTC),
        "targets": [{"target": "gw", "model": "m1", "uptime_24h": 0.99, "cost": Decimal("0.5")}],
    }
    response = await web.client.get("/api/v1/status")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "generated_at": "2025-01-02T00:00:00+00:00",
        "targets": [{"target": "gw", "model": "m1", "uptime_24h": 0.99, "cost": "0.5"}],
    }


async def test_status_is_500_when_the_callback_fails(web: Served) -> None:
    web.callbacks.fail = True
    response = await web.client.get("/api/v1/status")
    assert response.status_code == 500
    assert "RuntimeError" in response.json()["error"]


async def test_index_links_every_route(web: Served) -> None:
    response = await web.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for route in ("/metrics", "/healthz", "/readyz", "/api/v1/status"):
        assert f'href="{route}"' in response.text


async def test_unknown_route_is_404(web: Served) -> None:
    assert (await web.client.get("/nope")).status_code == 404


async def test_a_blocking_status_callback_does_not_block_the_loop(web: Served) -> None:
    web.callbacks.gate = threading.Event()
    pending = asyncio.create_task(web.client.get("/api/v1/status"))
    try:
        response = await web.client.get("/healthz")
        assert response.status_code == 200
        assert not pending.done()
    finally:
        web.callbacks.gate.set()
    assert (await pending).status_code == 200


async def test_slow_clients_do_not_block_other_requests(web: Served) -> None:
    idlers: list[asyncio.StreamWriter] = []
    try:
        for _ in range(20):
            _, writer = await asyncio.open_connection("127.0.0.1", web.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            await writer.drain()
            idlers.append(writer)
        for _ in range(3):
            assert (await web.client.get("/metrics")).status_code == 200
    finally:
        for writer in idlers:
            writer.close()
            await writer.wait_closed()


async def test_an_endless_request_head_is_cut_off(web: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", web.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: ")
        for _ in range(8):  # 64 KiB of one header that never ends, in pieces
            writer.write(b"a" * 8192)
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 400")
    assert (await web.client.get("/healthz")).status_code == 200


async def test_a_taken_port_raises_oserror(web: Served) -> None:
    app = build_app(
        registry=CollectorRegistry(),
        ready=lambda: (True, ""),
        status=dict,
        metrics_token=None,
    )
    server = WebServer(app, "127.0.0.1", web.port)
    with pytest.raises(OSError):
        await server.start()
    await server.stop()


async def test_stop_closes_the_socket_and_half_sent_requests() -> None:
    ready: Callable[[], tuple[bool, str]] = lambda: (True, "")  # noqa: E731
    app = build_app(registry=CollectorRegistry(), ready=ready, status=dict, metrics_token=None)
    server = await serve(app, "127.0.0.1", 0)
    assert server.started
    port = server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
    await writer.drain()
    try:
        await server.stop()
        assert not server.started
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""  # closed by the server
    finally:
        writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
