"""``nexomon simulate``: the help lists the code's own tables; ``--api-key`` gates requests.

The expected keys and kinds are computed from monitor.simulator.scenario, so a
new key or fault kind that the help does not show fails here.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from testutil import free_port

from monitor.simulator.faults import FAULT_EFFECTS
from monitor.simulator.scenario import FAULT_KINDS, MODEL_KEYS, SCENARIO_KEYS, Scenario
from monitor.simulator.server import RunningSimulator, with_api_key

KEY = "sk-sim-cli-right-key"


def _help() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "monitor.cli.main", "simulate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_lists_every_scenario_key_model_key_and_fault_kind() -> None:
    text = _help()
    for word in (*SCENARIO_KEYS, *MODEL_KEYS, *FAULT_KINDS):
        assert re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text), f"{word} not in help"
    assert "--api-key KEY" in text


def test_every_fault_kind_has_an_effect_line() -> None:
    assert set(FAULT_EFFECTS) == set(FAULT_KINDS)


def test_scenario_keys_are_what_the_parser_accepts() -> None:
    """Every listed key parses; an unlisted one is refused (the tables are the parser's)."""
    from monitor.simulator.scenario import ScenarioError

    Scenario.from_dict({"models": {"m": {"latency_ms": 0}}, "name": "x", "seed": 1})
    with pytest.raises(ScenarioError):
        Scenario.from_dict({"models": {"m": {}}, "not_a_key": 1})
    with pytest.raises(ScenarioError):
        Scenario.from_dict({"models": {"m": {"not_a_key": 1}}})


def _status(base_url: str, key: str | None) -> httpx.Response:
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    return httpx.get(base_url + "/models", headers=headers, timeout=10)


def test_with_api_key_admits_only_that_key() -> None:
    scenario = with_api_key(Scenario.packaged("default"), KEY)
    with RunningSimulator(scenario) as sim:
        wrong = _status(sim.base_url, "sk-wrong")
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_api_key"
        assert wrong.json()["error"]["type"] == "authentication_error"
        assert "sk-wrong" not in wrong.text
        assert _status(sim.base_url, None).status_code == 401
        assert _status(sim.base_url, KEY).status_code == 200


def test_simulate_subprocess_with_api_key() -> None:
    """The real ``nexomon simulate --api-key KEY``: 401 to a wrong key, 200 to KEY."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", "monitor.cli.main", "simulate", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--api-key", KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                first = _status(base_url, "sk-wrong")
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "nexomon simulate did not start"
                time.sleep(0.1)
        assert first.status_code == 401
        assert first.headers["www-authenticate"] == "Bearer"
        assert first.json()["error"]["code"] == "invalid_api_key"
        assert _status(base_url, KEY).status_code == 200
        chat = httpx.post(
            base_url + "/chat/completions",
            headers={"authorization": "Bearer sk-wrong"},
            json={"model": "x", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        assert chat.status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


def test_blank_api_key_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "monitor.cli.main", "simulate", "--api-key", " "],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--api-key" in proc.stderr
