"""``nexomon config check --online`` as a real subprocess against the simulator.

One ``GET /models`` per target on real sockets: a good key passes (exit 0),
a wrong key is "refused" (exit 1), a base URL without ``/v1`` gets the
suggestion, and an explicit model the catalog lacks is named (exit 1). No
chat completion is ever sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import assert_absent, nexomon, target, unique_secret, write_config
from testutil import free_port

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

KEY = unique_secret()


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    scenario = Scenario.from_dict(
        {"name": "online", "api_keys": [KEY], "models": {"sim-a": {}, "sim-b": {}}}
    )
    with RunningSimulator(scenario) as running:
        yield running


def _check(tmp_path: Path, key: str, **keys: Any) -> tuple[Any, str]:
    base_url = keys.pop("base_url")
    cfg = write_config(tmp_path, [target("gw", base_url, api_key_env="NX_ONLINE_KEY", **keys)])
    ran = nexomon("config", "check", "--online", "-c", str(cfg), env={"NX_ONLINE_KEY": key})
    online = [line for line in ran.out.splitlines() if line.startswith("online: ")]
    assert len(online) == 1, ran
    return ran, online[0]


def _chat_requests(sim: RunningSimulator) -> int:
    return sum(1 for e in sim.simulator.stats.log() if e["path"].endswith("/chat/completions"))


def test_good_key_passes(sim: RunningSimulator, tmp_path: Path) -> None:
    ran, line = _check(tmp_path, KEY, base_url=sim.base_url, models=["sim-a", "*"])
    assert ran.rc == 0, ran
    assert line == "online: gw: ok (key accepted, 2 models listed)", ran
    assert ran.out.index("ok (1 target(s): gw)") < ran.out.index(line)  # after the usual check
    assert _chat_requests(sim) == 0
    assert_absent(KEY, ran.out, ran.err)


def test_wrong_key_is_refused(sim: RunningSimulator, tmp_path: Path) -> None:
    wrong = unique_secret()
    ran, line = _check(tmp_path, wrong, base_url=sim.base_url)
    assert ran.rc == 1, ran
    assert line == "online: gw: FAILED: the key is refused (HTTP 401)", ran
    assert_absent(wrong, ran.out, ran.err)


def test_base_url_without_v1_gets_the_suggestion(sim: RunningSimulator, tmp_path: Path) -> None:
    root = sim.base_url.removesuffix("/v1")
    ran, line = _check(tmp_path, KEY, base_url=root)
    assert ran.rc == 1, ran
    assert f"did you mean {root}/v1?" in line, ran
    assert "HTTP 404" in line, ran


def test_missing_model_is_listed(sim: RunningSimulator, tmp_path: Path) -> None:
    ran, line = _check(tmp_path, KEY, base_url=sim.base_url, models=["sim-a", "gone-1", "gone-2"])
    assert ran.rc == 1, ran
    assert line == "online: gw: FAILED: 2 configured model(s) not in the catalog: gone-1, gone-2"
    assert _chat_requests(sim) == 0


def test_unreachable_target_fails(tmp_path: Path) -> None:
    ran, line = _check(tmp_path, KEY, base_url=f"http://127.0.0.1:{free_port()}/v1")
    assert ran.rc == 1, ran
    assert line.startswith("online: gw: FAILED: GET /models failed: connection_error"), ran


def test_config_error_is_still_exit_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [target("gw", "http://127.0.0.1:1/v1", api_key_env="NX_UNSET")])
    ran = nexomon("config", "check", "--online", "-c", str(cfg))
    assert ran.rc == 2, ran
    assert "online: " not in ran.out
