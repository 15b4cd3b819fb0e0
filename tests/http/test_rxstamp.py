"""Kernel receive stamps: an answer waiting in the socket buffer keeps its arrival time.

The client's event loop is blocked on purpose (``time.sleep`` on the loop)
while the answer reaches the kernel; the reported duration must not
include that stall. Real sockets on 127.0.0.1 (gwfixtures' RawServer), the
stall is wide (0.3 s) and the bound loose (half of it): this checks what is
measured, not how fast.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gwfixtures import (  # noqa: F401 - the fixtures
    RawRequest,
    SelfSigned,
    ServeFn,
    reply,
    self_signed_fixture,
    serve_fixture,
)

from monitor.gateway.client import GatewayClient
from monitor.http import rxstamp
from monitor.http.aiohttp_transport import AiohttpTransport
from monitor.http.rxstamp import SocketRegistry, StampedSocket, kernel_stamp, to_perf_counter
from monitor.http.timing import BODY_END, PhaseClock

STALL_S = 0.3
MODELS = {"object": "list", "data": [{"id": "m1", "object": "model"}]}
CHAT = {"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 1}}
needs_linux = pytest.mark.skipif(
    rxstamp.SO_TIMESTAMPNS is None, reason="SO_TIMESTAMPNS is Linux-only"
)


class StalledAnswer:
    """A responder that answers only once the client's loop is blocked."""

    def __init__(self) -> None:
        self.got = threading.Event()
        self.loop_blocked = threading.Event()
        self._answer = reply(200, MODELS)

    def __call__(self, req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        self.got.set()
        self.loop_blocked.wait(10)
        return self._answer(req, conn, stop)

    async def block_loop_once_asked(self) -> None:
        while not self.got.is_set():
            await asyncio.sleep(0.002)
        self.loop_blocked.set()
        time.sleep(STALL_S)  # on the loop: the answer waits in the kernel buffer


@needs_linux
@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_an_answer_waiting_in_the_kernel_is_timed_when_it_arrived(
    serve: ServeFn, self_signed: SelfSigned, monkeypatch: pytest.MonkeyPatch, tls: bool
) -> None:
    responder = StalledAnswer()
    context = None
    if tls:
        monkeypatch.setenv("SSL_CERT_FILE", str(self_signed.cert))
        context = self_signed.server_context()
    server = serve(responder, tls=context)
    async with GatewayClient(server.base_url, "sk-rx", timeout=10) as gw:
        exchange, _ = await asyncio.gather(gw.list_models(), responder.block_loop_once_asked())
    assert exchange.status == 200 and exchange.body == MODELS
    assert exchange.duration_s is not None
    assert exchange.duration_s < STALL_S / 2  # the stall came after the answer arrived
    p = exchange.phases
    assert p.connect + p.processing + p.transfer <= exchange.duration_s


async def test_without_kernel_stamps_the_read_time_is_used(
    serve: ServeFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fallback (another OS, the option refused): the previous behaviour,
    # the answer is timed when the loop read it, after the stall.
    monkeypatch.setattr(rxstamp, "SO_TIMESTAMPNS", None)
    responder = StalledAnswer()
    server = serve(responder)
    async with GatewayClient(server.base_url, "sk-rx", timeout=10) as gw:
        exchange, _ = await asyncio.gather(gw.list_models(), responder.block_loop_once_asked())
    assert exchange.status == 200
    assert exchange.duration_s is not None and exchange.duration_s >= STALL_S


async def test_the_request_starts_when_its_bytes_are_written(serve: ServeFn) -> None:
    # aiohttp signals "headers sent" and writes a request body from a task
    # one loop turn later; a stall between the two is not gateway time.
    server = serve(reply(200, CHAT))
    transport = AiohttpTransport()

    async def chat(clock: Any) -> None:
        request = httpx.Request(
            "POST",
            server.base_url + "/chat/completions",
            json={"m": 1},
            extensions={"trace": clock},
        )
        response = await transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        clock.mark(BODY_END)

    class StallBeforeTheWrite(PhaseClock):
        async def __call__(self, name: str, info: dict[str, Any]) -> None:
            if name == "transport.measures_resolve":
                # Runs on the next loop turn: after this request's headers
                # signal, before the task that writes it.
                asyncio.get_running_loop().call_soon(time.sleep, STALL_S)
            await super().__call__(name, info)

    try:
        await chat(PhaseClock())  # opens the connection
        clock = StallBeforeTheWrite()
        await chat(clock)  # reuses it: the duration starts at the request
    finally:
        await transport.aclose()
    assert server.connections == 1
    _, duration = clock.phases()
    assert duration is not None and duration < STALL_S / 2


def _tcp_pair() -> tuple[socket.socket, StampedSocket]:
    """A connected (server side, StampedSocket client side) pair on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = SocketRegistry()((socket.AF_INET, socket.SOCK_STREAM, 0, "", ()))
        assert isinstance(client, StampedSocket)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    return server, client


@pytest.fixture(scope="module", autouse=True)
def kernel_stamping_on() -> Iterator[None]:
    """Keeps receive stamping switched on in the kernel for this module's tests.

    While no socket asks for stamps, Linux has them off; the first socket
    that asks turns them on through deferred work (net_enable_timestamp), so
    its first reads may come without a stamp (rx_at None: the transports
    then use the read time). A running daemon keeps stamping sockets open;
    so does this fixture, after one stamped read, so every test here sees
    the steady state. (Without it, about 1 in 60 fresh sockets' first read
    had no stamp on a loaded machine.)
    """
    if rxstamp.SO_TIMESTAMPNS is None:
        yield
        return
    server, client = _tcp_pair()
    with server, client:
        for _ in range(1000):
            server.sendall(b"x")
            client.recv(8)
            if client.rx_at is not None:
                break
            time.sleep(0.002)
        else:
            pytest.fail("the kernel never stamped a read (SO_TIMESTAMPNS)")
        yield


@needs_linux
def test_a_stamp_lies_between_the_send_and_the_read() -> None:
    server, client = _tcp_pair()
    with server, client:
        assert client.stamping
        stamps = []
        for payload in (b"first", b"second"):
            before = time.perf_counter()
            server.sendall(payload)
            time.sleep(0.05)  # the bytes wait in the kernel
            assert client.recv(64) == payload
            after = time.perf_counter()
            assert client.rx_at is not None
            # Clock reads back to back: allow for scheduling between them.
            assert before - 0.001 <= client.rx_at <= after
            assert client.rx_at < after - 0.04  # received well before the read
            stamps.append(client.rx_at)
        assert stamps[0] < stamps[1]
        buf = bytearray(16)
        server.sendall(b"into")
        assert client.recv_into(buf, 3) == 3 and bytes(buf[:3]) == b"int"
        assert client.rx_at is not None and client.rx_at <= time.perf_counter()


def test_sends_are_noted_before_the_bytes_go_out() -> None:
    server, client = _tcp_pair()
    with server, client:
        before = time.perf_counter()
        client.send(b"x")
        client.sendmsg([b"y", b"z"])
        assert server.recv(8) in (b"xyz", b"x")
        assert len(client.sends) == 2 and before <= client.sends[0] <= client.sends[1]


def test_a_refused_option_gives_plain_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rxstamp, "SO_TIMESTAMPNS", 0x7FFF)  # no such socket option
    server, client = _tcp_pair()
    with server, client:
        assert not client.stamping
        server.sendall(b"plain")
        assert client.recv(64) == b"plain" and client.rx_at is None


def test_conversion_is_in_the_perf_counter_timebase() -> None:
    before = time.perf_counter()
    now_ns = time.time_ns()
    after = time.perf_counter()
    converted = to_perf_counter(now_ns)
    assert before - 0.001 <= converted <= time.perf_counter()
    assert to_perf_counter(now_ns - 2_000_000_000) < after - 1.9  # two seconds ago
    assert to_perf_counter(time.time_ns() + 10**12) <= time.perf_counter()  # future: now


def test_only_a_timestamp_message_counts() -> None:
    assert kernel_stamp([]) is None
    assert kernel_stamp([(socket.SOL_SOCKET, 1, b"\0" * 16)]) is None  # another kind
    if rxstamp.SO_TIMESTAMPNS is not None:
        assert kernel_stamp([(socket.SOL_SOCKET, rxstamp.SO_TIMESTAMPNS, b"\0" * 8)]) is None


async def test_the_registry_finds_only_its_own_open_sockets() -> None:
    registry = SocketRegistry()
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        ours = registry((socket.AF_INET, socket.SOCK_STREAM, 0, "", ()))
        ours.setblocking(False)
        await loop.sock_connect(ours, listener.getsockname())
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
        theirs, _ = await loop.create_connection(asyncio.Protocol, *listener.getsockname())
        try:
            assert registry.find(transport) is ours
            assert registry.find(theirs) is None
        finally:
            transport.close()
            theirs.close()
            await asyncio.sleep(0)  # the transports close their sockets on the next turn
    assert ours.fileno() == -1
    assert registry.find(transport) is None  # closed: never matched again
