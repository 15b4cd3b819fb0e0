"""AiohttpTransport under GatewayClient: phases it can and cannot time, errors, env.

tests/gateway/test_gateway.py covers the GatewayClient contract over the default
transport; these cover what is specific to the aiohttp transport and that
the httpcore transport stays selectable.
"""

from __future__ import annotations

import socket
import threading

import aiohttp
import httpx
import pytest
from gwfixtures import (  # noqa: F401 - the fixtures
    RawRequest,
    RawServer,
    SelfSigned,
    ServeFn,
    reply,
    self_signed_fixture,
    serve_fixture,
)
from testutil import need_localhost

from monitor.gateway.client import GatewayClient
from monitor.http.aiohttp_transport import AiohttpTransport, _httpx_errors

KEY = "sk-nexomon-transport-5c2e81"
MODELS = {"object": "list", "data": [{"id": "m1", "object": "model"}]}


def client(base_url: str, **kwargs: object) -> GatewayClient:
    """A GatewayClient over AiohttpTransport (the default, Http11Transport: test_http11.py)."""
    options: dict[str, object] = {"timeout": 3.0, **kwargs}
    if "transport" not in options:
        limit = options.pop("max_connections", 100)
        options["transport"] = AiohttpTransport(max_connections=limit, trust_env=True)  # type: ignore[arg-type]
    return GatewayClient(base_url, KEY, **options)  # type: ignore[arg-type]


async def test_https_new_connection_folds_tls_into_connect(
    serve: ServeFn, self_signed: SelfSigned, monkeypatch: pytest.MonkeyPatch
) -> None:
    # trust_env: SSL_CERT_FILE is honoured, as with httpx's own transport.
    monkeypatch.setenv("SSL_CERT_FILE", str(self_signed.cert))
    server = serve(reply(200, MODELS), tls=self_signed.server_context())
    async with client(server.base_url) as gw:
        first = await gw.list_models()
        reused = await gw.list_models()
    assert first.status == 200 and first.body == MODELS and first.failure is None
    assert first.phases.tls is None and reused.phases.tls is None  # not measured apart
    assert first.phases.connect > 0 and first.phases.resolve == 0.0  # an IP literal
    assert reused.phases.connect == 0.0 and reused.phases.resolve == 0.0
    assert server.connections == 1
    for ex in (first, reused):
        p = ex.phases
        total = (p.resolve or 0.0) + p.connect + p.processing + p.transfer
        assert ex.duration_s is not None and total <= ex.duration_s


async def test_resolve_is_timed_apart_from_connect(serve: ServeFn) -> None:
    server = serve(reply(200, MODELS))
    port = server.base_url.split(":")[2].split("/")[0]
    need_localhost(int(port))
    async with client(f"http://localhost:{port}/v1") as gw:
        ex = await gw.list_models()
    assert ex.status == 200 and ex.phases.tls == 0.0  # plain http: no TLS happened
    p = ex.phases
    assert p.resolve is not None and p.resolve > 0 and p.connect > 0
    total = p.resolve + p.connect + p.processing + p.transfer
    assert ex.duration_s is not None and total <= ex.duration_s


async def test_httpcore_transport_stays_selectable(serve: ServeFn) -> None:
    server = serve(reply(200, MODELS, headers={"x-request-id": "r-7"}))
    async with client(server.base_url, transport=httpx.AsyncHTTPTransport()) as gw:
        ex = await gw.list_models()
    assert ex.status == 200 and ex.body == MODELS and ex.request_id == "r-7"
    assert ex.phases.resolve is None and ex.phases.tls == 0.0  # httpcore: DNS inside connect
    assert ex.phases.connect > 0 and ex.phases.processing > 0


async def test_an_unanswered_request_on_a_reused_connection_is_timed_from_its_start(
    serve: ServeFn,
) -> None:
    # The request-start event waits for the answer's headers (it is
    # backdated to the first write); a request that gets none still has it.
    answer = reply(200, MODELS)
    seen: list[str] = []

    def first_only(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        seen.append(req.path)
        if len(seen) > 1:
            stop.wait(3.0)
            return False
        return answer(req, conn, stop)

    server = serve(first_only)
    async with client(server.base_url, timeout=0.3) as gw:
        first = await gw.list_models()
        second = await gw.list_models()
    assert first.status == 200 and server.connections == 1
    assert second.failure == "timeout"
    assert second.failure_detail == "timed out after 0.3s while waiting for the response headers"
    assert second.phases.connect == 0.0 and second.phases.processing > 0
    assert second.duration_s is not None and second.duration_s >= second.phases.processing


def _close_after_request(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    conn.close()


def _not_http(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    conn.close()


@pytest.mark.parametrize(
    ("raw", "words"),
    [(_close_after_request, "disconnected"), (_not_http, "invalid http answer: bad status line")],
    ids=["closed-without-answer", "not-http"],
)
async def test_broken_answers_are_connection_failures(
    serve: ServeFn, raw: object, words: str
) -> None:
    server = serve(raw=raw)
    async with client(server.base_url) as gw:
        ex = await gw.chat("m", "p", 1)
    assert (ex.failure, ex.status) == ("connection", None)
    assert ex.failure_detail and words in ex.failure_detail.lower()


async def test_http_proxy_from_the_environment_is_used(
    serve: ServeFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(reply(200, MODELS))
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.base_url.removesuffix("/v1"))
    # The gateway name never resolves: only the proxy can have answered.
    async with client("http://gateway.invalid/v1") as gw:
        ex = await gw.list_models()
    assert ex.status == 200 and ex.body == MODELS
    request = proxy.requests[0]
    assert request.path == "http://gateway.invalid/v1/models"
    assert request.headers["authorization"] == f"Bearer {KEY}"


async def test_cookies_are_kept_by_httpx_only(serve: ServeFn) -> None:
    server = serve(reply(200, MODELS, headers={"set-cookie": "sid=abc; Path=/"}))
    async with client(server.base_url) as gw:
        await gw.list_models()
        await gw.list_models()
    assert server.requests[1].headers.get("cookie") == "sid=abc"  # once, not twice


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut"), httpx.ReadError),
        (aiohttp.ConnectionTimeoutError("slow"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("slow"), httpx.ReadTimeout),
        (aiohttp.ClientOSError(104, "reset"), httpx.NetworkError),
    ],
)
def test_aiohttp_errors_become_httpx_errors(error: Exception, expected: type) -> None:
    with pytest.raises(expected) as raised, _httpx_errors():
        raise error
    assert raised.value.__cause__ is error


async def test_closing_an_unused_transport_is_harmless() -> None:
    transport = AiohttpTransport()
    await transport.aclose()
    await transport.aclose()
