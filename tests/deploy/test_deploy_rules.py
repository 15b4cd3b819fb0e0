"""Alert rules and Prometheus/Alertmanager config: promtool and amtool agree."""

from __future__ import annotations

import re

import pytest
import yaml

from .tools import DEPLOY, need_binary, run

RULES = DEPLOY / "rules" / "nexomon.rules.yml"
RULE_TESTS = DEPLOY / "rules" / "nexomon.rules.test.yml"
REQUIRED_ALERTS = {
    "NexomonGatewayDown",
    "NexomonModelUnavailable",
    "NexomonModelDelisted",
    "NexomonLatencyHigh",
    "NexomonRateLimitNearlyExhausted",
    "NexomonProbesStale",
    "NexomonBudgetExhausted",
    "NexomonStoreFailing",
    "NexomonAuthFailing",
    "NexomonModelRefused",
    "NexomonRateLimited",
    "NexomonModelDownEverywhere",
    "NexomonGatewayDownEverywhere",
    "NexomonModelDownRegional",
    "NexomonGatewayDownRegional",
    "NexomonTlsCertExpiringSoon",
    "NexomonTlsCertExpiryCritical",
    "NexomonModelSubstituted",
    "NexomonContractBroken",
}
# The recorded per-location verdicts the cross-location alerts read.
VERDICTS = {
    "location_target_model:nexomon_chat_down:15m",
    "location_target:nexomon_gateway_down:5m",
}
DOWN_OUTCOMES = ("server_error", "timeout", "connection_error", "invalid_response")


def _all_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _rules() -> list[dict]:
    """The alerting rules."""
    return [rule for rule in _all_rules() if "alert" in rule]


def _records() -> dict[str, str]:
    """The recording rules: {name: expr}."""
    return {rule["record"]: rule["expr"] for rule in _all_rules() if "record" in rule}


def test_promtool_check_rules_is_clean() -> None:
    promtool = need_binary("promtool")
    result = run([promtool, "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    promtool = need_binary("promtool")
    result = run([promtool, "test", "rules", str(RULE_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config_accepts_prometheus_yml() -> None:
    promtool = need_binary("promtool")
    result = run([promtool, "check", "config", str(DEPLOY / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_amtool_accepts_alertmanager_yml() -> None:
    amtool = need_binary("amtool")
    result = run([amtool, "check-config", str(DEPLOY / "alertmanager.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=NexomonGatewayDown", "severity=critical"], "oncall"),
        (["alertname=NexomonModelUnavailable", "severity=warning"], "default"),
        (["alertname=NexomonAuthFailing", "severity=critical"], "oncall"),
        (["alertname=NexomonRateLimited", "severity=warning"], "default"),
        (["alertname=NexomonModelDownEverywhere", "severity=critical"], "oncall"),
        (["alertname=NexomonModelDownRegional", "severity=warning"], "default"),
    ],
)
def test_alertmanager_routes_by_severity(labels: list[str], receiver: str) -> None:
    amtool = need_binary("amtool")
    config = f"--config.file={DEPLOY / 'alertmanager.yml'}"
    result = run([amtool, "config", "routes", "test", config, *labels])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_every_required_alert_exists() -> None:
    assert {rule["alert"] for rule in _rules()} >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_rule_has_for_severity_summary_and_runbook(rule: dict) -> None:
    assert "for" in rule
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["runbook"]


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_rule_summary_names_target_and_model(rule: dict) -> None:
    # Per-series alerts template the labels in; instance-wide ones say "all targets and models".
    summary = rule["annotations"]["summary"]
    assert "$labels.target" in summary or "target" in summary
    assert "$labels.model" in summary or "model" in summary


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_every_rule_is_tested_firing_and_not_firing(rule: dict) -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == rule["alert"]
    ]
    assert any(case.get("exp_alerts") for case in cases), "no case where it fires"
    assert any(not case.get("exp_alerts") for case in cases), "no case where it stays quiet"


def test_availability_tests_cover_auth_error_and_rate_limited_alone() -> None:
    text = RULE_TESTS.read_text(encoding="utf-8")
    for rule in ("NexomonGatewayDown", "NexomonModelUnavailable"):
        assert rule in text
    # Series that only ever record these outcomes, and no alert expected for them.
    assert text.count('outcome="auth_error"') >= 2
    assert text.count('outcome="rate_limited"') >= 2


def _group(name: str) -> list[dict]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    (group,) = [group for group in groups if group["name"] == name]
    return group["rules"]


def test_refusal_rules_ignore_down_outcomes_and_skipped() -> None:
    # Down outcomes belong to the availability rules and skipped probes sent
    # nothing: neither may make a refusal alert fire or stay quiet.
    rules = _group("nexomon-refused")
    assert {rule["alert"] for rule in rules} == {
        "NexomonAuthFailing",
        "NexomonModelRefused",
        "NexomonRateLimited",
    }
    for rule in rules:
        for outcome in (*DOWN_OUTCOMES, "skipped"):
            assert outcome not in rule["expr"], (rule["alert"], outcome)


@pytest.mark.parametrize("alert", ["NexomonModelUnavailable", "NexomonModelRefused"])
def test_rules_that_claim_a_duration_wait_for_that_much_data(alert: str) -> None:
    (rule,) = [rule for rule in _rules() if rule["alert"] == alert]
    assert 'nexomon_probes_total{probe="chat"} offset 15m' in rule["expr"]


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_every_alert_keeps_or_groups_by_location(rule: dict) -> None:
    # Alerts fire per location: every aggregation and match keeps `location`,
    # except the cross-location ones (they group the recorded verdicts by
    # target on purpose; a regional alert's location comes from the verdict)
    # and `up`, which is Prometheus' own series.
    if rule["alert"].endswith(("Everywhere", "Regional")) or rule["alert"] == "NexomonExporterDown":
        return
    for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"]):
        assert "location" in [label.strip() for label in clause.split(",")], clause


def test_verdicts_count_down_outcomes_and_ok_only_and_need_a_fresh_probe() -> None:
    records = _records()
    assert set(records) == VERDICTS
    for expr in records.values():
        outcomes = set(re.findall(r'outcome=~?"([^"]*)"', expr))
        assert outcomes == {"|".join(DOWN_OUTCOMES), "ok"}
        for refused in ("auth_error", "rate_limited", "client_error", "skipped"):
            assert refused not in expr
        # Fresh as NexomonProbesStale counts it: within 3 intervals.
        assert "time() - nexomon_probe_last_run_timestamp_seconds" in expr
        assert "3 * nexomon_probe_interval_seconds" in expr


def test_cross_location_alerts_read_the_verdicts() -> None:
    alerts = {rule["alert"]: rule for rule in _rules()}
    for kind, verdict in (
        ("Model", "location_target_model:nexomon_chat_down:15m"),
        ("Gateway", "location_target:nexomon_gateway_down:5m"),
    ):
        everywhere = alerts[f"Nexomon{kind}DownEverywhere"]
        regional = alerts[f"Nexomon{kind}DownRegional"]
        assert everywhere["labels"]["severity"] == "critical"
        assert regional["labels"]["severity"] == "warning"
        assert everywhere["expr"].startswith("min by (target") and verdict in everywhere["expr"]
        assert regional["expr"].startswith(f"{verdict} == 1")
        assert "$labels.location" in regional["annotations"]["summary"]
