"""Memory: RSS of `nexomon run` at 10, 100 and 1,000 models over a long run.

    python benchmarks/memory.py [--minutes 30] [--models 10,100,1000] [--json]

One `nexomon run` subprocess per size, all at once, each probing its models
every 60 s (chat) against the nginx static responder (models probe every
60 s too), SQLite storage, /metrics scraped every 15 s like Prometheus
would. RSS (VmRSS) is sampled every 15 s. The table gives RSS after one
minute, at the start of the last 20 minutes (or the last two thirds of a
shorter run), at the end, the peak, and the growth over that last window.
Target: under 150 MB at 1,000 models, flat over the last 20 minutes.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_common import Responder, emit, free_port, parser, percentile, rss_mb, write_config

SAMPLE_S = 15.0


def nexomon_cmd(config: Path) -> list[str]:
    exe = shutil.which("nexomon")
    base = [exe] if exe else [sys.executable, "-m", "monitor.cli.main"]
    return [*base, "run", "-c", str(config)]


def scrape(port: int) -> int:
    """Scrapes /metrics; returns the total of nexomon_probes_total."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("nexomon_probes_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--models", default="10,100,1000")
    ap.add_argument("--interval", type=float, default=60.0, help="chat and models interval, s")
    args = ap.parse_args()
    sizes = [int(s) for s in args.models.split(",")]
    duration = args.minutes * 60
    window = min(20 * 60.0, duration * 2 / 3)
    work = Path(tempfile.mkdtemp(prefix="nexomon-mem-"))
    procs: dict[int, tuple[subprocess.Popen[bytes], int]] = {}
    samples: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}
    probes: dict[int, int] = {}
    with Responder(models=max(sizes)) as responder:
        try:
            for n in sizes:
                d = work / f"m{n}"
                d.mkdir()
                port = free_port()
                cfg = write_config(
                    d,
                    responder.base_url,
                    n,
                    chat_interval=args.interval,
                    models_interval=args.interval,
                    listen_port=port,
                )
                log = (d / "nexomon.log").open("wb")
                procs[n] = (subprocess.Popen(nexomon_cmd(cfg), stdout=log, stderr=log), port)
            start = time.monotonic()
            while (now := time.monotonic() - start) < duration:
                time.sleep(min(SAMPLE_S, max(0.0, duration - now)))
                for n, (proc, port) in procs.items():
                    if proc.poll() is not None:
                        sys.exit(f"nexomon with {n} models exited {proc.returncode}; see {work}")
                    with contextlib.suppress(OSError):  # not listening yet
                        probes[n] = scrape(port)
                    samples[n].append((time.monotonic() - start, rss_mb(proc.pid)))
        finally:
            for proc, _ in procs.values():
                proc.terminate()
            for proc, _ in procs.values():
                proc.wait(60)
    rows = []
    for n in sizes:
        pts = samples[n]
        last = [rss for t, rss in pts if t >= duration - window]
        at_1m = next((rss for t, rss in pts if t >= 60), pts[0][1])
        rows.append(
            {
                "models": n,
                "probes": probes.get(n, 0),
                "rss_1min_MB": at_1m,
                "rss_window_start_MB": last[0],
                "rss_end_MB": pts[-1][1],
                "rss_peak_MB": max(r for _, r in pts),
                "growth_last_window_MB": pts[-1][1] - last[0],
                "window_p50_MB": percentile(last, 50),
            }
        )
    shutil.rmtree(work, ignore_errors=True)
    # The trajectory, to tell a steady climb from a swing between scrapes.
    step = max(SAMPLE_S, duration / 10)
    trajectory = {
        f"rss_MB_every_{step / 60:g}min_{n}": [
            round(rss) for t, rss in samples[n] if t % step < SAMPLE_S or t >= duration
        ]
        for n in sizes
    }
    emit(
        args,
        f"memory: RSS of `nexomon run` over {args.minutes:g} min, "
        f"chat+models every {args.interval:g}s (window = last {window / 60:g} min)",
        rows,
        target="rss_end_MB < 150 at 1000 models; growth over the window ~0",
        **trajectory,
    )


if __name__ == "__main__":
    main()
