"""``nexomon probe`` as a real subprocess against the simulator on a real socket.

The table and the JSON are checked against what the simulator itself saw
and counted: its request log (request ids, how many requests of each kind)
and its own tokenizer (usage counts). Exit codes: 0 all ok, 1 any failure,
2 usage or config error with one line on stderr and no traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import (
    JSON_KEYS,
    TABLE_COLUMNS,
    header_titles,
    lines,
    nexomon,
    parse_table,
    sim_request_ids,
    target,
    unique_secret,
    write_config,
)

from monitor.probes.contract import CHECKS
from monitor.results import PHASE_NAMES
from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator
from monitor.simulator.tokens import complete, prompt_tokens

KEY = unique_secret()
ENV = {"NEXOMON_TEST_KEY": KEY}
REPLY = "Hello from the CLI test, a reply long enough to be cut by max tokens."
PROMPT = "Say hi to the test suite."
MAX_TOKENS = 5
HEALTHY = ["m-alpha", "m-beta", "m-gamma"]
SCENARIO = {
    "name": "cli-probe",
    "seed": 11,
    "reply": REPLY,
    "api_keys": [KEY],
    "models": {
        "m-alpha": {},
        "m-beta": {"ratelimit": {"limit": 50, "per_s": 0.001}},
        "m-gamma": {"latency_ms": 5},
        "m-broken": {"error_rate": 1.0},
    },
}


@pytest.fixture(scope="module")
def module_sim() -> Iterator[RunningSimulator]:
    with RunningSimulator(Scenario.from_dict(SCENARIO)) as sim:
        yield sim


@pytest.fixture
def sim(module_sim: RunningSimulator) -> RunningSimulator:
    module_sim.simulator.reset()  # empty log, full buckets
    return module_sim


def sim_target(sim: RunningSimulator, name: str = "sim", **keys: object) -> dict[str, object]:
    defaults = {
        "api_key_env": "NEXOMON_TEST_KEY",
        "models": HEALTHY,
        "prompt": PROMPT,
        "max_tokens": MAX_TOKENS,
    }
    return target(name, sim.base_url, **{**defaults, **keys})


def expected_tokens() -> tuple[int, int]:
    """(prompt, completion) tokens by the simulator's own counting; the nonce is 5 tokens."""
    sent = [{"role": "user", "content": f"{PROMPT} [nx-0a1b2c]"}]
    return prompt_tokens(sent), complete(REPLY, MAX_TOKENS)[1]


def test_table_has_one_row_per_probe_matching_the_simulator(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, [sim_target(sim)])
    ran = nexomon("probe", "-c", str(config), env=ENV)

    assert ran.rc == 0, ran
    assert header_titles(ran.out) == list(TABLE_COLUMNS)
    rows = parse_table(ran.out)
    assert [(r["PROBE"], r["MODEL"]) for r in rows] == [("models", "-")] + [
        ("chat", m) for m in HEALTHY
    ]
    stats = sim.simulator.stats
    assert stats.models_requests == 1
    assert {m: stats.chat_requests(m) for m in HEALTHY} == dict.fromkeys(HEALTHY, 1)
    # Every request id shown is one the simulator issued, each once.
    assert sorted(r["REQUEST_ID"] for r in rows) == sorted(sim_request_ids(stats))
    tokens_in, tokens_out = expected_tokens()
    for row in rows:
        assert row["TARGET"] == "sim"
        assert row["OUTCOME"] == "ok"
        assert row["HTTP"] == "200"
        assert float(row["LATENCY_MS"]) > 0
        assert row["ERROR"] == ""
    models_row, *chat_rows = rows
    assert (models_row["TOKENS_IN"], models_row["TOKENS_OUT"]) == ("-", "-")
    assert models_row["RL_REMAINING"] == "-"
    for row in chat_rows:
        assert (row["TOKENS_IN"], row["TOKENS_OUT"]) == (str(tokens_in), str(tokens_out))
    remaining = {r["MODEL"]: r["RL_REMAINING"] for r in chat_rows}
    assert remaining == {"m-alpha": "9999/10000", "m-beta": "49/50", "m-gamma": "9999/10000"}


def test_json_has_the_documented_keys_and_the_simulator_values(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, [sim_target(sim)])
    ran = nexomon("probe", "-c", str(config), "--json", env=ENV)

    assert ran.rc == 0, ran
    results = ran.json()
    assert isinstance(results, list) and len(results) == 1 + len(HEALTHY)
    for result in results:
        assert set(result) >= JSON_KEYS, JSON_KEYS - set(result)
        assert set(result["phases"]) == set(PHASE_NAMES)
        assert result["outcome"] == "ok" and result["success"] is True
        assert result["http_status"] == 200
        assert result["duration_s"] > 0
        assert result["error"] is None and result["retry_after_s"] is None
    assert {r["request_id"] for r in results} == sim_request_ids(sim.simulator.stats)
    models_result, *chats = results
    assert (models_result["probe"], models_result["model"]) == ("models", "")
    assert models_result["prompt_tokens"] is None
    tokens_in, tokens_out = expected_tokens()
    for chat in chats:
        assert chat["probe"] == "chat" and chat["target"] == "sim"
        assert chat["response_model"] == chat["model"]
        assert (chat["prompt_tokens"], chat["completion_tokens"]) == (tokens_in, tokens_out)
        assert chat["total_tokens"] == tokens_in + tokens_out
        assert chat["finish_reason"] == "length"  # REPLY is longer than MAX_TOKENS
    limits = {c["model"]: (c["ratelimit_limit"], c["ratelimit_remaining"]) for c in chats}
    assert limits == {"m-alpha": (10000, 9999), "m-beta": (50, 49), "m-gamma": (10000, 9999)}


