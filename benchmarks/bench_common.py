"""Shared pieces of the side-by-side benchmarks (nexomon vs blackbox_exporter).

- ``Responder``: the nginx static responder of ``benchmarks/nginx.conf``
  (Debian ``nginx-light``), on a free port, pinned to a core.
- ``Blackbox``: Prometheus' ``blackbox_exporter`` with ``benchmarks/blackbox.yml``.
- ``write_config``: a nexomon TOML config with N chat models on the responder.
- ``InProcessDaemon``: the real ``Daemon`` (scheduler, runner, writer,
  exporter, HTTP routes) in this process, with every scheduler lag and every
  result recorded exactly (not from histogram buckets).
- ``percentile``, ``emit`` (a table, or JSON with ``--json``), ``pin``,
  ``rss_mb``, ``cpu_yardstick`` (the machine's single-core speed).

Core layout on a 2-core machine: the measured prober (nexomon, or
blackbox_exporter) on ``PROBER_CORE``; the responder and any load driver
on ``RESPONDER_CORE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

PROBER_CORE = 0
RESPONDER_CORE = 1 if (os.cpu_count() or 1) > 1 else 0
API_KEY = "bench-key"
CHAT_BODY_DELAY_S = 0.1  # the /slow/ locations of nginx.conf


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pin(core: int) -> None:
    """Pins this process (and threads started later) to one core."""
    os.sched_setaffinity(0, {core})


def pinned(cmd: Sequence[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *cmd]


def wait_port(port: int, deadline_s: float = 15.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {deadline_s}s")


def need(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        sys.exit(f"{binary} not found: apt-get install -y --no-install-recommends {package}")
    return path


def model_names(count: int) -> list[str]:
    return [f"bench-{i:05d}" for i in range(count)]


class Responder:
    """nginx with benchmarks/nginx.conf; ``.base_url`` is ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, models: int = 10, core: int = RESPONDER_CORE) -> None:
        self.models = models
        self.core = core
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="nexomon-nginx-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def slow_base_url(self) -> str:
        """The same API answering after CHAT_BODY_DELAY_S."""
        return f"http://127.0.0.1:{self.port}/slow/v1"

    def __enter__(self) -> Responder:
        nginx = need("nginx", "nginx-light")
        conf = (HERE / "nginx.conf").read_text()
        conf = conf.replace("@PREFIX@", str(self._dir)).replace("@PORT@", str(self.port))
        (self._dir / "nginx.conf").write_text(conf)
        self._dir.chmod(0o755)  # nginx's worker runs as an unprivileged user when started as root
        data = [{"id": m, "object": "model", "owned_by": "bench"} for m in model_names(self.models)]
        (self._dir / "models.json").write_text(json.dumps({"object": "list", "data": data}))
        cmd = [nginx, "-p", str(self._dir), "-c", "nginx.conf", "-g", "daemon off;"]
        self._proc = subprocess.Popen(pinned(cmd, self.core), stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
        shutil.rmtree(self._dir, ignore_errors=True)


class Blackbox:
    """blackbox_exporter with benchmarks/blackbox.yml, pinned to ``core``."""

    def __init__(self, core: int = PROBER_CORE) -> None:
        self.core = core
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def probe_url(self, target: str, module: str = "chat") -> str:
        return f"http://127.0.0.1:{self.port}/probe?module={module}&target={target}"

    def __enter__(self) -> Blackbox:
        exe = shutil.which("prometheus-blackbox-exporter") or need(
            "blackbox_exporter", "prometheus-blackbox-exporter"
        )
        cmd = [
            exe,
            f"--config.file={HERE / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=error",
        ]
        env = {**os.environ, "GOMAXPROCS": "1"}
        self._proc = subprocess.Popen(
            pinned(cmd, self.core), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)
        return self

    def probe(self, target: str) -> dict[str, float]:
        """One probe; the probe_* gauges of its answer."""
        with urllib.request.urlopen(self.probe_url(target), timeout=15) as resp:
            text = resp.read().decode()
        return parse_gauges(text)

    def cpu_seconds(self) -> float:
        """User + system CPU time blackbox_exporter has used so far."""
        assert self._proc is not None
        # taskset execs the exporter, so the pid is the exporter's own.
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)


