"""``nexomon demo``: the README's first command, as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from daemon_kit import eventually

from monitor.simulator.scenario import Scenario


def test_demo_scenario_has_every_kind_of_model() -> None:
    scenario = Scenario.packaged("demo")
    models = {m.id: m for m in scenario.models}
    healthy = [m for m in models.values() if not m.error_rate and not m.faults]
    assert healthy
    assert models["sim-flaky"].error_rate > 0 and models["sim-flaky"].faults
    assert models["sim-slow"].latency.median >= 2000
    assert models["sim-ratelimited"].ratelimit.limit <= 5
    assert models["sim-retiring"].disappear_after_s == 60
    assert models["sim-retiring"].reappear_after_s is None


def test_demo_runs_probes_prints_urls_and_cleans_up() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli.main", "demo", "--port", "0", "--duration", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        head: list[str] = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("database:") for line in head):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(head) + proc.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "".join(head)
            head.append(line)
        text = "".join(head)
        metrics_url = re.search(r"http://127\.0\.0\.1:\d+/metrics", text)
        status_url = re.search(r"http://127\.0\.0\.1:\d+/api/v1/status", text)
        database = re.search(r"database:\s+(\S+)", text)
        assert metrics_url and status_url and database, text
        workdir = Path(database.group(1)).parent
        assert workdir.is_dir()

        def probed() -> None:
            metrics = httpx.get(metrics_url.group(0), timeout=5).text
            success = 'nexomon_probe_success{location="demo",model="",probe="models",'
            assert success + 'target="simulator"} 1.0' in metrics
            assert 'nexomon_catalog_size{location="demo",target="simulator"} 7.0' in metrics
            status = httpx.get(status_url.group(0), timeout=5).json()
            chats = {r["model"] for r in status["last_results"] if r["probe"] == "chat"}
            assert {"sim-fast", "sim-balanced"} <= chats

        eventually(probed, timeout=20)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "sim-fast" in out  # the one-screen summary
    assert not workdir.exists()  # the temporary directory is gone
