"""NexomonBudgetExhausted fires on what the exporter really exposes, and only then.

The rule (deploy/rules, owned elsewhere) is read as it is; the input series
for ``promtool test rules`` are not hand-written but parsed from the
exporter's own /metrics text after ``set_budget`` for three instances:
capped and spent, capped with room left, and no cap (+Inf).
"""

from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from testutil import need_binary

from monitor.exporter.exporter import Exporter

RULES = Path(__file__).resolve().parents[2] / "deploy" / "rules" / "nexomon.rules.yml"
BUDGET_METRICS = {"nexomon_budget_spent_usd", "nexomon_budget_limit_usd"}


def promtool() -> str:
    return need_binary("promtool")


def budget_rule() -> dict:  # type: ignore[type-arg]
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [r for g in groups for r in g["rules"] if r.get("alert") == "NexomonBudgetExhausted"]
    assert len(rules) == 1
    return rules[0]


def exposed(spent: str, limit: str | None) -> dict[str, tuple[dict[str, str], float]]:
    """The budget samples of a fresh exporter's /metrics: name -> (labels, value)."""
    registry = CollectorRegistry()
    exporter = Exporter(registry, version="test")
    exporter.set_budget(Decimal(spent), None if limit is None else Decimal(limit))
    text = generate_latest(registry).decode()
    return {
        s.name: (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in BUDGET_METRICS
    }


def test_rule_references_the_exported_budget_gauges() -> None:
    rule = budget_rule()
    expr = rule["expr"]
    names = {word for word in expr.replace("(", " ").split() if word.startswith("nexomon_")}
    assert names == BUDGET_METRICS
    samples = exposed("0.10", "0.09")
    assert set(samples) == BUDGET_METRICS
    # only the location: "on (instance, job, location)" pairs one spent with one limit
    assert all(labels == {"location": "default"} for labels, _ in samples.values())
    assert "on (instance, job, location)" in expr


def promtool_value(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


def test_rule_fires_on_the_exporters_own_output(tmp_path: Path) -> None:
    binary = promtool()
    rule = budget_rule()
    instances = {
        "spent:9464": exposed("0.10", "0.09"),  # over the cap (the e2e test's numbers)
        "exact:9464": exposed("0.09", "0.09"),  # exactly at the cap: probes pause, so alert
        "room:9464": exposed("0.04", "0.09"),
        "nocap:9464": exposed("12.5", None),  # +Inf limit: never
    }
    series = [
        {
            "series": f'{name}{{job="nexomon",instance="{instance}"}}',
            "values": " ".join([promtool_value(value)] * 11),  # "+Infx10" does not parse
        }
        for instance, samples in instances.items()
        for name, (_, value) in samples.items()
    ]

    def expected(instance: str) -> dict:  # type: ignore[type-arg]
        annotations = {
            k: v.replace("{{ $labels.instance }}", instance) for k, v in rule["annotations"].items()
        }
        labels = {**rule["labels"], "job": "nexomon", "instance": instance}
        return {"exp_labels": labels, "exp_annotations": annotations}

    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "0m", "alertname": "NexomonBudgetExhausted", "exp_alerts": []},
                    {
                        "eval_time": "5m",
                        "alertname": "NexomonBudgetExhausted",
                        "exp_alerts": [expected("spent:9464"), expected("exact:9464")],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "budget.test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [binary, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
