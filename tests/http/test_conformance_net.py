"""Conformance cases that need more than one answer: TLS, IPv6, pool, reuse, fds.

As in test_conformance.py, every case runs Http11Transport and httpx's
default transport (``KINDS``) through ``httpx.AsyncClient(transport=T)`` and
asserts the same Outcome, or the difference documented in
``conformance.DIFFERENCES``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path

import httpx
import pytest
from conformance import (
    KINDS,
    RawServer6,
    expected,
    fails,
    head,
    make_transport,
    observe,
    ok,
    outcome,
)
from gwfixtures import RawRequest, Responder, SelfSigned, ServeFn, reply
from gwfixtures import self_signed_fixture as self_signed_fixture  # the fixture
from gwfixtures import serve_fixture as serve_fixture  # the fixture
from testutil import need_localhost

OK = head("200 OK", "Content-Length: 2", body=b"ok")
OK_OUTCOME = ok(200, b"ok", ("Content-Length", "2"))


# -- TLS --------------------------------------------------------------------


@pytest.mark.parametrize("trusted", [True, False], ids=["ssl-cert-file", "untrusted"])
async def test_tls_with_a_test_ca_from_ssl_cert_file(
    serve: ServeFn, self_signed: SelfSigned, monkeypatch: pytest.MonkeyPatch, trusted: bool
) -> None:
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(self_signed.cert))
    else:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    server = serve(reply(200, b"ok", content_type="text/plain"), tls=self_signed.server_context())
    for kind in KINDS:
        got = await observe(kind, server.base_url, times=2)
        if trusted:
            headers = (("content-type", "text/plain"), ("content-length", "2"))
            assert got == [ok(200, b"ok", *headers, reason="Status")] * 2, kind
        else:
            assert got == [fails(httpx.ConnectError)] * 2, kind
    assert server.connections == (2 if trusted else 4)  # one per transport, reused


async def test_tls_hostname_mismatch_is_refused(
    serve: ServeFn, self_signed: SelfSigned, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(self_signed.cert))  # trusted, but for 127.0.0.1
    server = serve(reply(200, b"ok"), tls=self_signed.server_context())
    need_localhost(server.port)
    url = f"https://localhost:{server.port}/v1"
    for kind in KINDS:
        assert await observe(kind, url) == [fails(httpx.ConnectError)], kind


# -- addresses ----------------------------------------------------------------


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_ipv6_literal() -> None:
    if not _ipv6_loopback():  # a machine without one cannot run the case at all
        pytest.skip("no IPv6 loopback here")
    server = RawServer6(responder=lambda req, conn, stop: conn.sendall(OK) or True, host="::1")
    try:
        for kind in KINDS:
            got = await observe(kind, server.url, times=2)
            assert got == [OK_OUTCOME] * 2, kind
            assert server.requests[-1].headers["host"] == f"[::1]:{server.port}", kind
    finally:
        server.close()
    assert server.connections == 2


# -- keep-alive -----------------------------------------------------------------


def _stale_once(idle_close: bool) -> Responder:
    """Answers keep-alive; the first connection then dies: idle (FIN) or on its 2nd request."""
    served: dict[int, int] = {}
    first: list[int] = []

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        key = id(conn)
        first[:] = first or [key]
        served[key] = served.get(key, 0) + 1
        if key == first[0] and served[key] == 2:
            return False  # read the request, close without a byte of answer
        conn.sendall(OK)
        if key == first[0] and idle_close:
            stop.wait(0.05)
            return False  # a FIN while the client holds the connection idle
        return True

    return respond


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("idle_close", [False, True], ids=["closed-on-request", "closed-idle"])
async def test_stale_keep_alive(serve: ServeFn, method: str, idle_close: bool) -> None:
    if idle_close:
        name, second = f"idle-closed-keep-alive-{method.lower()}", OK_OUTCOME
    else:
        name = f"stale-keep-alive-{method.lower()}"
        second = OK_OUTCOME if method == "GET" else fails(httpx.RemoteProtocolError)
    want = expected(name, second)
    for kind in KINDS:
        server = serve(_stale_once(idle_close))
        async with httpx.AsyncClient(transport=make_transport(kind), timeout=3.0) as client:
            assert await outcome(client, method, server.base_url) == OK_OUTCOME, kind
            await asyncio.sleep(0.3 if idle_close else 0.0)
            assert await outcome(client, method, server.base_url) == want[kind], kind


# -- pool -------------------------------------------------------------------------


async def test_pool_timeout_with_every_connection_busy(serve: ServeFn) -> None:
    server = serve(reply(200, b"ok", delay=1.0))
    for kind in KINDS:
        transport = make_transport(kind, max_connections=1)
        timeout = httpx.Timeout(3.0, pool=0.2)
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
            first = asyncio.create_task(client.get(server.base_url))
            await asyncio.sleep(0.2)  # it holds the only connection
            assert await outcome(client, "GET", server.base_url) == fails(httpx.PoolTimeout)
            assert (await first).status_code == 200, kind


@pytest.mark.parametrize("stage", ["waiting-for-the-head", "mid-body"])
async def test_cancellation_leaves_the_pool_usable(serve: ServeFn, stage: str) -> None:
    if stage == "mid-body":
        stalled = serve(lambda req, conn, stop: conn.sendall(OK[:-1]) or stop.wait(30) or False)
    else:
        stalled = serve(reply(200, b"ok", delay=30))
    fast = serve(lambda req, conn, stop: conn.sendall(OK) or True)
    for kind in KINDS:
        transport = make_transport(kind, max_connections=1)
        async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await client.get(stalled.base_url)
            for _ in range(2):  # the only slot came back, and stays usable
                assert await outcome(client, "GET", fast.base_url) == OK_OUTCOME, kind
    assert fast.connections == 2  # one per transport, reused


# -- resources ---------------------------------------------------------------------


def _fds() -> int:
    return len(os.listdir("/proc/self/fd" if Path("/proc/self/fd").is_dir() else "/dev/fd"))


def _closing_every(n: int) -> Responder:
    """``OK``, with ``Connection: close`` (then closed) on every ``n``-th request."""
    count = [0]
    closing = head("200 OK", "Connection: close", "Content-Length: 2", body=b"ok")

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        count[0] += 1
        if count[0] % n:
            conn.sendall(OK)
            return True
        conn.sendall(closing)
        return False

    return respond


async def _settled_fds(limit: int) -> int:
    """The fd count once server threads closed their sockets (at most ~2 s)."""
    for _ in range(40):
        if (count := _fds()) <= limit:
            return count
        await asyncio.sleep(0.05)
    return _fds()


@pytest.mark.parametrize("kind", KINDS)
async def test_fd_count_stays_flat_over_10000_requests(serve: ServeFn, kind: str) -> None:
    workers, each = 10, 1000
    server = serve(_closing_every(10))  # 1,000 connections opened and closed on the way
    baseline = _fds()
    peak = baseline
    async with httpx.AsyncClient(transport=make_transport(kind), timeout=5.0) as client:

        async def worker() -> None:
            nonlocal peak
            for i in range(each):
                response = await client.get(server.base_url)
                assert response.content == b"ok"
                if i % 100 == 0:
                    peak = max(peak, _fds())

        await asyncio.gather(*(worker() for _ in range(workers)))
    # Two fds per connection in this process (client and server side), one
    # connection per worker at a time, plus a few closing.
    assert peak - baseline <= 2 * workers + 10
    assert await _settled_fds(baseline) == baseline
    assert len(server.requests) == workers * each
