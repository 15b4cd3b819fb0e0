"""The Overview's "TLS days left" panel on TLS series.

The demo stack probes plain http, so the panel legitimately shows its
``noValue`` there (test_deploy_panels_e2e.NO_DATA_IN_DEMO). Here promtool
evaluates the panel's own query, with Grafana's variables substituted, over
the series two nexomon locations export for https targets: days left per
target and location, and the variables narrow it as they do every panel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .panel_queries import panel_queries
from .tools import DASHBOARDS, load_dashboard, need_binary, run

TITLE = "TLS days left"
SERIES = "nexomon_tls_cert_expiry_timestamp_seconds"
# notAfter in epoch seconds; promtool's time() at eval_time 10m is 600.
NOT_AFTER = {("eu", "gw"): 600 + 10 * 86400, ("us", "gw"): 600 + 15 * 86400, ("eu", "old"): 600}


def _panel(dashboard: dict[str, Any]) -> dict[str, Any]:
    (panel,) = [p for p in dashboard["panels"] if p.get("title") == TITLE]
    return panel


def test_the_panel_says_so_when_no_target_is_https_and_colours_the_alert_thresholds() -> None:
    defaults = _panel(load_dashboard(DASHBOARDS / "overview.json"))["fieldConfig"]["defaults"]
    assert defaults["noValue"] == "no https targets"
    steps = [(step["color"], step["value"]) for step in defaults["thresholds"]["steps"]]
    # the alert thresholds: critical under 3 days, warning under 14
    assert steps == [("red", None), ("orange", 3), ("green", 14)]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"location": ".*", "target": ".*"},
            {("eu", "gw"): 10, ("us", "gw"): 15, ("eu", "old"): 0},
        ),
        ({"location": ["us"], "target": ".*"}, {("us", "gw"): 15}),
        ({"location": ".*", "target": ["old"]}, {("eu", "old"): 0}),
    ],
    ids=["all", "one-location", "one-target"],
)
def test_the_panel_query_shows_days_left_per_target_and_location(
    tmp_path: Path, variables: dict[str, Any], expected: dict[tuple[str, str], float]
) -> None:
    promtool = need_binary("promtool")
    queries = panel_queries(
        load_dashboard(DASHBOARDS / "overview.json"), {**variables, "model": ".*"}
    )
    (expr,) = [expr for title, expr in queries if title == TITLE]
    series = [
        {
            "series": f'{SERIES}{{location="{location}",job="nexomon",'
            f'instance="{location}:9464",target="{target}"}}',
            "values": f"{not_after}x20",
        }
        for (location, target), not_after in NOT_AFTER.items()
    ]
    samples = [
        {"labels": f'{{location="{location}", target="{target}"}}', "value": days}
        for (location, target), days in expected.items()
    ]
    test_file = tmp_path / "panel.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "promql_expr_test": [
                            {"expr": expr, "eval_time": "10m", "exp_samples": samples}
                        ],
                    }
                ],
            }
        )
    )
    result = run([promtool, "test", "rules", str(test_file)])
    assert result.returncode == 0, result.stdout + result.stderr
