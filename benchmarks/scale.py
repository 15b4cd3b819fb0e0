"""Scale: one daemon watching 10,000 models (100 targets x 100) for half an hour.

    python benchmarks/scale.py [--targets 100] [--models 100] [--minutes 30]
                               [--chat-interval 300] [--models-interval 60]
                               [--model-metrics compact|full] [--every 60] [--json]

Starts the nginx static responder (``benchmarks/nginx.conf``, ``--models``
models in its ``/models``, pinned to core 1) and ``nexomon run`` as its own
process (pinned to core 0, SQLite in a temp dir, log level info) with
``--targets`` targets on it, each with ``models = ["*"]``: every model the
responder lists is chat-probed every ``--chat-interval`` seconds and every
target lists models every ``--models-interval`` seconds. ``[monitor]
model_metrics`` is ``--model-metrics`` (``compact`` is the setting for very
large catalogs, docs/architecture.md).

Measured, all from outside the daemon:

- ``start_s``: process start to every chat job scheduled (the daemon logs
  ``now probing model`` once per job; the last of targets x models lines).
- Every ``--every`` seconds (a Prometheus-like scrape loop, plus one
  ``/api/v1/status``): RSS (``/proc/PID/status``), the ``/metrics`` time
  (asked as Prometheus asks, ``Accept-Encoding: gzip``) and size (text and
  on the wire), the ``/api/v1/status`` time, and the scheduler lag p99 over the
  interval, interpolated from the ``nexomon_scheduler_lag_seconds`` buckets
  (as PromQL's histogram_quantile does). The first scrape is timed on its own:
  it renders every series once.
- ``sigterm_s``: SIGTERM to process exit.

The table has one row per sample; the summary gives the targets of issue 20:
RSS after the run (< 400 MB) and its growth over the last two thirds (< 5 MB),
first scrape (< 10 s), scrape p50 (< 1 s), scrape size (< 10 MB with
``compact``), lag p99 (< 50 ms), start (< 10 s), SIGTERM (< 5 s),
``/api/v1/status`` p50 (< 500 ms).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench_common import (
    PROBER_CORE,
    Responder,
    emit,
    free_port,
    model_names,
    parser,
    pinned,
    rss_mb,
)
from soak import quantile, stop, wait_http

LAG_PREFIX = b"nexomon_scheduler_lag_seconds_bucket{"
MB = 1_000_000


def config_toml(work: Path, base_url: str, port: int, a: argparse.Namespace) -> str:
    lines = [
        "[monitor]",
        'location = "scale"',
        f'database_url = "sqlite:///{work / "scale.db"}"',
        f'listen = "127.0.0.1:{port}"',
        "retention_days = 1",
        f'model_metrics = "{a.model_metrics}"',
        "",
    ]
    for model in model_names(a.models):  # priced, as a team's catalog would be
        lines += [f'[pricing."{model}"]', "input = 0.10", "output = 0.40", ""]
    for index in range(a.targets):
        lines += [
            "[[targets]]",
            f'name = "t{index:03d}"',
            f'base_url = "{base_url}"',
            'api_key_file = "api.key"',
            'timeout = "10s"',
            f"models_interval = {a.models_interval}",
            f"chat_interval = {a.chat_interval}",
            f"max_models = {a.models}",
            'models = ["*"]',
            "",
        ]
    return "\n".join(lines)


def timed_get(url: str, timeout: float = 60) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read()
    return time.perf_counter() - start, body


def timed_scrape(url: str, timeout: float = 60) -> tuple[float, int, bytes]:
    """A scrape as Prometheus makes it (``Accept-Encoding: gzip``): (seconds, wire bytes, text)."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        wire = response.read()
        zipped = response.headers.get("Content-Encoding") == "gzip"
    elapsed = time.perf_counter() - start
    return elapsed, len(wire), gzip.decompress(wire) if zipped else wire


def lag_buckets(body: bytes) -> dict[float, float]:
    """Cumulative scheduler-lag bucket counts by upper bound (only those lines are parsed)."""
    out: dict[float, float] = {}
    for line in body.split(b"\n"):
        if line.startswith(LAG_PREFIX):
            labels, _, value = line.rpartition(b" ")
            bound = labels.split(b'le="', 1)[1].split(b'"', 1)[0].decode()
            key = float("inf") if bound == "+Inf" else float(bound)
            out[key] = out.get(key, 0.0) + float(value)
    return out


