"""A closed connection is freed by reference counting, without the cyclic collector.

The daemon freezes its heap (monitor.daemon.runtime): cyclic garbage among
frozen objects is only reclaimed by the hourly settle. A connection that
was alive at a freeze and closed later stayed in memory if it was part of a
cycle; at 10,000 models with chat every 5 minutes ~110 connections a minute
expire, and RSS grew 0.7 MB a minute (benchmarks/scale.py). These tests run
with the collector off and look for what a closed connection left behind.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from gwfixtures import (  # noqa: F401 - the fixtures
    RawRequest,
    SelfSigned,
    ServeFn,
    reply,
    reset_mid_body,
    self_signed_fixture,
    serve_fixture,
)

from monitor.http.connection import Connection
from monitor.http.rxstamp import StampedSocket
from monitor.http.transport import Http11Transport

MODELS = {"object": "list", "data": [{"id": "m1", "object": "model"}]}
BODY = b'{"object": "list", "data": [{"id": "m1", "object": "model"}]}'  # reply()'s JSON
LEFT_BEHIND = (Connection, StampedSocket, asyncio.BaseTransport)


def left_behind() -> dict[str, int]:
    """Tracked objects of the connection's kinds, by type: live or cyclic garbage."""
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        if isinstance(obj, LEFT_BEHIND):
            name = type(obj).__name__
            counts[name] = counts.get(name, 0) + 1
    return counts


@pytest.fixture(name="no_collector")
def no_collector_fixture() -> Iterator[Callable[[], dict[str, int]]]:
    """The collector off for the test; yields a function giving what is left since the start."""
    gc.collect()
    before = left_behind()
    gc.disable()
    try:
        yield lambda: {
            kind: count - before.get(kind, 0)
            for kind, count in left_behind().items()
            if count > before.get(kind, 0)
        }
    finally:
        gc.enable()
        gc.collect()


async def exchange(transport: Http11Transport, url: str) -> bytes | str:
    """One GET read to its end: the body, or the failure's class name."""
    request = httpx.Request("GET", url, extensions={"timeout": {"connect": 3.0, "read": 3.0}})
    try:
        response = await transport.handle_async_request(request)
        try:
            return b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        return type(exc).__name__


async def settle_closes() -> None:
    """asyncio calls connection_lost a loop turn or two after abort()."""
    for _ in range(5):
        await asyncio.sleep(0.01)


async def test_idle_connections_that_expire_leave_nothing(
    serve: ServeFn, self_signed: SelfSigned, no_collector: Callable[[], dict[str, int]]
) -> None:
    plain = serve(reply(200, MODELS))
    tls = serve(reply(200, MODELS), tls=self_signed.server_context())
    transport = Http11Transport(keepalive_s=0.2, verify=self_signed.client_context())
    try:
        for _ in range(3):  # each round's connections expire before the next
            assert await exchange(transport, plain.base_url) == BODY
            assert await exchange(transport, tls.base_url) == BODY
            await asyncio.sleep(0.5)  # the pool's sweep closes both
            await settle_closes()
        assert plain.connections == 3 and tls.connections == 3
        assert no_collector() == {}
    finally:
        await transport.aclose()


def _close_idle_after_answer(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    return False  # the server closes: the idle connection sees EOF


def _close_before_the_end(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nx")
    return False


@pytest.mark.parametrize(
    ("responder", "expected"),
    [
        (_close_idle_after_answer, b"ok"),
        (reset_mid_body(), "ReadError"),
        (_close_before_the_end, "RemoteProtocolError"),
    ],
    ids=["server-closes-idle", "reset-mid-body", "closed-before-the-end"],
)
async def test_connections_the_server_ends_leave_nothing(
    serve: ServeFn,
    no_collector: Callable[[], dict[str, int]],
    responder: Any,
    expected: bytes | str,
) -> None:
    server = serve(responder)
    transport = Http11Transport(keepalive_s=30)
    try:
        for _ in range(3):
            assert await exchange(transport, server.base_url) == expected
            await asyncio.sleep(0.1)
            await settle_closes()
        await transport.aclose()
        await settle_closes()
        assert no_collector() == {}
    finally:
        await transport.aclose()
