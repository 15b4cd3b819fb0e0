"""A regional fault: ``only_user_agent`` limits a fault to matching clients (issue 17 point 3).

The simulator on a real socket; two clients that differ only in their
User-Agent (as two nexomon locations do) get different answers. The
daemon's User-Agent carries its location in the form the fault matches.
"""

from __future__ import annotations

import httpx
import pytest

from monitor import __version__
from monitor.daemon.wiring import user_agent
from monitor.simulator.help import simulate_epilog
from monitor.simulator.scenario import Scenario, ScenarioError
from monitor.simulator.server import RunningSimulator

EU_ONLY = {"only_user_agent": "location=eu"}
REGIONAL = {
    "name": "regional",
    "models": {
        "m-ok": {},
        "m-eu": {"faults": [{"kind": "server_error", "rate": 1.0, "status": 503, **EU_ONLY}]},
    },
    "models_faults": [{"kind": "html_200", "rate": 1.0, **EU_ONLY}],
}


def _chat(base_url: str, model: str, agent: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    headers = {"authorization": "Bearer sk-x", "user-agent": agent}
    return httpx.post(f"{base_url}/chat/completions", json=body, headers=headers).status_code


def test_a_fault_with_only_user_agent_hits_matching_clients_only() -> None:
    eu, us = user_agent("eu"), user_agent("us")
    with RunningSimulator(Scenario.from_dict(REGIONAL)) as sim:
        assert [_chat(sim.base_url, "m-eu", eu) for _ in range(5)] == [503] * 5
        assert [_chat(sim.base_url, "m-eu", us) for _ in range(5)] == [200] * 5
        assert _chat(sim.base_url, "m-ok", eu) == 200
        auth = {"authorization": "Bearer sk-x"}
        listing_eu = httpx.get(f"{sim.base_url}/models", headers={**auth, "user-agent": eu})
        listing_us = httpx.get(f"{sim.base_url}/models", headers={**auth, "user-agent": us})
        assert listing_eu.headers["content-type"].startswith("text/html")
        assert listing_us.json()["object"] == "list"


def test_the_daemon_user_agent_names_its_location_safely() -> None:
    assert user_agent("eu") == f"nexomon/{__version__} (location=eu)"
    # A location can never break the header or the parentheses.
    assert user_agent("eu west)\r\nx: y") == f"nexomon/{__version__} (location=eu_west___x:_y)"


@pytest.mark.parametrize("value", ["", "  ", 3])
def test_only_user_agent_must_be_a_non_empty_string(value: object) -> None:
    fault = {"kind": "hang", "rate": 0.1, "only_user_agent": value}
    with pytest.raises(ScenarioError, match=r"models\.m\.faults\[0\]\.only_user_agent: must be"):
        Scenario.from_dict({"models": {"m": {"faults": [fault]}}})


def test_simulate_help_documents_only_user_agent() -> None:
    assert "only_user_agent" in simulate_epilog()
