"""Scheduler lag with 1,000 jobs: actual start minus due time, p50/p99.

    python benchmarks/scheduler_lag.py [--jobs 1000] [--interval 10] [--seconds 30] [--json]

Two rows, both pinned to core 0:
- ``no-op probes``: ProbeScheduler (APScheduler 3.x AsyncIOScheduler) with
  ``--jobs`` chat jobs whose probe does nothing: the scheduler's own cost.
- ``full daemon``: the real daemon probing ``--jobs`` models every
  ``--interval`` against the nginx responder on core 1, storage, exporter
  and HTTP routes included.
Lag is recorded for every run, exactly. Target: p99 < 50 ms.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import (
    PROBER_CORE,
    InProcessDaemon,
    Responder,
    emit,
    parser,
    percentile,
    pin,
    write_config,
)


class _NoopRunner:
    async def run(self, target: str, probe: str, model: str = "") -> None:
        return None


class _LagExporter:
    """The exporter surface ProbeScheduler uses, recording lags only."""

    def __init__(self) -> None:
        self.lags: list[tuple[float, float]] = []
        self.misfires = 0

    def observe_lag(self, seconds: float) -> None:
        self.lags.append((time.monotonic(), seconds))

    def misfire(self) -> None:
        self.misfires += 1

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def summary(kind: str, jobs: int, interval: float, lags: list[float], misfires: int) -> dict:
    return {
        "setup": kind,
        "jobs": jobs,
        "interval_s": interval,
        "runs": len(lags),
        "misfires": misfires,
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "lag_max_ms": max(lags, default=float("nan")) * 1000,
    }


async def noop(cfg_path: Path, interval: float, seconds: float) -> dict:
    from monitor.config import model as config_mod
    from monitor.daemon.scheduler import ProbeScheduler

    cfg = config_mod.load(cfg_path)
    exporter = _LagExporter()
    sched = ProbeScheduler(_NoopRunner(), exporter)  # type: ignore[arg-type]
    sched.add_target(cfg.targets[0])
    sched.start()
    await asyncio.sleep(interval)  # every job's first run lands within one interval
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    sched.shutdown()
    lags = [lag for at, lag in exporter.lags if at >= t0]
    return summary("no-op probes", len(cfg.targets[0].models), interval, lags, exporter.misfires)


async def full(cfg_path: Path, interval: float, seconds: float) -> dict:
    async with InProcessDaemon(cfg_path) as d:
        await asyncio.sleep(interval)
        t0 = time.monotonic()
        m0 = d.daemon.exporter.misfires._value.get()
        await asyncio.sleep(seconds)
        misfires = int(d.daemon.exporter.misfires._value.get() - m0)
        lags = d.rec.lags_since(t0)
    return summary("full daemon", len(d.config.targets[0].models), interval, lags, misfires)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nexomon-lag-"))
    try:
        with Responder(models=10) as responder:
            pin(PROBER_CORE)
            cfg = write_config(work, responder.base_url, args.jobs, chat_interval=args.interval)
            rows = [
                asyncio.run(noop(cfg, args.interval, args.seconds)),
                asyncio.run(full(cfg, args.interval, args.seconds)),
            ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit(args, "scheduler lag", rows, target="p99 < 50 ms")


if __name__ == "__main__":
    main()
