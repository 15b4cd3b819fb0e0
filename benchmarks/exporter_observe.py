"""Exporter micro-benchmark: CPU per observed result, per mark_unpriced, per render.

    python benchmarks/exporter_observe.py [--models 10,1000] [--rounds 5] [--json]

In one process, no daemon, no network: an ``Exporter`` on its own registry
with N chat models of one target, every model observed once (the series
exist), then:

- ``observe_us``: one ``observe()`` of a chat result (status, duration,
  five phases, tokens, cost, rate-limit headers), cycling over the models;
- ``unpriced_us``: one ``mark_unpriced`` that changes nothing (the runner
  calls it for every chat result that spent tokens);
- ``unpriced_flip_us``: one ``mark_unpriced`` that toggles the value;
- ``render_idle_ms``: ``Exporter.render`` with nothing new since the last one;
- ``render_fresh_ms``: ``Exporter.render`` after every model got a new result
  (``fresh100`` of ``scrape.py`` without the HTTP round trip), p50 of
  ``--rounds``;
- ``cache_MB``: what the rendered state holds (tracemalloc, in a separate
  pass: traced memory after two renders minus before the first);
- ``first_peak_MB``: the most the first render (every series new) held at
  once, over ``exporter_MB`` (what a process's RSS keeps afterwards);
- ``exporter_MB``: the exporter with all its series before any render
  (tracemalloc from before the Exporter was built).

The heap is frozen (``gc.freeze()``) before each timed part, as the daemon's
``HeapSettler`` keeps it. Pin the process (``taskset -c 0``) and run it under the
machine's benchmark lock on a shared machine; compare rows of one run.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench_common import emit, parser, percentile
from prometheus_client import CollectorRegistry

from monitor.exporter.exporter import Exporter
from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult

TARGET = "bench"
STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def chat_result(model: str, i: int) -> ProbeResult:
    """A chat result shaped like the daemon's (every field the exporter reads)."""
    return ProbeResult(
        started_at=STARTED + timedelta(seconds=i),
        location="bench",
        target=TARGET,
        probe="chat",
        model=model,
        outcome=Outcome.OK,
        http_status=200,
        duration_s=0.0012 + (i % 7) * 1e-4,
        phases=Phases(resolve=0.0001, connect=0.0002, tls=None, processing=0.0008, transfer=0.0001),
        prompt_tokens=12,
        completion_tokens=3,
        total_tokens=15,
        cost_usd=Decimal("0.0000024"),
        ratelimit_limit=60,
        ratelimit_remaining=59 - i % 50,
    )


def build(models: int) -> tuple[Exporter, CollectorRegistry, list[str]]:
    registry = CollectorRegistry()
    exporter = Exporter(registry, version="bench")
    exporter.configure_target(TARGET, max_models=models)
    names = [f"model-{i:05d}" for i in range(models)]
    for i, name in enumerate(names):
        exporter.set_interval(TARGET, "chat", name, 60.0)
        exporter.observe(chat_result(name, i))
        exporter.mark_unpriced(TARGET, name, False)
    return exporter, registry, names


def per_call_us(calls: int, fn: Callable[[int], object]) -> float:
    gc.collect()
    gc.freeze()  # as the daemon's HeapSettler does: long-lived series out of GC scans
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls * 1e6


def measure(models: int, rounds: int) -> dict:
    exporter, registry, names = build(models)
    exporter.render(registry)
    results = [chat_result(name, i + 1) for i, name in enumerate(names)]
    calls = max(20_000, models * 4)
    n = len(names)
    observe_us = per_call_us(calls, lambda i: exporter.observe(results[i % n]))
    unpriced_us = per_call_us(calls, lambda i: exporter.mark_unpriced(TARGET, names[i % n], False))
    flip_us = per_call_us(
        calls, lambda i: exporter.mark_unpriced(TARGET, names[i % n], (i // n) % 2 == 0)
    )
    exporter.render(registry)
    idle, fresh = [], []
    for r in range(rounds):
        start = time.perf_counter()
        exporter.render(registry)
        idle.append(time.perf_counter() - start)
        for i, name in enumerate(names):
            exporter.observe(chat_result(name, i + 10 + r))
        gc.collect()
        gc.freeze()
        start = time.perf_counter()
        body = exporter.render(registry)
        fresh.append(time.perf_counter() - start)
    del exporter, registry

    gc.unfreeze()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    exporter, registry, names = build(models)
    built = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    exporter.render(registry)
    peak = tracemalloc.get_traced_memory()[1]
    for i, name in enumerate(names):
        exporter.observe(chat_result(name, i + 1))
    exporter.render(registry)
    gc.collect()
    rendered = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {
        "models": models,
        "observe_us": observe_us,
        "unpriced_us": unpriced_us,
        "unpriced_flip_us": flip_us,
        "render_idle_ms": percentile(idle, 50) * 1000,
        "render_fresh_ms": percentile(fresh, 50) * 1000,
        "body_kB": len(body) / 1024,
        "cache_MB": (rendered - built) / 2**20,
        "first_peak_MB": (peak - built) / 2**20,
        "exporter_MB": (built - before) / 2**20,
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--models", default="10,1000")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rows = [measure(int(n), args.rounds) for n in args.models.split(",")]
    emit(args, "Exporter observe / mark_unpriced / render (in process)", rows)


if __name__ == "__main__":
    main()
