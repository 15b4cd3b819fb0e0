"""Throughput: the highest probe rate one core sustains, nexomon vs blackbox_exporter.

    python benchmarks/throughput.py [--rates 200,400,800,1200,1600,2000] [--seconds 20] [--json]
                                    [--skip-blackbox] [--no-journal]

nexomon: the real daemon (scheduler, runner, SQLite writer thread, exporter,
HTTP routes, /metrics scraped every 5 s from 2 s on, i.e. the one-off first
render inside the 6 s warm-up, by a scraper process on the responder's core
as Prometheus would be) in this process, pinned to core 0,
probing N chat models every 1 s (rate = N/s) against the nginx static
responder on core 1. A rate is *sustained* when, after a warm-up, the
completed probe rate is at least 95 % of the scheduled one, scheduler lag
p99 is under 50 ms, every probe is ``ok`` and every scrape answered within
Prometheus' default 10 s timeout. Rates are tried in order;
the first rate that is not sustained stops the ramp.

blackbox_exporter: pinned to core 0 (GOMAXPROCS=1), the POST chat module of
benchmarks/blackbox.yml against the same responder, driven closed-loop by
``wrk`` (on core 1, 50 connections) at /probe: the probes/s it completes at
100 % of its core is its best rate. Target: nexomon/blackbox >= 1.0.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import (
    PROBER_CORE,
    RESPONDER_CORE,
    Blackbox,
    InProcessDaemon,
    Responder,
    emit,
    need,
    parser,
    percentile,
    pin,
    pinned,
    write_config,
)

WARMUP_S = 6.0  # chat jobs start spread over the first interval
# The first scrape renders every series once (a one-off: ~0.8 s at 1,000
# models, see scrape.py's scrape_max_ms); it runs inside the warm-up so the
# measured window is the steady state, where each scrape re-fills values.
FIRST_SCRAPE_S = 2.0


# Prometheus scrapes from its own process, so the scraper does too: on the
# responder's core, where neither its CPU nor its GIL counts against nexomon.
SCRAPER = """
import sys, time, urllib.request
url, every, first = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
time.sleep(first)
while True:
    try:  # Prometheus' default scrape timeout; -1: a failed scrape
        print(len(urllib.request.urlopen(url, timeout=10).read()), flush=True)
    except OSError:
        print(-1, flush=True)
    time.sleep(every)
"""


async def start_scraper(url: str, every: float, first: float) -> asyncio.subprocess.Process:
    cmd = pinned([sys.executable, "-c", SCRAPER, url, str(every), str(first)], RESPONDER_CORE)
    return await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)


async def stop_scraper(proc: asyncio.subprocess.Process) -> list[int]:
    """Stops the scraper; the size of every /metrics body it read (-1: failed)."""
    if proc.returncode is None:
        proc.terminate()
    out, _ = await proc.communicate()
    return [int(line) for line in out.split()]


async def nexomon_rate(base_url: str, rate: int, seconds: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="nexomon-tp-"))
    try:
        cfg = write_config(work, base_url, rate, chat_interval=1.0, models_interval=60.0)
        async with InProcessDaemon(cfg) as d:
            scraper = await start_scraper(d.metrics_url, 5.0, FIRST_SCRAPE_S)
            await asyncio.sleep(WARMUP_S)
            t0, c0 = time.monotonic(), time.process_time()
            await asyncio.sleep(seconds)
            t1, c1 = time.monotonic(), time.process_time()
            sizes = await stop_scraper(scraper)
            lags = d.rec.lags_since(t0)
            results = d.rec.outcomes_since(t0, "chat")
            written = d.daemon.store.writer.written_total if d.daemon.store else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done = len(results) / (t1 - t0)
    bad = sum(1 for outcome in results if outcome != "ok")
    p99 = percentile(lags, 99)
    return {
        "prober": "nexomon",
        "scheduled_per_s": rate,
        "probes_per_s": round(done, 1),
        "not_ok": bad,
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": p99 * 1000,
        "cpu_pct": round(100 * (c1 - c0) / (t1 - t0)),
        "cpu_ms_per_probe": 1000 * (c1 - c0) / max(1, len(results)),
        "rows_written": written,
        "scrapes": sum(1 for size in sizes if size > 0),
        "scrape_fails": sum(1 for size in sizes if size < 0),
        "sustained": done >= 0.95 * rate and p99 < 0.05 and bad == 0 and min(sizes, default=0) > 0,
    }


def blackbox_rate(target: str, seconds: float, connections: int) -> dict[str, Any]:
    wrk = need("wrk", "wrk")
    with Blackbox(core=PROBER_CORE) as bb:
        check = bb.probe(target)
        if check.get("probe_success") != 1.0:
            raise RuntimeError(f"blackbox chat probe failed: {check}")
        cmd = [wrk, "-t1", f"-c{connections}", f"-d{int(seconds)}s", bb.probe_url(target)]
        cpu0 = bb.cpu_seconds()
        out = subprocess.run(
            pinned(cmd, RESPONDER_CORE), capture_output=True, text=True, check=True
        ).stdout
        cpu = bb.cpu_seconds() - cpu0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "prober": "blackbox_exporter",
        "scheduled_per_s": "closed loop",
        "probes_per_s": round(rps, 1),
        "not_ok": int(errors.group(1)) if errors else 0,
        "cpu_pct": round(100 * cpu / seconds),
        "cpu_ms_per_probe": 1000 * cpu / max(1.0, rps * seconds),
        "sustained": True,
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--rates", default="200,400,800,1200,1600,2000")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--connections", type=int, default=50, help="wrk connections for blackbox")
    ap.add_argument("--skip-blackbox", action="store_true")
    ap.add_argument(
        "--no-journal",
        action="store_true",
        help="run the daemon's writer without its results journal (the 'before' of issue 14)",
    )
    args = ap.parse_args()
    if args.no_journal:
        import functools

        from monitor.store import startup
        from monitor.store.writer import ResultWriter

        startup.ResultWriter = functools.partial(ResultWriter, journal=False)  # type: ignore[misc]
    rows: list[dict[str, Any]] = []
    best = 0.0
    with Responder(models=10) as responder:
        target = responder.base_url + "/chat/completions"
        bb = None if args.skip_blackbox else blackbox_rate(target, args.seconds, args.connections)
        pin(PROBER_CORE)
        for rate in (int(r) for r in args.rates.split(",")):
            row = asyncio.run(nexomon_rate(responder.base_url, rate, args.seconds))
            rows.append(row)
            if not row["sustained"]:
                break
            best = max(best, row["probes_per_s"])
    extra: dict[str, Any] = {"nexomon_best_sustained_per_s": best}
    if bb is not None:
        rows.append(bb)
        extra["blackbox_per_s"] = bb["probes_per_s"]
        extra["ratio_nexomon_over_blackbox"] = round(best / bb["probes_per_s"], 2)
        # CPU per probe is the contention-proof comparison on a shared machine.
        costs = [r["cpu_ms_per_probe"] for r in rows if r["prober"] == "nexomon"]
        if costs:
            extra["cpu_per_probe_ratio_blackbox_over_nexomon"] = round(
                bb["cpu_ms_per_probe"] / min(costs), 2
            )
    emit(args, "throughput: one core, static nginx responder", rows, **extra, target="ratio >= 1.0")


if __name__ == "__main__":
    main()
