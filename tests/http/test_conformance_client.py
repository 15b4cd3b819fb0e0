"""Conformance of what the client decides: request validation and environment proxies.

Request validation: a method, header name or value that h11 refuses raises
httpx.LocalProtocolError on both transports and no request reaches the
server. Proxies: ``httpx.AsyncClient(transport=Http11Transport())`` goes where
``httpx.AsyncClient()`` (its default transport, proxies mounted from the
environment) goes, for HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY.
Differences are in ``conformance.DIFFERENCES``.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from conformance import (
    KINDS,
    Outcome,
    answer,
    expected,
    fails,
    head,
    make_transport,
    observe,
    ok,
    outcome,
)
from gwfixtures import RawServer, ServeFn
from gwfixtures import serve_fixture as serve_fixture  # the fixture

from monitor.http.transport import Http11Transport

SECRET = "sk-conformance-9f1e"


# -- request validation ----------------------------------------------------------

REFUSED: dict[str, tuple[str, dict[str, str]]] = {
    "cr-lf-in-header-value": ("GET", {"X-A": "a\r\nX-Injected: 1"}),
    "lf-in-header-value": ("GET", {"X-A": "a\nX-Injected: 1"}),
    "cr-in-header-value": ("GET", {"X-A": "a\rb"}),
    "nul-in-header-value": ("GET", {"X-A": "a\x00b"}),
    "leading-space-in-value": ("GET", {"X-A": " a"}),
    "trailing-tab-in-value": ("GET", {"X-A": "a\t"}),
    "cr-lf-in-secret-value": ("GET", {"Authorization": f"Bearer {SECRET}\r\nX-Injected: 1"}),
    "space-in-header-name": ("GET", {"X A": "b"}),
    "colon-in-header-name": ("GET", {"X:A": "b"}),
    "cr-lf-in-method": ("GET / HTTP/1.1\r\nX-Injected: 1\r\nX", {}),
    "space-in-method": ("GE T", {}),
}


@pytest.mark.parametrize("name", list(REFUSED))
async def test_invalid_requests_never_reach_the_wire(serve: ServeFn, name: str) -> None:
    method, headers = REFUSED[name]
    server = serve(answer(head("200 OK", "Content-Length: 0")))
    for kind in KINDS:
        transport = make_transport(kind)
        async with httpx.AsyncClient(transport=transport, timeout=3.0) as client:
            with pytest.raises(httpx.LocalProtocolError) as raised:
                await client.request(method, server.base_url, headers=headers)
        if kind == "http11":  # worded by what was wrong, never showing a value
            assert "invalid" in str(raised.value) and SECRET not in str(raised.value)
    assert server.requests == []


async def test_valid_requests_still_go_out_as_given(serve: ServeFn) -> None:
    server = serve(answer(head("200 OK", "Content-Length: 0")))
    headers = {"X-Empty": "", "X-Inner": "a  b\tc", "X-Obs": b"caf\xe9", "X-Ctl": "a\x01b"}
    for kind in KINDS:
        got = await observe(kind, server.base_url, method="PATCH", headers=headers)
        assert got == [ok(200, b"", ("Content-Length", "0"))], kind
    for request in server.requests:
        assert request.method == "PATCH"
        assert request.headers["x-inner"] == "a  b\tc" and request.headers["x-obs"] == "caf\xe9"


# -- environment proxies -------------------------------------------------------------

VIA_PROXY = ok(200, b"via proxy", ("Content-Length", "9"))
DIRECT = ok(200, b"direct", ("Content-Length", "6"))
GATEWAY = "http://gateway.invalid/v1/models"  # never resolves: only a proxy can answer

# name -> (environment, URL, Outcome); PROXY and ORIGIN_PORT are filled in.
PROXY_CASES: dict[str, tuple[dict[str, str], str, Outcome]] = {
    "all-proxy": ({"ALL_PROXY": "PROXY"}, GATEWAY, VIA_PROXY),
    "all-proxy-lower-case": ({"all_proxy": "PROXY"}, GATEWAY, VIA_PROXY),
    "all-proxy-without-scheme": ({"ALL_PROXY": "PROXY_HOSTPORT"}, GATEWAY, VIA_PROXY),
    "http-proxy": ({"HTTP_PROXY": "PROXY"}, GATEWAY, VIA_PROXY),
    "https-proxy-is-for-https": ({"HTTPS_PROXY": "PROXY"}, "ORIGIN", DIRECT),
    "no-proxy-ip": ({"ALL_PROXY": "PROXY", "NO_PROXY": "127.0.0.1"}, "ORIGIN", DIRECT),
    "no-proxy-star": ({"ALL_PROXY": "PROXY", "NO_PROXY": "*"}, "ORIGIN", DIRECT),
    "no-proxy-origin": (
        {"ALL_PROXY": "PROXY", "NO_PROXY": "http://127.0.0.1:ORIGIN_PORT"},
        "ORIGIN",
        DIRECT,
    ),
    "no-proxy-other-port": (
        {"ALL_PROXY": "PROXY", "NO_PROXY": "http://127.0.0.1:1"},
        "ORIGIN",
        VIA_PROXY,
    ),
    "no-proxy-domain": (
        {"ALL_PROXY": "PROXY", "NO_PROXY": "example.com, gateway.invalid"},
        "http://api.gateway.invalid/v1",
        fails(httpx.ConnectError),  # direct, and the name does not resolve
    ),
    "no-proxy-dot-domain-not-itself": (
        {"ALL_PROXY": "PROXY", "NO_PROXY": ".gateway.invalid"},
        GATEWAY,
        VIA_PROXY,
    ),
    "no-proxy-lower-case": ({"all_proxy": "PROXY", "no_proxy": "127.0.0.1"}, "ORIGIN", DIRECT),
    "no-proxy-other-host": ({"ALL_PROXY": "PROXY", "NO_PROXY": "example.com"}, GATEWAY, VIA_PROXY),
    "no-proxy-cidr": ({"ALL_PROXY": "PROXY", "NO_PROXY": "127.0.0.0/8"}, "ORIGIN", DIRECT),
}


def _client(kind: str) -> httpx.AsyncClient:
    """httpx's own client with its default transport (env proxies mounted), or over ours."""
    if kind == "httpx":
        return httpx.AsyncClient(timeout=3.0, trust_env=True)
    return httpx.AsyncClient(transport=Http11Transport(trust_env=True), timeout=3.0)


