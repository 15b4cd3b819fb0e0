"""Errors at start-up keep the promise (issue 16, point 3), as real ``nexomon`` processes.

A listen address in use and a database that cannot be created are one line
naming the key, exit 2, before any probe reaches the gateway; a TOML file
nested too deeply is a config error, not a ``RecursionError``; a load rule
(timeout longer than an interval) answers the same way from the CLI; an
``api_key_file`` readable by group or others gets one warning line, as ssh
gives.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import Ran, assert_absent, nexomon, target, unique_secret, write_config

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

KEY = unique_secret()
ENV = {"NEXOMON_TEST_KEY": KEY}
SCENARIO = {"name": "cli-startup", "api_keys": [KEY], "models": {"m-one": {}}}


@pytest.fixture(scope="module")
def module_sim() -> Iterator[RunningSimulator]:
    with RunningSimulator(Scenario.from_dict(SCENARIO)) as sim:
        yield sim


@pytest.fixture
def sim(module_sim: RunningSimulator) -> RunningSimulator:
    module_sim.simulator.reset()
    return module_sim


def sim_target(sim: RunningSimulator, **keys: object) -> dict[str, object]:
    return target("sim", sim.base_url, **{"api_key_env": "NEXOMON_TEST_KEY", **keys})


def one_error_line(ran: Ran) -> str:
    """The only line on stderr, after checking the exit code is 2 (config error)."""
    assert ran.rc == 2, ran
    lines = [line for line in ran.err.splitlines() if line.strip()]
    assert len(lines) == 1, ran
    assert "Traceback" not in ran.err and "unexpected error" not in ran.err, ran
    return lines[0]


def test_a_listen_address_in_use_is_one_line_naming_monitor_listen_before_any_probe(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = write_config(tmp_path, [sim_target(sim)], monitor={"listen": f"127.0.0.1:{port}"})
        ran = nexomon("run", "-c", str(config), env=ENV)

    assert one_error_line(ran) == (
        f"nexomon: {config}: monitor.listen: 127.0.0.1:{port} is in use (address already in use)"
    )
    assert sim.simulator.stats.log() == []  # no probe was sent
    assert not (tmp_path / "nexomon.db").exists()  # the socket is bound before the store opens
    assert_absent(KEY, ran.out, ran.err)


@pytest.mark.parametrize("command", [("run",), ("probe", "--record")])
def test_a_database_path_that_cannot_be_created_is_one_line_naming_the_key(
    sim: RunningSimulator, tmp_path: Path, command: tuple[str, ...]
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be\n", encoding="utf-8")
    db_file = blocker / "data" / "nexomon.db"
    config = write_config(
        tmp_path,
        [sim_target(sim)],
        monitor={"database_url": f"sqlite:///{db_file}", "listen": "127.0.0.1:0"},
    )
    ran = nexomon(*command, "-c", str(config), env=ENV)

    assert one_error_line(ran) == (
        f"nexomon: {config}: monitor.database_url: cannot create {db_file} (not a directory)"
    )
    assert sim.simulator.stats.log() == []


def test_a_toml_file_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "nexomon.toml"
    config.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    for command in (("config", "check"), ("run",), ("report",)):
        ran = nexomon(*command, "-c", str(config))
        assert one_error_line(ran) == (
            f"nexomon: {config}: invalid TOML: tables or arrays are nested too deeply"
        )


def test_a_timeout_longer_than_an_interval_is_refused_by_every_command(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, [sim_target(sim, timeout="10s", models_interval="5s", chat_interval="1m")]
    )
    for command in (("config", "check"), ("run",), ("probe",)):
        ran = nexomon(*command, "-c", str(config), env=ENV)
        assert one_error_line(ran) == (
            f"nexomon: {config}: targets[0].timeout: must be at most models_interval (5s): "
            "a probe must end before its next run"
        )
    assert sim.simulator.stats.log() == []


@pytest.mark.parametrize(("mode", "warns"), [(0o600, False), (0o400, False), (0o644, True)])
def test_a_shared_api_key_file_gets_one_warning_line(
    sim: RunningSimulator, tmp_path: Path, mode: int, warns: bool
) -> None:
    key_file = tmp_path / "gw.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(mode)
    config = write_config(tmp_path, [target("sim", sim.base_url, api_key_file="gw.key")])
    ran = nexomon("config", "check", "-c", str(config))

    assert ran.rc == 0, ran
    warnings = [line for line in ran.err.splitlines() if "readable by group or others" in line]
    assert len(warnings) == (1 if warns else 0), ran
    if warns:
        assert f"targets[0].api_key_file: {key_file} is readable by group or others" in warnings[0]
        assert "(mode 0644); run chmod 600 on it" in warnings[0]
    assert_absent(KEY, ran.out, ran.err)
