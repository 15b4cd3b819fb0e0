"""``nexomon run`` as a subprocess: stopping with a probe in flight, and SIGHUP reloads.

The simulator runs on a real socket; the daemon's rows are read from its
SQLite file and compared with the simulator's request log by request id.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from daemon_kit import (
    CHAT_PATH,
    ArrivalRecorder,
    db_rows,
    eventually,
    sample,
    scrape,
    sim_requests,
)
from harness import DaemonProcess, listen_url, write_config

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

SLOW_S = 2.5


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_lets_the_probe_in_flight_finish_and_flushes_every_row(
    tmp_path: Path, sig: signal.Signals
) -> None:
    scenario = Scenario.from_dict(
        {"models": {"m-slow": {"latency_ms": SLOW_S * 1000}}, "name": "slow"}
    )
    sim = RunningSimulator(scenario)
    recorder = ArrivalRecorder(sim.simulator)
    sim.simulator = recorder  # served in place of the bare app
    with sim:
        config = write_config(
            tmp_path,
            sim.base_url,
            target={
                "models": ["m-slow"],
                "timeout": "4s",  # at most the intervals (a config rule)
                "models_interval": "4s",
                "chat_interval": "4s",
            },
        )
        daemon = DaemonProcess(config).start(timeout=60)
        try:
            assert recorder.chat_arrived.wait(60), daemon.log()
            daemon.signal(sig)  # the slow answer is 2.5 s away
            assert daemon.proc is not None
            assert daemon.proc.wait(60) == 0, daemon.log()
        finally:
            daemon.stop(signal.SIGKILL)
        sent = sim_requests(sim)
        rows = db_rows(tmp_path / "nexomon.db")

    assert recorder.chat_arrivals == len(sim_requests(sim, CHAT_PATH)) >= 1
    slow = [r for r in rows if r.probe == "chat" and r.outcome != "skipped"]
    assert [r.outcome for r in slow] == ["ok"] * len(slow)  # in flight, still finished
    assert Counter(r.request_id for r in rows if r.outcome != "skipped") == Counter(
        e["request_id"] for e in sent
    )
    assert len(rows) == len(sent) + sum(r.outcome == "skipped" for r in rows)
    assert "nexomon stopped" in daemon.log()


# -- SIGHUP ------------------------------------------------------------------------


def _reload_ok(daemon: DaemonProcess) -> float | None:
    return sample(scrape(daemon.url), "nexomon_config_last_reload_successful")


def _interval(daemon: DaemonProcess, model: str) -> float | None:
    labels = {"target": "sim", "probe": "chat", "model": model}
    return sample(scrape(daemon.url), "nexomon_probe_interval_seconds", **labels)


def _write(directory: Path, base_url: str, port: int, target: dict[str, Any]) -> Path:
    return write_config(directory, base_url, port=port, target=target)


def test_sighup_applies_a_good_config_and_keeps_the_old_one_on_a_bad_file(
    tmp_path: Path,
) -> None:
    scenario = Scenario.from_dict(
        {"name": "reload", "models": {"m-a": {"latency_ms": 5}, "m-b": {"latency_ms": 5}}}
    )
    with RunningSimulator(scenario) as sim:
        first = {"models": ["m-a"], "chat_interval": "1s"}
        config = write_config(tmp_path, sim.base_url, target=first)
        port = int(listen_url(config).rsplit(":", 1)[1])
        daemon = DaemonProcess(config).start("--log-level", "warning", timeout=60)
        try:
            eventually(lambda: _chat_seen(sim, "m-a"), timeout=60)
            assert _reload_ok(daemon) == 1

            # A good file: one more model, a longer chat interval.
            _write(tmp_path, sim.base_url, port, {"models": ["m-a", "m-b"], "chat_interval": "2s"})
            daemon.signal(signal.SIGHUP)
            eventually(lambda: _equal(_interval(daemon, "m-a"), 2.0), timeout=60)
            eventually(lambda: _chat_seen(sim, "m-b"), timeout=60)
            assert _reload_ok(daemon) == 1

            # A bad file: the old config keeps running, one line says why.
            config.write_text(
                config.read_text().replace('chat_interval = "2s"', "chat_interval = 0")
            )
            daemon.signal(signal.SIGHUP)
            eventually(lambda: _equal(_reload_ok(daemon), 0.0), timeout=60)
            seen_b = len(sim_requests(sim, CHAT_PATH, "m-b"))
            eventually(lambda: _more(len(sim_requests(sim, CHAT_PATH, "m-b")), seen_b), 60)
            assert _interval(daemon, "m-a") == 2.0
            reload_lines = [line for line in daemon.log().splitlines() if "reload" in line]
            assert len(reload_lines) == 1, reload_lines
            assert "chat_interval" in reload_lines[0] and "ERROR" in reload_lines[0]

            # A later good file sets the gauge back to 1.
            _write(tmp_path, sim.base_url, port, {"models": ["m-a"], "chat_interval": "1s"})
            daemon.signal(signal.SIGHUP)
            eventually(lambda: _equal(_reload_ok(daemon), 1.0), timeout=60)
            eventually(lambda: _equal(_interval(daemon, "m-a"), 1.0), timeout=60)
            # m-b left the config: its series left the metrics.
            assert _interval(daemon, "m-b") is None
            assert daemon.stop(signal.SIGTERM, timeout=60) == 0
        finally:
            daemon.stop(signal.SIGKILL)
    # --log-level warning: no info line at all (the start line is info).
    assert " INFO " not in daemon.log()


def _chat_seen(sim: RunningSimulator, model: str) -> None:
    assert sim_requests(sim, CHAT_PATH, model)


def _equal(value: float | None, expected: float) -> None:
    assert value == expected


def _more(now: int, before: int) -> None:
    assert now > before
