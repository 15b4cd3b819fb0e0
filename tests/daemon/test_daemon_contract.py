"""The contract probe in the daemon: one job, row and gauge per check (issue 18, point 3).

``nexomon run`` with ``contract_interval`` against a simulator that breaks one
documented rule (``invalid_top_p`` accepted): every check gets its rows, the
broken one fails alone, ``nexomon_contract_check`` says so per check, and a
check takes no model label slot and adds no per-job series.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from harness import running_daemon, write_config
from prometheus_client.parser import text_string_to_metric_families

from monitor.probes.contract import CHECKS
from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

WAIT_S = 60.0
SCENARIO = {"name": "contract", "contract_breaks": ["invalid_top_p"], "models": {"sim-a": {}}}


def _checks(text: str) -> dict[str, float]:
    return {
        s.labels["check"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "nexomon_contract_check"
        for s in family.samples
    }


def test_each_check_is_a_job_with_rows_and_a_gauge(tmp_path: Path) -> None:
    with RunningSimulator(Scenario.from_dict(SCENARIO)) as sim:
        config = write_config(
            tmp_path,
            sim.base_url,
            target={
                "models": ["sim-a"],
                "models_interval": "1h",
                "chat_interval": "1h",
                "contract_interval": "2s",
            },
        )
        with running_daemon(config) as daemon:
            deadline = time.monotonic() + WAIT_S
            while True:
                text = daemon.get("/metrics").text
                if len(_checks(text)) == len(CHECKS) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            checks = _checks(text)
            assert checks == {c: 0.0 if c == "invalid_top_p" else 1.0 for c in CHECKS}, (
                daemon.log()[-3000:]
            )
            # No job series and no label slot for a check: it is not a model.
            assert 'probe="contract"' not in text
            time.sleep(2.5)  # one more round of the 2 s jobs, then the rows
    conn = sqlite3.connect(tmp_path / "nexomon.db")
    try:
        rows = conn.execute(
            "SELECT model, outcome, error FROM probe_results WHERE probe = 'contract'"
        ).fetchall()
    finally:
        conn.close()
    assert {model for model, _, _ in rows} == set(CHECKS)
    broken = {(outcome, error) for model, outcome, error in rows if model == "invalid_top_p"}
    assert broken == {
        (
            "invalid_response",
            "HTTP 200: top_p 2 was accepted (a completion, maybe billed), not refused with a 4xx",
        )
    }
    assert {outcome for model, outcome, _ in rows if model != "invalid_top_p"} == {"ok"}
