"""With ``models = ["*"]`` the daemon's chat jobs follow the gateway's catalog.

The simulator runs on a socket with a ManualClock, so the test decides when
a model disappears or appears; ``max_models = 2`` caps the jobs, taken in
the gateway's listing order, and the exporter gives its label slots to the
same models.
"""

from __future__ import annotations

import signal
from pathlib import Path

from daemon_kit import CHAT_PATH, eventually, sample, scrape, series_with, sim_requests
from harness import DaemonProcess, write_config

from monitor.simulator.clock import ManualClock
from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

SCENARIO = {
    "name": "catalog",
    "models": {
        "m-a": {"latency_ms": 5},
        "m-retiring": {"latency_ms": 5, "disappear_after_s": 10},
        # Hidden from the start until uptime 20 s: a model that gets listed later.
        "m-late": {"latency_ms": 5, "disappear_after_s": 0, "reappear_after_s": 20},
        "m-extra": {"latency_ms": 5},
    },
}


def _jobs(url: str) -> set[str]:
    """The chat jobs, as the exporter's interval gauges show them."""
    samples = scrape(url)
    return {
        dict(labels)["model"]
        for name, labels in samples
        if name == "nexomon_probe_interval_seconds" and dict(labels)["probe"] == "chat"
    }


def _chats(sim: RunningSimulator, model: str) -> int:
    return len(sim_requests(sim, CHAT_PATH, model))


def test_chat_jobs_and_series_follow_the_catalog_capped_in_listing_order(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    with RunningSimulator(Scenario.from_dict(SCENARIO), clock=clock) as sim:
        config = write_config(
            tmp_path,
            sim.base_url,
            target={"models": ["*"], "max_models": 2, "models_interval": "1s"},
        )
        daemon = DaemonProcess(config).start(timeout=60)
        try:
            # Listed: a, retiring, extra -> the first two get jobs and label slots.
            def first() -> None:
                assert _jobs(daemon.url) == {"m-a", "m-retiring"}
                assert _chats(sim, "m-a") and _chats(sim, "m-retiring")
                samples = scrape(daemon.url)
                assert sample(samples, "nexomon_catalog_size", target="sim") == 3
                assert sample(samples, "nexomon_models_over_limit", target="sim") == 1
                assert series_with(samples, model="m-extra") == []

            eventually(first, timeout=60)
            assert _chats(sim, "m-extra") == 0

            clock.advance(10)  # m-retiring leaves /models: m-extra moves up

            def second() -> None:
                assert _jobs(daemon.url) == {"m-a", "m-extra"}
                assert _chats(sim, "m-extra")
                samples = scrape(daemon.url)
                assert series_with(samples, model="m-retiring") == []  # exporter.forget
                assert sample(samples, "nexomon_model_listed", target="sim", model="m-extra") == 1
                assert sample(samples, "nexomon_catalog_size", target="sim") == 2

            eventually(second, timeout=60)
            retiring_chats = _chats(sim, "m-retiring")

            clock.advance(10)  # m-late is listed, ahead of m-extra

            def third() -> None:
                assert _jobs(daemon.url) == {"m-a", "m-late"}
                assert _chats(sim, "m-late")
                samples = scrape(daemon.url)
                assert series_with(samples, model="m-extra") == []
                assert sample(samples, "nexomon_model_listed", target="sim", model="m-late") == 1
                assert sample(samples, "nexomon_catalog_size", target="sim") == 3
                assert (
                    sample(samples, "nexomon_catalog_changes_total", target="sim", change="added")
                    == 1
                )

            eventually(third, timeout=60)
            assert _chats(sim, "m-retiring") == retiring_chats  # its job is gone for good
            assert daemon.stop(signal.SIGTERM, timeout=60) == 0
        finally:
            daemon.stop(signal.SIGKILL)
