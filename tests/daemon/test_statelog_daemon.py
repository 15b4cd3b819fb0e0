"""The probe log of a real daemon: changes once, refused is not down; maintenance errors.

The daemon runs as a subprocess against the simulator for a few seconds of
1-second chat probes; its log is read back.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from daemon_kit import eventually
from harness import DaemonProcess, write_config

from monitor.daemon.maintenance import maintenance_loop
from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator
from monitor.store.db import make_engine


def test_daemon_logs_each_failing_job_once_and_never_calls_refused_down(
    tmp_path: Path,
) -> None:
    scenario = Scenario.from_dict(
        {
            "name": "statelog",
            "models": {
                "m-broken": {"latency_ms": 0, "error_rate": 1.0},
                "m-quota": {"latency_ms": 0, "ratelimit": {"limit": 1, "per_s": 0.01}},
            },
        }
    )
    with RunningSimulator(scenario) as sim:
        config = write_config(
            tmp_path,
            sim.base_url,
            target={
                "models": ["m-broken", "m-retired", "m-quota"],
                "chat_interval": "1s",
                "timeout": "1s",
            },
        )
        daemon = DaemonProcess(config).start(timeout=60)
        try:

            def failed_often() -> None:
                rows = sqlite3.connect(tmp_path / "nexomon.db").execute(
                    "SELECT model, count(*) FROM probe_results"
                    " WHERE probe = 'chat' AND outcome != 'ok' GROUP BY model"
                )
                counts = dict(rows.fetchall())
                assert counts.get("m-broken", 0) >= 4 and counts.get("m-retired", 0) >= 4
                assert counts.get("m-quota", 0) >= 2  # a 429, then skipped (retry-after)

            eventually(failed_often, timeout=60)
        finally:
            daemon.stop()
    log = daemon.log()
    broken = [line for line in log.splitlines() if "sim/chat/m-broken" in line]
    retired = [line for line in log.splitlines() if "sim/chat/m-retired" in line]
    assert len(broken) == 1 and "is DOWN (server_error" in broken[0], log
    assert len(retired) == 1 and "is REFUSED (client_error" in retired[0], log
    quota = [line for line in log.splitlines() if "sim/chat/m-quota" in line]
    assert len(quota) == 1 and "is REFUSED (rate_limited" in quota[0], log
    assert " failed: " not in log and "is DOWN (rate_limited" not in log


def test_a_reload_does_not_log_a_failing_job_again(tmp_path: Path) -> None:
    # The state log outlives a SIGHUP: a job still failing is not a new change.
    scenario = Scenario.from_dict(
        {"name": "reload", "models": {"m-broken": {"latency_ms": 0, "error_rate": 1.0}}}
    )
    with RunningSimulator(scenario) as sim:
        config = write_config(
            tmp_path,
            sim.base_url,
            target={"models": ["m-broken"], "chat_interval": "1s", "timeout": "1s"},
        )
        daemon = DaemonProcess(config).start(timeout=60)
        try:
            eventually(lambda: _assert_in("sim/chat/m-broken is DOWN", daemon.log()), timeout=60)
            daemon.signal(signal.SIGHUP)
            eventually(lambda: _assert_in("config reloaded", daemon.log()), timeout=60)
            after = _broken_rows(tmp_path)
            eventually(lambda: _assert_more(_broken_rows(tmp_path), after + 3), timeout=60)
        finally:
            daemon.stop()
    lines = [line for line in daemon.log().splitlines() if "sim/chat/m-broken is" in line]
    assert len(lines) == 1, lines


def _assert_in(text: str, log: str) -> None:
    assert text in log


def _assert_more(value: int, at_least: int) -> None:
    assert value >= at_least


def _broken_rows(directory: Path) -> int:
    rows = sqlite3.connect(directory / "nexomon.db").execute(
        "SELECT count(*) FROM probe_results WHERE model = 'm-broken'"
    )
    return int(rows.fetchone()[0])


def test_maintenance_failure_logs_the_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A database without tables: the rollup's first query fails with OperationalError.
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")

    async def one_round() -> None:
        task = asyncio.create_task(maintenance_loop(engine, lambda: datetime.now(UTC), 30))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if any("maintenance" in r.getMessage() for r in caplog.records):
                break
        task.cancel()

    caplog.set_level(logging.WARNING)
    try:
        asyncio.run(one_round())
    finally:
        engine.dispose()
    (message,) = [r.getMessage() for r in caplog.records if "maintenance" in r.getMessage()]
    assert message.startswith("maintenance (rollup/retention) failed: OperationalError: ")
    assert "no such table" in message and "\n" not in message
