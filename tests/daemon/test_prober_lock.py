"""One ``nexomon run`` per SQLite file (issue 16 point 4), with real processes.

A second daemon on the same file exits 2 with one line naming
``monitor.database_url`` and the holder's pid, before any probe reaches its
gateway (it gets a simulator of its own, which must see no request), while
``nexomon report`` keeps reading the file. Once the holder stops (SIGTERM)
or is killed (SIGKILL: the kernel drops the ``flock``), the next one starts.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from daemon_kit import db_rows, eventually
from harness import DaemonProcess, write_config

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

SCENARIO = Scenario.from_dict({"name": "prober-lock", "models": {"m-lock": {"latency_ms": 5}}})


def nexomon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_second_daemon_on_one_sqlite_file_exits_2_naming_the_holder(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'shared' / 'nexomon.db'}"
    with RunningSimulator(SCENARIO) as first_sim, RunningSimulator(SCENARIO) as second_sim:
        config_a = write_config(tmp_path / "a", first_sim.base_url, database_url=database_url)
        config_b = write_config(tmp_path / "b", second_sim.base_url, database_url=database_url)
        first = DaemonProcess(config_a).start(timeout=60)
        try:
            assert first.proc is not None
            eventually(lambda: _assert(len(db_rows(tmp_path / "shared" / "nexomon.db")) > 0))

            refused = nexomon("run", "-c", str(config_b))
            assert refused.returncode == 2, refused.stdout + refused.stderr
            lines = refused.stderr.strip().splitlines()
            assert len(lines) == 1, refused.stderr
            assert "monitor.database_url" in lines[0], lines[0]
            assert f"in use by another nexomon run (pid {first.proc.pid})" in lines[0], lines[0]
            assert second_sim.simulator.stats.log() == [], "the refused daemon sent a probe"

            # Readers take no lock: report works beside the running daemon.
            report = nexomon("report", "-c", str(config_b))
            assert report.returncode == 0, report.stderr
            assert first.proc.poll() is None, "the holder must keep running"
        finally:
            assert first.stop(signal.SIGTERM, timeout=60) == 0, first.log()

        # Stopped: the next one starts and probes through its own gateway.
        second = DaemonProcess(config_b).start(timeout=60)
        try:
            eventually(lambda: _assert(len(second_sim.simulator.stats.log()) > 0))
        finally:
            second.stop(signal.SIGKILL)

        # Killed with SIGKILL: the kernel released the lock with the process.
        third = DaemonProcess(config_a).start(timeout=60)
        assert third.stop(signal.SIGTERM, timeout=60) == 0, third.log()
    assert (tmp_path / "shared" / "nexomon.db.lock").exists()


def _assert(condition: bool) -> None:
    assert condition