def test_any_failed_probe_exits_1_and_still_prints_every_row(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, [sim_target(sim, models=["m-alpha", "m-broken"])])
    ran = nexomon("probe", "-c", str(config), env=ENV)

    assert ran.rc == 1, ran
    outcomes = {r["MODEL"]: (r["OUTCOME"], r["HTTP"]) for r in parse_table(ran.out)}
    assert outcomes["-"] == ("ok", "200")
    assert outcomes["m-alpha"] == ("ok", "200")
    assert outcomes["m-broken"][0] == "server_error"
    assert outcomes["m-broken"][1] in {"500", "502", "503"}
    assert "Traceback" not in ran.err


@pytest.mark.parametrize(
    ("narrow", "expect_models", "expect_chats"),
    [
        (["--target", "b"], {"b": 1}, {("b", m) for m in HEALTHY}),
        (["--model", "m-gamma"], {}, {("a", "m-gamma"), ("b", "m-gamma")}),
        (["--target", "a", "--model", "m-beta"], {}, {("a", "m-beta")}),
    ],
    ids=["target", "model", "target-and-model"],
)
def test_target_and_model_narrow_the_round(
    sim: RunningSimulator,
    tmp_path: Path,
    narrow: list[str],
    expect_models: dict[str, int],
    expect_chats: set[tuple[str, str]],
) -> None:
    # Two targets on the same gateway, told apart in the simulator by their keys' results only;
    # the request counts are what proves nothing outside the narrowed round was sent.
    config = write_config(tmp_path, [sim_target(sim, "a"), sim_target(sim, "b")])
    ran = nexomon("probe", "-c", str(config), "--json", *narrow, env=ENV)

    assert ran.rc == 0, ran
    results = ran.json()
    listed = {r["target"]: 1 for r in results if r["probe"] == "models"}
    chats = {(r["target"], r["model"]) for r in results if r["probe"] == "chat"}
    assert listed == expect_models
    assert chats == expect_chats
    stats = sim.simulator.stats
    assert stats.models_requests == sum(expect_models.values())
    assert stats.chat_requests() == len(expect_chats)


def test_model_runs_just_that_chat_probe_even_with_a_wildcard_list(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, [sim_target(sim, models=["*"])])
    ran = nexomon("probe", "-c", str(config), "--model", "m-broken", env=ENV)

    assert ran.rc == 1, ran
    rows = parse_table(ran.out)
    assert [(r["PROBE"], r["MODEL"], r["OUTCOME"]) for r in rows] == [
        ("chat", "m-broken", "server_error")
    ]
    stats = sim.simulator.stats
    assert stats.models_requests == 0  # no listing nobody would see
    assert stats.chat_requests() == stats.chat_requests("m-broken") == 1


def _bad_configs(tmp: Path, sim: RunningSimulator) -> dict[str, tuple[list[str], str]]:
    """case -> (argv, a fragment the one error line must contain).

    Every config rule and its exact message is tested in-process in
    tests/config/test_config.py; these prove the CLI's side: exit 2, one line.
    """
    good = write_config(tmp, [sim_target(sim)], name="good.toml")
    unknown_key = write_config(tmp, [sim_target(sim, colour="blue")], name="unknown.toml")
    no_env = write_config(
        tmp, [sim_target(sim, api_key_env="NEXOMON_TEST_UNSET_VAR")], name="noenv.toml"
    )
    return {
        "unknown-option": (["probe", "-c", str(good), "--bogus"], "unrecognized arguments"),
        "no-command": ([], "required: COMMAND"),
        "missing-file": (["probe", "-c", str(tmp / "nope.toml")], "cannot read config"),
        "no-such-target": (["probe", "-c", str(good), "--target", "zz"], "--target zz"),
        "unknown-key": (["probe", "-c", str(unknown_key)], "targets[0].colour: unknown key"),
        "unset-key-env": (["probe", "-c", str(no_env)], "NEXOMON_TEST_UNSET_VAR is not set"),
        "default-path-missing": (["probe"], "nexomon.toml: cannot read config"),
    }


BAD_CASES = [
    "unknown-option",
    "no-command",
    "missing-file",
    "no-such-target",
    "unknown-key",
    "unset-key-env",
    "default-path-missing",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_usage_and_config_errors_exit_2_with_one_line(
    sim: RunningSimulator, tmp_path: Path, case: str
) -> None:
    argv, fragment = _bad_configs(tmp_path, sim)[case]
    # cwd=tmp_path: the default ./nexomon.toml does not exist there.
    ran = nexomon(*argv, env=ENV, cwd=tmp_path)

    assert ran.rc == 2, ran
    assert ran.out == ""
    assert len(lines(ran.err)) == 1, ran
    assert fragment in ran.err, ran
    assert "Traceback" not in ran.err
    assert sim.simulator.stats.log() == []  # a refused command sends nothing


def test_a_target_with_contract_interval_runs_its_checks_in_a_round(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, [sim_target(sim, contract_interval="1h")])
    ran = nexomon("probe", "-c", str(config), "--json", env=ENV)
    assert ran.rc == 0, ran
    checks = [r for r in json.loads(ran.out) if r["probe"] == "contract"]
    assert [(r["model"], r["outcome"]) for r in checks] == [(c, "ok") for c in CHECKS]
