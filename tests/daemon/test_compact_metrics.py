"""``[monitor] model_metrics = "compact"`` end to end, and /metrics gzip-compressed.

``nexomon run`` against the simulator with two models, one answering and one
failing: in compact mode the latency histogram is the target's (``model=""``),
no model has a histogram of its own, an outcome shows only once it happened,
and Prometheus' ``Accept-Encoding: gzip`` gets the same exposition compressed.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from harness import running_daemon, write_config
from prometheus_client.parser import text_string_to_metric_families

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

WAIT_S = 60.0
SCENARIO = {
    "name": "compact",
    "models": {"sim-ok": {}, "sim-down": {"error_rate": 1.0}},
}


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def test_compact_metrics_in_the_daemon(tmp_path: Path) -> None:
    with RunningSimulator(Scenario.from_dict(SCENARIO)) as sim:
        config = write_config(
            tmp_path,
            sim.base_url,
            monitor={"model_metrics": "compact"},
            target={"chat_interval": "1s", "models_interval": "1s"},
        )
        with running_daemon(config) as daemon:
            deadline = time.monotonic() + WAIT_S
            while True:
                rows = _samples(daemon.get("/metrics").text)
                outcomes = {
                    (labels["model"], labels["outcome"])
                    for name, labels, value in rows
                    if name == "nexomon_probes_total" and labels["probe"] == "chat" and value > 0
                }
                if {("sim-ok", "ok"), ("sim-down", "server_error")} <= outcomes:
                    break
                assert time.monotonic() < deadline, daemon.log()[-3000:]
                time.sleep(0.2)

            chat_counts = [
                labels["model"]
                for name, labels, _ in rows
                if name == "nexomon_probe_duration_seconds_count" and labels["probe"] == "chat"
            ]
            assert chat_counts == [""]  # one histogram for the target, none per model
            # Only the outcomes that happened: no zeros for the other seven.
            assert outcomes == {
                (labels["model"], labels["outcome"])
                for name, labels, _ in rows
                if name == "nexomon_probes_total" and labels["probe"] == "chat"
            }
            success = {
                labels["model"]: value
                for name, labels, value in rows
                if name == "nexomon_probe_success" and labels["probe"] == "chat"
            }
            assert success == {"sim-ok": 1.0, "sim-down": 0.0}

            url = daemon.url + "/metrics"
            raw = httpx.get(url, headers={"Accept-Encoding": "gzip"}, timeout=5)
            assert raw.headers["content-encoding"] == "gzip"
            assert raw.headers["vary"] == "Accept-Encoding"
            compressed = raw.num_bytes_downloaded
            text = raw.text  # httpx inflated it
            assert compressed < len(text.encode()) / 3
            assert {n for n, _, _ in _samples(text)} >= {"nexomon_probes_total"}
            plain = httpx.get(url, headers={"Accept-Encoding": "identity"}, timeout=5)
            assert "content-encoding" not in plain.headers
