"""``nexomon demo``: the simulator and the daemon together, nothing to set up.

Starts the built-in simulator with its demo scenario (healthy, flaky, slow
and rate-limited models, and one that disappears from /models after a
minute) on a free port, writes a config and an API key file into a
temporary directory, runs the daemon against it on SQLite there, prints the
URLs, and keeps a one-screen summary fresh until Ctrl-C (or ``--duration``)
stops both cleanly. The temporary directory is removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path

from monitor.config import model as config_mod
from monitor.daemon.root import Daemon
from monitor.logs import SecretScrubber
from monitor.simulator.server import RunningSimulator
from monitor.spend.budget import format_usd

DEMO_KEY = "sk-sim-demo-0000"

DEMO_CONFIG = """\
# Written by `nexomon demo`.
[monitor]
location = "demo"
database_url = "sqlite:///{db}"
listen = "127.0.0.1:{port}"

[[targets]]
name = "simulator"
base_url = "{base_url}"
api_key_file = "demo.key"
timeout = "5s"
models_interval = "10s"
chat_interval = "15s"
contract_interval = "1m"
models = ["*"]

[pricing."sim-fast"]
input = 0.05
output = 0.20
[pricing."sim-balanced"]
input = 0.50
output = 1.50
[pricing."sim-large"]
input = 3.00
output = 15.00
[pricing."sim-flaky"]
input = 0.10
output = 0.40
[pricing."sim-ratelimited"]
input = 0.10
output = 0.40
[pricing."sim-slow"]
input = 1.00
output = 4.00

[budget]
daily_usd = 0.50
"""


def _demo_scenario() -> Path:
    return Path(str(resources.files("monitor.simulator") / "demo.toml"))


def write_demo_config(workdir: Path, base_url: str, port: int) -> Path:
    key = workdir / "demo.key"
    key.write_text(DEMO_KEY + "\n")
    key.chmod(0o600)
    path = workdir / "nexomon.toml"
    path.write_text(DEMO_CONFIG.format(db=workdir / "nexomon.db", port=port, base_url=base_url))
    return path


def summary(daemon: Daemon) -> str:
    """The live one-screen view: one line per (probe, model) from the last results."""
    lines = [f"{'PROBE':<7} {'MODEL':<18} {'OUTCOME':<17} {'LATENCY':>9}  ERROR"]
    for (_, probe, model), result in sorted(daemon.last_results.snapshot().items()):
        latency = "-" if result.duration_s is None else f"{result.duration_s * 1000:.0f} ms"
        lines.append(
            f"{probe:<7} {model or '-':<18} {result.outcome.value:<17} {latency:>9}  "
            f"{(result.error or '')[:50]}"
        )
    budget = daemon.runner.budget if daemon.runner else None
    if budget is not None:
        limit = "no cap" if budget.limit_usd is None else format_usd(budget.limit_usd)
        lines.append(f"probe spend today: {format_usd(budget.spent_usd)} of {limit}")
    return "\n".join(lines)


async def _show(daemon: Daemon, every: float) -> None:
    tty = sys.stdout.isatty()
    while True:
        await asyncio.sleep(every)
        text = summary(daemon)
        if tty:
            sys.stdout.write("\x1b[2J\x1b[H" + _header(daemon) + "\n\n" + text + "\n")
        else:
            sys.stdout.write(text + "\n\n")
        sys.stdout.flush()


def _header(daemon: Daemon) -> str:
    port = daemon.web.port if daemon.web else 0
    return (
        f"nexomon demo: metrics http://127.0.0.1:{port}/metrics  "
        f"status http://127.0.0.1:{port}/api/v1/status  (Ctrl-C stops)"
    )


async def _run(workdir: Path, port: int, duration: float | None, scrubber: SecretScrubber) -> int:
    with RunningSimulator(scenario_path=_demo_scenario()) as sim:
        cfg = config_mod.load(write_demo_config(workdir, sim.base_url, port))
        daemon = Daemon(cfg, scrubber=scrubber, config_path=cfg.source)
        task = asyncio.create_task(daemon.run())
        while daemon.web is None or not daemon.web.started:
            if task.done():
                return task.result()
            await asyncio.sleep(0.05)
        print(f"simulator:  {sim.base_url}")
        print(_header(daemon))
        print(f"database:   {workdir / 'nexomon.db'}")
        sys.stdout.flush()
        shower = asyncio.create_task(_show(daemon, 5.0))
        if duration is not None:
            asyncio.get_running_loop().call_later(duration, daemon.request_stop)
        try:
            code = await task
        finally:
            shower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shower
        print(summary(daemon))
        return code


async def run_demo(*, port: int, duration: float | None, scrubber: SecretScrubber) -> int:
    with tempfile.TemporaryDirectory(prefix="nexomon-demo-") as tmp:
        os.chmod(tmp, 0o700)
        return await _run(Path(tmp), port, duration, scrubber)
