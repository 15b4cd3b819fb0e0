"""Scrape: /metrics render time and size at 10, 100 and 1,000 models.

    python benchmarks/scrape.py [--models 10,100,1000] [--scrapes 20] [--json]

For each size, the real daemon (pinned to core 0) probes every model once
against the nginx responder (chat every 5 s), then scheduling stops and
/metrics is fetched ``--scrapes`` times over HTTP; the table gives the time
per scrape (p50, max; max is the first scrape, which renders every series
once), the body size and the number of series.

The exporter re-renders only series whose values changed since the last
scrape, so a scrape's cost grows with the results that arrived in between.
``fresh25_p50_ms`` / ``fresh100_p50_ms``: scrape time when 25 % / 100 % of
the models got a new result since the previous scrape (each model's last
chat result observed again; 25 % is a 15 s scrape interval over a 60 s
probe interval, 100 % a scrape interval as long as the probe interval).
Target: under 100 ms at 1,000 models. ``rss_MB``: the benchmark process's
resident memory after that size's scrapes (one process runs the sizes in
order, so each row includes what the smaller sizes left behind).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_common import (
    PROBER_CORE,
    InProcessDaemon,
    Responder,
    emit,
    parser,
    percentile,
    pin,
    rss_mb,
    write_config,
)

INTERVAL_S = 5.0


async def _scrape(url: str) -> tuple[float, bytes]:
    t = time.perf_counter()
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=30).read())
    return time.perf_counter() - t, body


async def measure(base_url: str, models: int, scrapes: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="nexomon-scrape-"))
    try:
        cfg = write_config(work, base_url, models, chat_interval=INTERVAL_S)
        async with InProcessDaemon(cfg) as d:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                seen = {model for probe, model in d.rec.last if probe == "chat"}
                if len(seen) >= models:
                    break
                await asyncio.sleep(0.5)
            d.daemon.scheduler.shutdown()  # type: ignore[union-attr]
            await d.daemon.scheduler.drain(15)  # type: ignore[union-attr]
            times, body = [], b""
            for _ in range(scrapes):
                elapsed, body = await _scrape(d.metrics_url)
                times.append(elapsed)
            last = {m: r for (p, m), r in d.rec.last.items() if p == "chat"}
            fresh: dict[int, list[float]] = {25: [], 100: []}
            for share, samples in fresh.items():
                chosen = list(last.values())[: len(last) * share // 100]
                for _ in range(max(3, scrapes // 4)):
                    for r in chosen:
                        d.daemon.exporter.observe(r)
                    samples.append((await _scrape(d.metrics_url))[0])
            rss = rss_mb(os.getpid())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return {
        "models": models,
        "scrape_p50_ms": percentile(times, 50) * 1000,
        "scrape_max_ms": max(times) * 1000,
        "fresh25_p50_ms": percentile(fresh[25], 50) * 1000,
        "fresh100_p50_ms": percentile(fresh[100], 50) * 1000,
        "size_kB": len(body) / 1024,
        "series": series,
        "rss_MB": rss,
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--models", default="10,100,1000")
    ap.add_argument("--scrapes", type=int, default=20)
    args = ap.parse_args()
    sizes = [int(s) for s in args.models.split(",")]
    with Responder(models=10) as responder:
        pin(PROBER_CORE)
        rows = [asyncio.run(measure(responder.base_url, n, args.scrapes)) for n in sizes]
    emit(args, "/metrics scrape", rows, target="< 100 ms at 1000 models")


if __name__ == "__main__":
    main()
