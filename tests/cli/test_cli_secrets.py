"""The API key never reaches ``nexomon probe``'s stdout, stderr or ``--json``.

Each test sets the key to a fresh unique string, runs the real command as a
subprocess, and searches everything it printed for the key (and for half
of it). Paths covered: a normal round (key from an environment variable and
from a file, with debug logging), a gateway that answers 401 (the simulator,
and a raw server that echoes the key back in its body and headers), a
request that fails with an exception (connection refused), a probe that
crashes with the key in its exception message, a crash outside the runner
with ``--debug`` (a traceback is printed), and a key httpx cannot send.

The two crash tests inject the fault with a few lines of Python run before
``monitor.cli.main.main`` in the child: nothing real raises an exception that
carries the key, which is the point, so one has to be made.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import (
    Ran,
    assert_absent,
    lines,
    nexomon,
    parse_table,
    target,
    unique_secret,
    write_config,
)
from gwfixtures import RawRequest, RawServer, closed_port, reply

from monitor.logs import REDACTED
from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

# The key the simulator accepts; unique per run, so no output holds it by chance.
SECRET = unique_secret()
MODELS = ["m-one", "m-two"]


@pytest.fixture(scope="module")
def module_sim() -> Iterator[RunningSimulator]:
    scenario = {"name": "secrets", "api_keys": [SECRET], "models": {m: {} for m in MODELS}}
    with RunningSimulator(Scenario.from_dict(scenario)) as sim:
        yield sim


@pytest.fixture
def sim(module_sim: RunningSimulator) -> RunningSimulator:
    module_sim.simulator.reset()
    return module_sim


def env_config(directory: Path, base_url: str, **keys: object) -> Path:
    return write_config(
        directory, [target("gw", base_url, api_key_env="NX_KEY", models=MODELS, **keys)]
    )


def check(ran: Ran, secret: str, rc: int) -> None:
    assert ran.rc == rc, ran
    assert_absent(secret, ran.out, ran.err)


def test_normal_round_with_debug_logging_shows_no_key(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    secret = SECRET
    config = env_config(tmp_path, sim.base_url)
    flags = ["--json", "--debug", "--log-format", "json"]  # --debug logs at debug level
    ran = nexomon("probe", "-c", str(config), *flags, env={"NX_KEY": secret})
    check(ran, secret, 0)
    assert [r["outcome"] for r in ran.json()] == ["ok", "ok", "ok"]


def test_key_from_a_file_shows_nowhere(sim: RunningSimulator, tmp_path: Path) -> None:
    secret = SECRET
    (tmp_path / "gw.key").write_text(secret + "\n")
    config = write_config(
        tmp_path, [target("gw", sim.base_url, api_key_file="gw.key", models=MODELS)]
    )
    ran = nexomon("probe", "-c", str(config), "--log-level", "debug")  # the table
    check(ran, secret, 0)
    assert [r["OUTCOME"] for r in parse_table(ran.out)] == ["ok", "ok", "ok"]


def test_simulator_401_shows_no_key(sim: RunningSimulator, tmp_path: Path) -> None:
    secret = f"sk-nxtest-rejected-{tmp_path.name}-9b1c3d5e7f"
    config = env_config(tmp_path, sim.base_url)
    ran = nexomon("probe", "-c", str(config), "--json", env={"NX_KEY": secret})
    check(ran, secret, 1)
    results = ran.json()
    assert [(r["outcome"], r["http_status"]) for r in results] == [("auth_error", 401)] * 3


def _echo_key(request: RawRequest, conn, stop) -> bool:  # type: ignore[no-untyped-def]
    """A careless gateway: a 401 that repeats the Authorization header everywhere."""
    auth = request.headers.get("authorization", "")
    key = auth.removeprefix("Bearer ")
    body = {"error": {"message": f"Invalid API key {key} ({auth})", "code": key, "type": key}}
    headers = {
        "x-request-id": key,
        "x-ratelimit-limit": key,
        "x-ratelimit-remaining": key,
        "retry-after": key,
        "www-authenticate": f'Bearer realm="{key}"',
    }
    return reply(401, body, headers=headers)(request, conn, stop)


def test_gateway_echoing_the_key_in_a_401_shows_no_key(tmp_path: Path) -> None:
    secret = f"sk-nxtest-echoed-{tmp_path.name}-2a4c6e8f0b"
    server = RawServer(responder=_echo_key)
    try:
        config = env_config(tmp_path, server.base_url)
        ran = nexomon("probe", "-c", str(config), "--json", "--debug", env={"NX_KEY": secret})
    finally:
        server.close()
    # The premise: the key really was sent, and echoed.
    assert any(r.headers.get("authorization") == f"Bearer {secret}" for r in server.requests)
    check(ran, secret, 1)
    results = ran.json()
    assert [(r["outcome"], r["http_status"]) for r in results] == [("auth_error", 401)] * 3
    assert all(r["error"].startswith("HTTP 401") for r in results)
    assert all(r["ratelimit_limit"] is None and r["retry_after_s"] is None for r in results)


def test_connection_refused_shows_no_key(tmp_path: Path) -> None:
    secret = f"sk-nxtest-refused-{tmp_path.name}-5e7a9c1b3d"
    config = env_config(tmp_path, f"http://127.0.0.1:{closed_port()}/v1")
    ran = nexomon("probe", "-c", str(config), "--json", "--debug", env={"NX_KEY": secret})
    check(ran, secret, 1)
    assert {(r["outcome"], r["error"]) for r in ran.json()} == {
        ("connection_error", "connection refused")
    }


CRASH_IN_PROBE = """
import os
import monitor.probes.chat as chat

