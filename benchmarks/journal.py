"""Journal benchmark: the CPU the crash-safe results journal costs per result.

    python benchmarks/journal.py [--rate 1000] [--seconds 8] [--runs 3] [--json]

Each run starts a ResultWriter on a fresh SQLite file (batch 200, flush
every 1 s: the daemon's settings) and feeds it ``--rate`` chat results a
second for ``--seconds`` from an asyncio loop, the way the daemon does: each
result is built just before ``submit()``, the loop sleeps between slices,
the GIL switch interval is the daemon's 0.1 ms (monitor.daemon.runtime).
Runs alternate between ``ResultWriter(journal=False)`` (before issue 14) and
``journal=True``; the table shows medians of:

- ``submit``: the loop thread's CPU inside ``submit()`` per result (with the
  journal: ``encode_entry`` and one ``os.write``);
- ``process``: the whole process's CPU per result (loop, building results,
  writer thread with its commits, segment rotation, fsync once a second and
  segment deletion). The difference of the two modes is the journal's cost
  per probe: compare it with the daemon's CPU per probe (about 300 µs in
  README "Performance"; the budget is 10 %).

Numbers taken in a tight loop understate the cost (hot caches): the loop
touches each result once, between other work, as here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from storage import sample

from monitor.daemon import runtime
from monitor.store.db import make_engine, upgrade
from monitor.store.writer import ResultWriter

PROBE_CPU_US = 300.0  # the daemon's CPU per probe (README "Performance")


def one_run(rate: int, seconds: float, journal: bool) -> tuple[float, float]:
    """(submit CPU µs per result, process CPU µs per result) for one fresh writer."""
    total = int(rate * seconds)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        writer = ResultWriter(engine, spool_dir=Path(tmp) / "spool", journal=journal)
        writer.start()
        now = datetime.now(UTC)

        async def feed() -> tuple[float, float]:
            loop = asyncio.get_running_loop()
            start, sent, in_submit = loop.time(), 0, 0.0
            process0 = time.process_time()
            while sent < total:
                due = min(total, int((loop.time() - start) * rate) + 1)
                while sent < due:
                    result = sample(sent, now)
                    cpu0 = time.thread_time()
                    writer.submit(result)
                    in_submit += time.thread_time() - cpu0
                    sent += 1
                await asyncio.sleep(0.001)
            while writer.written_total < total:
                await asyncio.sleep(0.01)
            return in_submit, time.process_time() - process0

        previous = runtime.tune()
        try:
            in_submit, process = asyncio.run(feed())
        finally:
            runtime.restore(previous)
        writer.close(timeout=600)
        assert writer.written_total == total, (writer.written_total, total)
        engine.dispose()
    return in_submit / total * 1e6, process / total * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    measured: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(args.runs):
        for journal in (False, True):  # alternated: drift hits both modes alike
            measured[journal].append(one_run(args.rate, args.seconds, journal))
    out: dict[str, object] = {}
    for journal, runs in measured.items():
        out["journal" if journal else "no journal"] = {
            "submit_us": statistics.median(r[0] for r in runs),
            "process_us": statistics.median(r[1] for r in runs),
            "process_runs_us": [round(r[1], 1) for r in runs],
        }
    on, off = out["journal"], out["no journal"]
    added = on["process_us"] - off["process_us"]  # type: ignore[index]
    out["added_us_per_result"] = added
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{args.rate} results/s for {args.seconds:.0f} s x {args.runs} runs, SQLite,"
        " medians (CPU µs per result)"
    )
    print("| mode | submit() on the loop | whole process | process, each run |")
    print("|---|---|---|---|")
    for name in ("no journal", "journal"):
        row = out[name]
        print(
            f"| {name} | {row['submit_us']:.1f} | {row['process_us']:.1f} | "  # type: ignore[index]
            f"{', '.join(map(str, row['process_runs_us']))} |"  # type: ignore[index]
        )
    print(
        f"| added by the journal | {on['submit_us'] - off['submit_us']:+.1f} | "  # type: ignore[index]
        f"{added:+.1f} ({added / PROBE_CPU_US * 100:+.1f} % of {PROBE_CPU_US:.0f} µs) | |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
