"""Scenario validation: every rule has a case and its one-line message."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import NexomonError
from monitor.simulator.scenario import Latency, Scenario, ScenarioError
from monitor.simulator.server import load_scenario

M = {"m": {}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "models: is required (at least one [models.ID] table)"),
        ({"models": {}}, "models: must be a table with at least one model"),
        ({"models": M, "colour": 1}, "colour: unknown key"),
        ({"models": M, "name": ""}, "name: must be a non-empty string"),
        ({"models": M, "reply": " "}, "reply: must be a non-empty string"),
        ({"models": M, "seed": -1}, "seed: must be at least 0 (got -1)"),
        ({"models": M, "seed": "x"}, "seed: must be an integer"),
        ({"models": M, "api_keys": "k"}, "api_keys: must be a list of non-empty strings"),
        ({"models": M, "revoked_keys": [""]}, "revoked_keys: must be a list of non-empty strings"),
        (
            {"models": M, "retry_after_format": "ms"},
            'retry_after_format: must be "seconds" or "http-date"',
        ),
        ({"models": M, "ratelimit": {"limit": 0}}, "ratelimit.limit: must be at least 1 (got 0)"),
        ({"models": {"m": 1}}, "models.m: must be a table"),
        ({"models": {"a b": {}}}, "models.a b: model id must be non-empty without whitespace"),
        ({"models": {"m": {"speed": 1}}}, "models.m.speed: unknown key"),
        (
            {"models": {"m": {"error_rate": 1.5}}},
            "models.m.error_rate: must be between 0 and 1 (got 1.5)",
        ),
        ({"models": {"m": {"error_rate": True}}}, "models.m.error_rate: must be a number"),
        ({"models": {"m": {"latency_ms": -5}}}, "models.m.latency_ms: must be at least 0 (got -5)"),
        (
            {"models": {"m": {"latency_ms": {"dist": "gamma"}}}},
            'models.m.latency_ms.dist: must be "fixed", "uniform" or "lognormal"',
        ),
        (
            {"models": {"m": {"latency_ms": {"dist": "uniform", "min": 5}}}},
            "models.m.latency_ms.max: is required for dist 'uniform'",
        ),
        (
            {"models": {"m": {"latency_ms": {"dist": "uniform", "min": 5, "max": 1}}}},
            "models.m.latency_ms.max: must be at least min",
        ),
        (
            {"models": {"m": {"latency_ms": {"dist": "fixed", "value": 1, "p99": 2}}}},
            "models.m.latency_ms.p99: does not apply to dist 'fixed'",
        ),
        (
            {"models": {"m": {"latency_ms": {"dist": "lognormal", "median": 9, "p99": 3}}}},
            "models.m.latency_ms.p99: needs median > 0 and p99 >= median",
        ),
        (
            {"models": {"m": {"faults": {}}}},
            "models.m.faults: must be a list of {kind, rate} tables",
        ),
        (
            {"models": {"m": {"faults": [{"kind": "explode", "rate": 0.1}]}}},
            "models.m.faults[0].kind: must be one of hang, reset, server_error, malformed_json, "
            "html_200, missing_usage, error_in_200, empty_choices, slow_drip, oversized, "
            "stream_stall, stream_no_done",
        ),
        ({"models": {"m": {"faults": [{"kind": "hang"}]}}}, "models.m.faults[0].rate: is required"),
        (
            {"models": {"m": {"faults": [{"kind": "hang", "rate": 0.1, "status": 500}]}}},
            "models.m.faults[0].status: unknown key",
        ),
        (
            {"models": {"m": {"faults": [{"kind": "server_error", "rate": 0.1, "status": 404}]}}},
            "models.m.faults[0].status: must be between 500 and 599 (got 404)",
        ),
        (
            {"models": {"m": {"faults": [{"kind": "oversized", "rate": 0.1, "size_bytes": 10}]}}},
            "models.m.faults[0].size_bytes: must be at least 1024 (got 10)",
        ),
        (
            {"models": {"m": {"faults": [{"kind": "slow_drip", "rate": 1, "interval_s": 61}]}}},
            "models.m.faults[0].interval_s: must be between 0 and 60 (got 61)",
        ),
        (
            {"models": {"m": {"error_rate": 0.6, "faults": [{"kind": "hang", "rate": 0.6}]}}},
            "models.m: error_rate plus fault rates must not exceed 1 (got 1.2)",
        ),
        (
            {"models": {"m": {"ratelimit": {"limit": 5, "per_s": 0}}}},
            "models.m.ratelimit.per_s: must be greater than 0",
        ),
        (
            {"models": {"m": {"reappear_after_s": 5}}},
            "models.m.reappear_after_s: needs disappear_after_s",
        ),
        (
            {"models": {"m": {"disappear_after_s": 5, "reappear_after_s": 5}}},
            "models.m.reappear_after_s: must be after disappear_after_s",
        ),
        (
            {"models": M, "models_faults": [{"kind": "missing_usage", "rate": 0.5}]},
            "models_faults[0].kind: missing_usage applies to chat only",
        ),
    ],
)
def test_invalid_scenario_names_the_key_and_the_rule(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict(data, source="s.toml")
    assert str(info.value) == f"s.toml: {message}"
    assert info.value.exit_code == 2
    assert isinstance(info.value, NexomonError)


def test_scenario_file_is_read_with_its_stem_as_name(tmp_path: Path) -> None:
    path = tmp_path / "outage.toml"
    path.write_text(
        'seed = 3\n[models.a]\nlatency_ms = 20\nfaults = [{kind = "reset", rate = 0.5}]\n'
    )
    scenario = load_scenario(str(path))
    assert scenario.name == "outage"
    assert scenario.model("a").latency == Latency(value=20.0)  # type: ignore[union-attr]
    assert scenario.model("a").faults[0].kind == "reset"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content", "start"), [(None, "cannot read scenario"), ("models = [", "invalid TOML")]
)
def test_unreadable_scenario_file_is_one_line(
    tmp_path: Path, content: str | None, start: str
) -> None:
    path = tmp_path / "bad.toml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ScenarioError) as info:
        Scenario.load(path)
    assert str(info.value).startswith(f"{path}: {start}")
    assert "\n" not in str(info.value)


def test_packaged_default_scenario_has_the_documented_models() -> None:
    scenario = load_scenario(None)
    assert scenario.name == "default"
    assert [m.id for m in scenario.models] == [
        "sim-fast",
        "sim-balanced",
        "sim-large",
        "sim-flaky",
        "sim-ratelimited",
    ]
    assert all(m.disappear_after_s is None for m in scenario.models)
    limited = scenario.model("sim-ratelimited")
    assert limited is not None and limited.ratelimit.limit == 3
    flaky = scenario.model("sim-flaky")
    assert flaky is not None and flaky.error_rate == 0.15
    assert {f.kind for f in flaky.faults} == {"hang", "malformed_json"}


def test_packaged_demo_scenario_adds_a_slow_and_a_retiring_model() -> None:
    demo = Scenario.packaged("demo")
    default = Scenario.packaged("default")
    assert [m.id for m in demo.models] == [m.id for m in default.models] + [
        "sim-slow",
        "sim-retiring",
    ]
    retiring = demo.model("sim-retiring")
    assert retiring is not None and retiring.disappear_after_s == 60


@pytest.mark.parametrize(
    ("latency", "low", "high"),
    [
        (Latency(value=80), 0.08, 0.08),
        (Latency(dist="uniform", min=10, max=20), 0.01, 0.02),
        (Latency(dist="lognormal", median=100, p99=100), 0.1, 0.1),
    ],
)
def test_latency_samples_stay_in_range(latency: Latency, low: float, high: float) -> None:
    rng = random.Random(1)
    samples = [latency.sample_s(rng) for _ in range(200)]
    assert all(low - 1e-9 <= s <= high + 1e-9 for s in samples)


def test_lognormal_latency_matches_median_and_p99() -> None:
    rng = random.Random(5)
    latency = Latency(dist="lognormal", median=250, p99=1200)
    samples = sorted(latency.sample_s(rng) for _ in range(20_000))
    assert 0.23 < samples[10_000] < 0.27
    assert 1.0 < samples[19_800] < 1.45