def parse_gauges(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            out[name] = float(value)
    return out


def write_config(
    directory: Path,
    base_url: str,
    models: int,
    *,
    chat_interval: float,
    models_interval: float = 3600.0,
    timeout: float = 10.0,
    listen_port: int | None = None,
) -> Path:
    """A config with one target probing ``models`` chat models on ``base_url``."""
    # The config's rule: a probe must end before its next run.
    timeout = min(timeout, chat_interval, models_interval)
    key = directory / "bench.key"
    key.write_text(API_KEY)
    names = ", ".join(json.dumps(m) for m in model_names(models))
    text = f"""
[monitor]
location = "bench"
database_url = "sqlite:///{directory / "nexomon.db"}"
listen = "127.0.0.1:{listen_port or free_port()}"
retention_days = 7

[[targets]]
name = "bench"
base_url = "{base_url}"
api_key_file = "{key}"
timeout = {timeout}
models_interval = {models_interval}
chat_interval = {chat_interval}
max_models = {max(models, 1)}
models = [{names}]
"""
    path = directory / "nexomon.toml"
    path.write_text(text)
    return path


@dataclass
class Recorder:
    """Every scheduler lag and result outcome of the in-process daemon, and the
    last result per (probe, model).

    Compact on purpose: keeping every ProbeResult object (~30,000 at 1,400/s
    over 20 s) grew the heap the garbage collector scans, so the benchmark's
    own bookkeeping caused full-collection pauses the daemon does not have.
    Tuples of floats and strings are untracked by the collector.
    """

    lags: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, lag s)
    outcomes: list[tuple[float, str, str]] = field(default_factory=list)  # (at, probe, outcome)
    last: dict[tuple[str, str], Any] = field(default_factory=dict)  # (probe, model) -> result

    def lags_since(self, start: float) -> list[float]:
        return [lag for at, lag in self.lags if at >= start]

    def outcomes_since(self, start: float, probe: str) -> list[str]:
        return [outcome for at, p, outcome in self.outcomes if at >= start and p == probe]


class InProcessDaemon:
    """The real Daemon in this event loop, instrumented; an async context manager."""

    def __init__(self, config_path: Path) -> None:
        from monitor.config import model as config_mod
        from monitor.daemon.root import Daemon
        from monitor.logs import SecretScrubber

        # Misfire warnings would flood the terminal at overload; they are counted instead.
        for name in ("apscheduler", "nexomon"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self.config = config_mod.load(config_path)
        self.daemon = Daemon(self.config, scrubber=SecretScrubber(), config_path=config_path)
        self.rec = Recorder()
        exporter = self.daemon.exporter
        observe_lag, on_result = exporter.observe_lag, self.daemon._on_result

        def lag_hook(seconds: float) -> None:
            self.rec.lags.append((time.monotonic(), seconds))
            observe_lag(seconds)

        def result_hook(result: Any) -> None:
            self.rec.outcomes.append((time.monotonic(), result.probe, result.outcome.value))
            self.rec.last[(result.probe, result.model)] = result
            on_result(result)

        exporter.observe_lag = lag_hook  # type: ignore[method-assign]
        self.daemon._on_result = result_hook  # type: ignore[method-assign]
        self._task: asyncio.Task[int] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.config.monitor.listen_port}/metrics"

    async def __aenter__(self) -> InProcessDaemon:
        self._task = asyncio.create_task(self.daemon.run())
        while self.daemon.web is None or not self.daemon.web.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.daemon.request_stop()
        if self._task is not None:
            await self._task


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def cpu_yardstick() -> float:
    """Seconds of a fixed pure-Python loop (10**7 additions), best of 3.

    The machine's single-core interpreter speed, printed under every table
    (``emit``): the same report over the same data took 2.9x longer on one
    lent machine than on another, and only this says which kind a table came
    from. 0.55-0.79 s on the slower one (2026-12-06 evening; it moves too).
    """
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        total = 0
        for i in range(10**7):
            total += i
        best = min(best, time.perf_counter() - t)
    return best


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def parser(doc: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return ap


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def emit(
    args: argparse.Namespace, title: str, rows: Iterable[dict[str, Any]], **extra: Any
) -> None:
    """Prints ``rows`` as an aligned table (or JSON with ``--json``), with the
    machine's ``cpu_yardstick`` measured after the run (a quiet moment)."""
    rows = list(rows)
    extra = {**extra, "cpu_yardstick_s": round(cpu_yardstick(), 3)}
    if args.json:
        print(json.dumps({"benchmark": title, "rows": rows, **extra}, indent=2, default=str))
        return
    print(f"\n{title}")
    if rows:
        cols = list(rows[0])
        cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        print("  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
        for row in cells:
            print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    for key, value in extra.items():
        print(f"{key}: {value}")