def check_shape(body):
    raise RuntimeError("the shape check saw " + os.environ["NX_KEY"])

chat.check_shape = check_shape
"""


def test_probe_crash_carrying_the_key_is_logged_redacted(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    secret = SECRET
    config = env_config(tmp_path, sim.base_url)
    ran = nexomon(
        "probe",
        "-c",
        str(config),
        "--json",
        "--log-format",
        "json",
        env={"NX_KEY": secret},
        prelude=CRASH_IN_PROBE,
    )
    check(ran, secret, 1)
    # The listing still ran; the two chat probes crashed, were logged and counted.
    assert [r["probe"] for r in ran.json()] == ["models"]
    assert "2 probe(s) crashed" in ran.err
    assert "Traceback" in ran.err and REDACTED in ran.err
    logged = [json.loads(line) for line in lines(ran.err) if line.startswith("{")]
    assert any(REDACTED in entry.get("exc", "") for entry in logged)


CRASH_IN_COMMAND = """
import os
import monitor.daemon.probe_round as probe_round

def render_table(results):
    raise RuntimeError("the renderer saw " + os.environ["NX_KEY"])

probe_round.render_table = render_table
"""


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_unexpected_error_with_the_key_is_redacted_with_and_without_debug(
    sim: RunningSimulator, tmp_path: Path, debug: bool
) -> None:
    secret = SECRET
    config = env_config(tmp_path, sim.base_url)
    flags = ["--debug"] if debug else []
    ran = nexomon(
        "probe", "-c", str(config), *flags, env={"NX_KEY": secret}, prelude=CRASH_IN_COMMAND
    )
    check(ran, secret, 1)
    assert f"RuntimeError: the renderer saw {REDACTED}" in ran.err
    if debug:
        assert "Traceback (most recent call last)" in ran.err
    else:
        # Other lines are log records (the unpriced-model warning); one is the error.
        assert [line for line in lines(ran.err) if line.startswith("nexomon")] == [
            f"nexomon: unexpected error: RuntimeError: the renderer saw {REDACTED}"
            " (run with --debug for details)"
        ]


def test_key_httpx_cannot_send_is_a_config_error_that_shows_no_key(tmp_path: Path) -> None:
    secret = f"sk-nxtest-ünicode-{tmp_path.name}-6b8d0f2a4c"
    config = env_config(tmp_path, f"http://127.0.0.1:{closed_port()}/v1")
    # --debug: even then a config error is one line, not a traceback.
    ran = nexomon("probe", "-c", str(config), "--debug", env={"NX_KEY": secret})
    check(ran, secret, 2)
    assert len(lines(ran.err)) == 1, ran
    assert "api_key_env: environment variable NX_KEY" in ran.err
