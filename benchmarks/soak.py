"""Soak: the daemon for N minutes at a high probe rate against every simulator fault.

    python benchmarks/soak.py --minutes 10 [--json] [--every 60] [--targets 4] [--keep]

Starts ``nexomon simulate`` (its own process) with a scenario that mixes
every fault the simulator has: hangs past the timeout, connection resets,
a body dripping a byte at a time, oversized bodies, malformed JSON, HTML
200s, 5xx, missing usage, an ``error`` object in a 200, empty choices, a
model that is rate limited (429 + retry-after) and one that disappears from
``/models`` and comes back. Then ``nexomon run`` (a subprocess, SQLite in a
temp dir) probes it every second with ``--targets`` targets.

Every ``--every`` seconds it samples the daemon: RSS and threads
(``/proc/PID/status``), open file descriptors (``/proc/PID/fd``), the
writer queue (``nexomon_store_pending_rows``), the scheduler lag p99 over
the interval (interpolated from the ``nexomon_scheduler_lag_seconds``
buckets, like PromQL's histogram_quantile) and the probes finished in the
interval. It prints the table (or JSON) and a verdict: RSS and fds must be
flat after the first sample (warm-up: imports, pools, caches fill), judged
by the peaks of the first and second half of the run (see ``verdict``).
Exit code 0 when flat, 1 when not, 2 when a process died.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

# Flatness: after warm-up the later half may peak this much above the earlier half
# (allocator noise, SQLite page caches filling); a leak of ~1 MiB/min fails.
RSS_TOLERANCE_MIB = 3.0
FD_TOLERANCE = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scenario_toml(minutes: float) -> str:
    """Every fault kind, spread over the models; one model leaves /models and comes back."""
    total_s = minutes * 60
    gone, back = max(10.0, total_s * 0.25), max(20.0, total_s * 0.5)
    return textwrap.dedent(
        f"""\
        name = "soak"
        seed = 7

        [models.soak-ok]
        latency_ms = {{dist = "lognormal", median = 20, p99 = 200}}

        [models.soak-hang]
        latency_ms = 10
        faults = [{{kind = "hang", rate = 0.3}}, {{kind = "reset", rate = 0.3}}]

        [models.soak-drip]
        latency_ms = 10
        faults = [{{kind = "slow_drip", rate = 0.3, interval_s = 0.5}}]

        [models.soak-big]
        latency_ms = 10
        faults = [{{kind = "oversized", rate = 0.3, size_bytes = 5000000}}]

        [models.soak-bad]
        latency_ms = 10
        faults = [
          {{kind = "malformed_json", rate = 0.2}},
          {{kind = "html_200", rate = 0.2}},
          {{kind = "missing_usage", rate = 0.2}},
          {{kind = "error_in_200", rate = 0.2}},
          {{kind = "empty_choices", rate = 0.1}},
        ]

        [models.soak-5xx]
        latency_ms = 10
        error_rate = 0.5
        faults = [{{kind = "server_error", rate = 0.2, status = 504}}]

        [models.soak-429]
        latency_ms = 10
        ratelimit = {{limit = 2, per_s = 0.2}}

        [models.soak-gone]
        latency_ms = 10
        disappear_after_s = {gone:g}
        reappear_after_s = {back:g}
        """
    )


def config_toml(directory: Path, base_url: str, port: int, targets: int) -> str:
    lines = [
        "[monitor]",
        'location = "soak"',
        f'database_url = "sqlite:///{directory / "soak.db"}"',
        f'listen = "127.0.0.1:{port}"',
        "",
    ]
    for index in range(targets):
        lines += [
            "[[targets]]",
            f'name = "soak{index}"',
            f'base_url = "{base_url}"',
            'api_key_file = "api.key"',
            'timeout = "2s"',
            'models_interval = "1s"',
            'chat_interval = "1s"',
            'models = ["*"]',
            "",
        ]
    return "\n".join(lines)


@dataclass
class Sample:
    minute: float
    rss_mib: float
    fds: int
    threads: int
    pending_rows: float
    lag_p99_s: float | None
    probes: int
    written_rows: float


def proc_status(pid: int) -> tuple[float, int]:
    """(RSS in MiB, threads) from /proc/PID/status."""
    rss, threads = 0.0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name from the daemon's /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def total(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in metrics.get(name, []))


def lag_buckets(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> dict[float, float]:
    """Cumulative lag bucket counts summed over every label set, by upper bound."""
    buckets: dict[float, float] = {}
    for labels, value in metrics.get("nexomon_scheduler_lag_seconds_bucket", []):
        bound = float(labels["le"])
        buckets[bound] = buckets.get(bound, 0.0) + value
    return buckets


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile over cumulative ``buckets``; None when empty."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return bounds[-1]


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process exited {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def soak(minutes: float, every: float, targets: int, workdir: Path) -> list[Sample]:
    sim_port, port = free_port(), free_port()
    (workdir / "scenario.toml").write_text(scenario_toml(minutes))
    (workdir / "api.key").write_text("sk-soak\n")
    base_url = f"http://127.0.0.1:{sim_port}/v1"
    config = workdir / "nexomon.toml"
    config.write_text(config_toml(workdir, base_url, port, targets))
    cli = [sys.executable, "-m", "monitor.cli.main"]
    sim_log = (workdir / "simulator.log").open("wb")
    daemon_log = (workdir / "daemon.log").open("wb")
    simulator = subprocess.Popen(
        [*cli, "simulate", "--port", str(sim_port), "--scenario", str(workdir / "scenario.toml")],
        stdout=sim_log,
        stderr=subprocess.STDOUT,
    )
    daemon = None
    samples: list[Sample] = []
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/_sim/stats", simulator)
        daemon = subprocess.Popen(
            [*cli, "run", "-c", str(config), "--log-level", "warning"],
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", daemon)
        start = time.monotonic()
        previous = scrape(url)
        end = start + minutes * 60
        next_at = start + every
        while next_at <= end + 0.5:
            time.sleep(max(0.0, next_at - time.monotonic()))
            for proc, name in ((daemon, "daemon"), (simulator, "simulator")):
                if proc.poll() is not None:
                    raise SystemExit(f"the {name} exited {proc.returncode}; see {workdir}")
            metrics = scrape(url)
            rss, threads = proc_status(daemon.pid)
            now_buckets, old_buckets = lag_buckets(metrics), lag_buckets(previous)
            interval = {b: now_buckets[b] - old_buckets.get(b, 0.0) for b in now_buckets}
            samples.append(
                Sample(
                    minute=round((time.monotonic() - start) / 60, 2),
                    rss_mib=round(rss, 1),
                    fds=open_fds(daemon.pid),
                    threads=threads,
                    pending_rows=total(metrics, "nexomon_store_pending_rows"),
                    lag_p99_s=quantile(0.99, interval),
                    probes=int(
                        total(metrics, "nexomon_probes_total")
                        - total(previous, "nexomon_probes_total")
                    ),
                    written_rows=total(metrics, "nexomon_store_written_rows_total"),
                )
            )
            print_progress(samples[-1])
            previous = metrics
            next_at += every
    finally:
        for proc in (daemon, simulator):
            if proc is not None:
                stop(proc)
        sim_log.close()
        daemon_log.close()
    return samples


def print_progress(sample: Sample) -> None:
    print(f"  sampled at {sample.minute:.2f} min: {sample.rss_mib} MiB", file=sys.stderr)


def verdict(samples: list[Sample]) -> tuple[bool, str]:
    """Flat = no upward trend after the first (warm-up) sample.

    A single sample is noisy: fds include the sockets of probes in flight
    (a few per target) and RSS moves with the allocator. A leak grows
    steadily instead, so the steady samples are split in halves and the
    later half's peak may exceed the earlier half's by the tolerance only.
    """
    steady = samples[1:] if len(samples) > 2 else samples
    half = max(1, len(steady) // 2)
    early, late = steady[:half], steady[half:] or steady[-1:]
    rss_growth = max(s.rss_mib for s in late) - max(s.rss_mib for s in early)
    fd_growth = max(s.fds for s in late) - max(s.fds for s in early)
    flat = rss_growth <= RSS_TOLERANCE_MIB and fd_growth <= FD_TOLERANCE
    rss = [s.rss_mib for s in steady]
    fds = [s.fds for s in steady]
    text = (
        f"after warm-up: RSS {rss[0]:.1f} -> {rss[-1]:.1f} MiB, peak growth between halves "
        f"{rss_growth:+.1f} MiB (tolerance {RSS_TOLERANCE_MIB:g}); fds {min(fds)}..{max(fds)}, "
        f"peak growth {fd_growth:+d} (tolerance {FD_TOLERANCE}): {'FLAT' if flat else 'NOT FLAT'}"
    )
    return flat, text


def render(samples: list[Sample]) -> str:
    header = ("minute", "rss_mib", "fds", "threads", "pending", "lag_p99_s", "probes", "written")
    rows = [
        (
            f"{s.minute:.1f}",
            f"{s.rss_mib:.1f}",
            str(s.fds),
            str(s.threads),
            f"{s.pending_rows:g}",
            "-" if s.lag_p99_s is None else f"{s.lag_p99_s:.3f}",
            str(s.probes),
            f"{s.written_rows:g}",
        )
        for s in samples
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--targets", type=int, default=4, help="targets on the one simulator")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, db)")
    args = parser.parse_args(argv)
    every = min(args.every, args.minutes * 60)
    workdir = Path(tempfile.mkdtemp(prefix="nexomon-soak-"))
    try:
        samples = soak(args.minutes, every, args.targets, workdir)
    except SystemExit as exc:
        print(f"soak failed: {exc} (logs kept in {workdir})", file=sys.stderr)
        return 2
    if args.keep:
        print(f"work dir kept: {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    flat, text = verdict(samples)
    if args.json:
        print(json.dumps({"samples": [asdict(s) for s in samples], "flat": flat, "verdict": text}))
    else:
        print(render(samples))
        print(text)
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
