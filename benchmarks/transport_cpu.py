"""CPU per chat exchange: GatewayClient over each transport, and a bare protocol floor.

    python benchmarks/transport_cpu.py [--exchanges 4000] [--concurrency 20] [--rounds 2]
        [--only ROW] [--json]

One core (PROBER_CORE), the nginx responder on the other; ``concurrency``
keep-alive connections, each sending chat POSTs back to back. Rows:

- ``gateway(aiohttp)``: GatewayClient over monitor.http.aiohttp_transport.AiohttpTransport;
- ``gateway(http11)``: GatewayClient over monitor.http.transport.Http11Transport;
- ``http11 alone``: Http11Transport without GatewayClient (an httpx.Request
  with a PhaseClock trace per exchange, the body read, ``json.loads``);
- ``bare httptools``: an asyncio.Protocol + httptools client writing the
  same request bytes and parsing the answer with ``json.loads``, nothing
  else: the floor any transport under GatewayClient sits on.

``cpu_us`` is process CPU time per exchange (``time.process_time``), which
contention on a shared machine barely moves; ``per_s`` is exchanges per
wall-clock second. Rows alternate over ``--rounds`` so drift hits all alike.

On a shared or virtual machine ``cpu_us`` moves by 10-20 % between runs of
the same code. For a deterministic comparison count instructions instead:
``--only ROW`` runs one row, so under ``valgrind --tool=callgrind`` the
difference between ``--exchanges 2400`` and ``--exchanges 400`` (start-up
and warm-up cancel out), divided by 2000, is the instructions per exchange
(see benchmarks/README.md, issue 15).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httptools
import httpx
from bench_common import PROBER_CORE, Responder, emit, parser, pin

from monitor.gateway.client import GatewayClient
from monitor.http.aiohttp_transport import AiohttpTransport
from monitor.http.timing import PhaseClock
from monitor.http.transport import Http11Transport

WARMUP = 20  # exchanges per worker before the clock starts


class _Bare(asyncio.Protocol):
    """One keep-alive connection: write a request, wait for the parsed answer."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, list[Any], bytes]] | None = None
        self.body: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        assert waiter is not None
        waiter.set_result((self.parser.get_status_code(), self.headers, b"".join(self.body)))
        self.body, self.headers = [], []


async def _timed(workers: list[Awaitable[None]], total: int) -> tuple[float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*workers)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / total * 1e6, total / wall


async def bare(port: int, exchanges: int, concurrency: int) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    conns = [
        (await loop.create_connection(_Bare, "127.0.0.1", port))[1] for _ in range(concurrency)
    ]

    async def worker(conn: _Bare, count: int) -> None:
        assert conn.transport is not None
        for _ in range(count):
            body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
            payload = json.dumps(body).encode()
            head = (
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: x\r\n"
                b"accept: application/json\r\nauthorization: Bearer k\r\n"
                b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(payload)
            )
            conn.waiter = loop.create_future()
            conn.transport.write(head + payload)
            _, _, answer = await conn.waiter
            json.loads(answer)

    await asyncio.gather(*(worker(c, WARMUP) for c in conns))
    result = await _timed([worker(c, exchanges // concurrency) for c in conns], exchanges)
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    return result


def gateway(
    make: Callable[[int], Any],
) -> Callable[[int, int, int], Awaitable[tuple[float, float]]]:
    async def run(port: int, exchanges: int, concurrency: int) -> tuple[float, float]:
        transport = make(concurrency)
        base = f"http://127.0.0.1:{port}/v1"
        async with GatewayClient(base, "k", timeout=5, transport=transport) as client:

            async def worker(count: int) -> None:
                for _ in range(count):
                    ex = await client.chat("m1", "hi", 1)
                    assert ex.status == 200 and ex.failure is None, ex

            await asyncio.gather(*(worker(WARMUP) for _ in range(concurrency)))
            workers = [worker(exchanges // concurrency) for _ in range(concurrency)]
            return await _timed(workers, exchanges)

    return run


async def transport_only(port: int, exchanges: int, concurrency: int) -> tuple[float, float]:
    """Http11Transport without GatewayClient: an httpx.Request per exchange, body, json.loads."""
    transport = Http11Transport(max_connections=concurrency)
    url = httpx.URL(f"http://127.0.0.1:{port}/v1/chat/completions")
    headers = httpx.Headers({"user-agent": "x", "accept": "application/json", "authorization": "k"})
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    timeouts = httpx.Timeout(5).as_dict()

    async def worker(count: int) -> None:
        for _ in range(count):
            ext = {"timeout": timeouts, "trace": PhaseClock()}
            request = httpx.Request("POST", url, headers=headers, json=body, extensions=ext)
            response = await transport.handle_async_request(request)
            json.loads(b"".join([chunk async for chunk in response.stream]))  # type: ignore[union-attr]
            await response.aclose()

    await asyncio.gather(*(worker(WARMUP) for _ in range(concurrency)))
    result = await _timed([worker(exchanges // concurrency) for _ in range(concurrency)], exchanges)
    await transport.aclose()
    return result


VARIANTS: dict[str, Callable[[int, int, int], Awaitable[tuple[float, float]]]] = {
    "gateway(aiohttp)": gateway(lambda n: AiohttpTransport(max_connections=n)),
    "gateway(http11)": gateway(lambda n: Http11Transport(max_connections=n)),
    "http11 alone": transport_only,
    "bare httptools": bare,
}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--exchanges", type=int, default=4000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", choices=list(VARIANTS), help="run this row alone")
    args = ap.parse_args()
    variants = {args.only: VARIANTS[args.only]} if args.only else VARIANTS
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with Responder() as responder:
        pin(PROBER_CORE)
        for _ in range(args.rounds):
            for name, run in variants.items():
                rows[name].append(
                    asyncio.run(run(responder.port, args.exchanges, args.concurrency))
                )
    table = [
        {
            "client": name,
            "cpu_us": min(us for us, _ in results),  # least disturbed round
            "per_s": max(rate for _, rate in results),
            "rounds_cpu_us": " ".join(f"{us:.0f}" for us, _ in results),
        }
        for name, results in rows.items()
    ]
    emit(
        args,
        f"CPU per chat exchange ({args.exchanges} exchanges, {args.concurrency} connections)",
        table,
    )


if __name__ == "__main__":
    main()
