"""The status page served by ``nexomon run`` itself, under ``[monitor] status_page``.

A real daemon probes the simulator; ``/`` is then the status page listing
the models it probed, the badges answer SVG, and the access modes and
their defaults hold: with a metrics token the page asks for it unless it is
made public, badges follow the page unless set apart, and "token" with no
metrics token is a config error naming the key.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness import DaemonProcess, running_daemon, write_config

from monitor.simulator.server import RunningSimulator

TOKEN = "nexomon-page-test-token"


def wait_for_probe(daemon: DaemonProcess, model: str, headers: dict[str, str]) -> str:
    """The page's HTML once it lists ``model`` (probed at least once)."""
    deadline = time.monotonic() + 30
    while True:
        page = daemon.get("/", headers=headers)
        if page.status_code == 200 and model in page.text:
            return page.text
        assert time.monotonic() < deadline, page.text[:500]
        time.sleep(0.5)


def test_run_serves_the_status_page_and_badges(simulator: RunningSimulator, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, simulator.base_url, target={"models": ["sim-fast"], "degraded_latency": "5s"}
    )
    with running_daemon(config) as daemon:
        html = wait_for_probe(daemon, "sim-fast", {})
        assert "<html" in html.lower() and "/metrics" in html  # the footer keeps the links
        badge = daemon.get("/badge/sim/sim-fast/status.svg")
        assert badge.status_code == 200
        assert badge.headers["content-type"].startswith("image/svg+xml")
        assert "<svg" in badge.text and badge.headers.get("etag")
        assert daemon.get("/incidents").status_code == 200


def test_with_a_metrics_token_the_page_asks_for_it_and_badges_can_be_public(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        simulator.base_url,
        target={"models": ["sim-fast"]},
        monitor={"metrics_token_env": "NEXOMON_PAGE_TOKEN", "badges": "public"},
    )
    env = {"NEXOMON_PAGE_TOKEN": TOKEN}
    with running_daemon(config, env) as daemon:
        wait_for_probe(daemon, "sim-fast", {"Authorization": f"Bearer {TOKEN}"})
        assert daemon.get("/").status_code == 401
        assert daemon.get("/badge/sim/sim-fast/status.svg").status_code == 200
        assert daemon.get("/healthz").status_code == 200


def test_token_mode_without_a_metrics_token_is_a_config_error(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, simulator.base_url, monitor={"status_page": "token"})
    daemon = DaemonProcess(config)
    daemon.start(wait_ready=False)
    assert daemon.proc is not None
    assert daemon.proc.wait(timeout=30) == 2
    assert 'monitor.status_page: "token" needs monitor.metrics_token_env' in daemon.log()
