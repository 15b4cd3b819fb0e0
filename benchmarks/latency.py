"""Truthful latency: reported latency minus a known 100 ms delay, nexomon vs blackbox_exporter.

    python benchmarks/latency.py [--probes 1000] [--json]

The nginx responder answers ``/slow/v1/chat/completions`` after exactly
100 ms (echo_sleep). nexomon's GatewayClient (pinned to core 0, the same
client the daemon uses, keep-alive pool) sends chat probes closed-loop at 1
and at 50 in flight; the reported ``duration_s`` minus 100 ms is the
overhead. blackbox_exporter (core 0, GOMAXPROCS=1) probes the same URL,
driven by an asyncio driver on core 1 at 1 and 50 in flight; its
``probe_duration_seconds`` minus 100 ms is its overhead. Target: nexomon's
p99 overhead <= 2 ms at 50 in flight, and no worse than blackbox_exporter.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from bench_common import (
    API_KEY,
    CHAT_BODY_DELAY_S,
    PROBER_CORE,
    RESPONDER_CORE,
    Blackbox,
    Responder,
    emit,
    parse_gauges,
    parser,
    percentile,
    pin,
)

from monitor.gateway.client import GatewayClient


def row(prober: str, inflight: int, overheads: list[float], failed: int) -> dict[str, Any]:
    ms = [o * 1000 for o in overheads]
    return {
        "prober": prober,
        "in_flight": inflight,
        "probes": len(ms),
        "failed": failed,
        "overhead_p50_ms": percentile(ms, 50),
        "overhead_p99_ms": percentile(ms, 99),
        "overhead_max_ms": max(ms) if ms else float("nan"),
    }


async def closed_loop(inflight: int, total: int, one: Any) -> None:
    left = iter(range(total))

    async def worker() -> None:
        for _ in left:
            await one()

    await asyncio.gather(*(worker() for _ in range(inflight)))


async def nexomon(base_url: str, inflight: int, total: int) -> dict[str, Any]:
    overheads: list[float] = []
    failed = 0
    async with GatewayClient(base_url, API_KEY, timeout=10) as client:

        async def one() -> None:
            nonlocal failed
            ex = await client.chat("bench", "Reply with OK.", 16)
            if ex.status != 200 or ex.duration_s is None:
                failed += 1
            else:
                overheads.append(ex.duration_s - CHAT_BODY_DELAY_S)

        await closed_loop(inflight, min(total, inflight * 4), one)  # warm the pool
        overheads.clear()
        await closed_loop(inflight, total, one)
    return row("nexomon", inflight, overheads, failed)


async def blackbox(bb: Blackbox, target: str, inflight: int, total: int) -> dict[str, Any]:
    overheads: list[float] = []
    failed = 0
    url = bb.probe_url(target)
    conn = aiohttp.TCPConnector(limit=inflight)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def one() -> None:
            nonlocal failed
            async with session.get(url) as resp:
                gauges = parse_gauges(await resp.text())
            if gauges.get("probe_success") != 1.0:
                failed += 1
            else:
                overheads.append(gauges["probe_duration_seconds"] - CHAT_BODY_DELAY_S)

        await closed_loop(inflight, min(total, inflight * 4), one)
        overheads.clear()
        await closed_loop(inflight, total, one)
    return row("blackbox_exporter", inflight, overheads, failed)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--probes", type=int, default=1000, help="probes per row")
    ap.add_argument("--in-flight", default="1,50")
    args = ap.parse_args()
    levels = [int(x) for x in args.in_flight.split(",")]
    rows = []
    with Responder() as responder:
        target = responder.slow_base_url + "/chat/completions"
        pin(RESPONDER_CORE)  # the blackbox driver runs beside the responder
        with Blackbox(core=PROBER_CORE) as bb:
            for n in levels:
                rows.append(asyncio.run(blackbox(bb, target, n, args.probes)))
        pin(PROBER_CORE)
        for n in levels:
            rows.append(asyncio.run(nexomon(responder.slow_base_url, n, args.probes)))
    rows.sort(key=lambda r: (r["in_flight"], r["prober"]))
    emit(
        args,
        f"latency overhead over a fixed {CHAT_BODY_DELAY_S * 1000:g} ms responder",
        rows,
        target="nexomon p99 <= 2 ms at 50 in flight and <= blackbox_exporter's",
    )


if __name__ == "__main__":
    main()