def _fill(text: str, proxy: RawServer, origin: RawServer) -> str:
    return (
        text.replace("PROXY_HOSTPORT", f"127.0.0.1:{proxy.port}")
        .replace("PROXY", f"http://127.0.0.1:{proxy.port}")
        .replace("ORIGIN_PORT", str(origin.port))
        .replace("ORIGIN", origin.base_url)
    )


@pytest.mark.parametrize("name", list(PROXY_CASES))
async def test_environment_proxies_as_httpx_reads_them(
    serve: ServeFn, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    environment, url, http11 = PROXY_CASES[name]
    proxy = serve(answer(head("200 OK", "Content-Length: 9", body=b"via proxy")))
    origin = serve(answer(head("200 OK", "Content-Length: 6", body=b"direct")))
    for key, value in environment.items():
        monkeypatch.setenv(key, _fill(value, proxy, origin))
    want = expected(name, http11)
    for kind in KINDS:
        async with _client(kind) as client:
            assert await outcome(client, "GET", _fill(url, proxy, origin)) == want[kind], kind
    for request in proxy.requests:  # absolute-form, as an HTTP proxy expects
        assert request.path.startswith("http://")


async def test_proxy_credentials_become_proxy_authorization(
    serve: ServeFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(answer(head("200 OK", "Content-Length: 9", body=b"via proxy")))
    monkeypatch.setenv("ALL_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
    for kind in KINDS:
        async with _client(kind) as client:
            assert await outcome(client, "GET", GATEWAY) == VIA_PROXY, kind
    basic = "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert [r.headers.get("proxy-authorization") for r in proxy.requests] == [basic, basic]


async def test_a_socks_proxy_is_refused_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    async with _client("http11") as client:
        with pytest.raises(httpx.UnsupportedProtocol, match="socks5"):
            await client.get(GATEWAY)