class LogWatch:
    """Counts the daemon's ``now probing model`` lines; notes when ``want`` is reached."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, want: int) -> None:
        self.want, self.count, self.reached_at = want, 0, None
        self._log = log_path.open("wb")
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._log.write(line)
            if b"now probing model" in line:
                self.count += 1
                if self.count == self.want:
                    self.reached_at = time.monotonic()
        self._log.close()


def run(a: argparse.Namespace, work: Path) -> tuple[list[dict], dict]:
    want = a.targets * a.models
    (work / "api.key").write_text("bench-key\n")
    (work / "api.key").chmod(0o600)
    port = free_port()
    with Responder(models=a.models) as nginx:
        config = work / "nexomon.toml"
        config.write_text(config_toml(work, nginx.base_url, port, a))
        cmd = [sys.executable, "-m", "monitor.cli.main", "run", "-c", str(config)]
        started = time.monotonic()
        proc = subprocess.Popen(
            pinned(cmd, PROBER_CORE), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=work
        )
        watch = LogWatch(proc, work / "daemon.log", want)
        url = f"http://127.0.0.1:{port}"
        rows: list[dict] = []
        status_errors = 0
        try:
            wait_http(url + "/healthz", proc, timeout=120)
            deadline = time.monotonic() + 120
            while watch.reached_at is None and time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise SystemExit(f"nexomon exited {proc.returncode}; see {work}/daemon.log")
                time.sleep(0.1)
            start_s = None if watch.reached_at is None else watch.reached_at - started
            first_s, _, body = timed_scrape(url + "/metrics")
            previous = lag_buckets(body)
            t0 = time.monotonic()
            end = t0 + a.minutes * 60
            next_at = t0 + a.every
            while next_at <= end + 0.5:
                time.sleep(max(0.0, next_at - time.monotonic()))
                if proc.poll() is not None:
                    raise SystemExit(f"nexomon exited {proc.returncode}; see {work}/daemon.log")
                scrape_s, wire, body = timed_scrape(url + "/metrics")
                try:
                    status_s, _ = timed_get(url + "/api/v1/status")
                except urllib.error.HTTPError as exc:  # a failed answer is a result too
                    status_s, status_errors = float("nan"), status_errors + 1
                    print(f"  /api/v1/status answered {exc.code}", file=sys.stderr, flush=True)
                now = lag_buckets(body)
                interval = {b: now[b] - previous.get(b, 0.0) for b in now}
                lag = quantile(0.99, interval)
                rows.append(
                    {
                        "minute": round((time.monotonic() - t0) / 60, 1),
                        "rss_MB": round(rss_mb(proc.pid) * 1.048576, 1),
                        "scrape_s": round(scrape_s, 3),
                        "scrape_MB": round(len(body) / MB, 2),
                        "gzip_MB": round(wire / MB, 2),
                        "status_s": round(status_s, 3),
                        "lag_p99_ms": None if lag is None else round(lag * 1000, 1),
                        "job_runs": int(interval.get(float("inf"), 0.0)),
                    }
                )
                print(f"  {rows[-1]}", file=sys.stderr, flush=True)
                previous = now
                next_at += a.every
            total = previous
            if a.save_scrape is not None:
                a.save_scrape.write_bytes(body)
        finally:
            signalled = time.monotonic()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    stop(proc)
            code = proc.returncode
            sigterm_s = time.monotonic() - signalled
    third = rows[len(rows) // 3] if rows else {}
    summary = {
        "models": want,
        "model_metrics": a.model_metrics,
        "chat_interval_s": a.chat_interval,
        "start_s (<10)": None if start_s is None else round(start_s, 2),
        "jobs_scheduled": watch.count,
        "first_scrape_s (<10)": round(first_s, 2),
        "scrape_p50_s (<1)": round(statistics.median(r["scrape_s"] for r in rows), 3),
        "scrape_MB (<10)": rows[-1]["scrape_MB"] if rows else None,
        "scrape_gzip_MB": rows[-1]["gzip_MB"] if rows else None,
        "status_p50_s (<0.5)": round(
            statistics.median(r["status_s"] for r in rows if r["status_s"] == r["status_s"]), 3
        ),
        "status_errors": status_errors,
        "lag_p99_ms_run (<50)": _ms(quantile(0.99, total)),
        "rss_MB_end (<400)": rows[-1]["rss_MB"] if rows else None,
        "rss_growth_MB_last_2/3 (<5)": round(rows[-1]["rss_MB"] - third["rss_MB"], 1)
        if rows
        else None,
        "sigterm_s (<5)": round(sigterm_s, 2),
        "exit_code": code,
    }
    return rows, summary


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--models", type=int, default=100, help="models per target")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--chat-interval", type=float, default=300.0)
    ap.add_argument("--models-interval", type=float, default=60.0)
    ap.add_argument("--model-metrics", choices=["compact", "full"], default="compact")
    ap.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (config, log, db)")
    ap.add_argument("--save-scrape", type=Path, help="write the last /metrics body here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nexomon-scale-"))
    try:
        rows, summary = run(args, work)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    title = (
        f"Scale: {args.targets} targets x {args.models} models, chat every "
        f"{args.chat_interval:g}s, models every {args.models_interval:g}s, "
        f"model_metrics={args.model_metrics}, {os.cpu_count()} cores"
    )
    emit(args, title, rows, **summary)


if __name__ == "__main__":
    main()
