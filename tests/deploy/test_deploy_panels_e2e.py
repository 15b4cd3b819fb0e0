"""No dashboard panel is empty in the demo, and every alert rule loads and evaluates.

One real stack for the whole module: the simulator on a socket, ``nexomon
run`` as a subprocess probing it every second, and a real Prometheus that
scrapes the daemon every second and evaluates deploy/rules. The scenario has
what every panel and the availability/rate-limit alerts need:

- ``sim-ok``: healthy and priced; ``sim-unpriced``: healthy, no price;
- ``sim-down``: every chat request answered 500 (a failing model);
- ``sim-ratelimited``: a bucket of 5 that refills once in ~17 minutes, so it
  answers 429 with ``retry-after`` after five probes;
- ``sim-retiring`` (named in ``models`` next to ``"*"``): disappears from
  /models once the daemon has seen it listed (the test moves the
  simulator's clock forward): a catalog change and a delisted model;
- a second target ``dead`` whose gateway refuses connections (gateway down);
- a third target ``badkey`` whose key the simulator has revoked (every probe 403);
- ``[budget] daily_usd`` so the budget panels have a cap to compare with.

Every query of every panel of every dashboard is then run through
Prometheus' HTTP API, instant or range as the panel asks, with Grafana's
variables substituted twice: as "All" (the dashboards' ``allValue`` ``.*``)
with every option of each variable selected (resolved the way Grafana
does, from ``label_values``) and with the one location alone. Each must
answer at least one finite value.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from .demo_stack import ALL, DEADLINE_S, RULE_FILES, SCRAPE_S, Stack, demo_stack
from .panel_eval import empty_panels, evaluate, legend_names, panel_plans, selections
from .tools import DASHBOARD_FILES, DASHBOARDS, load_dashboard

pytestmark = pytest.mark.timeout(300)


# Panels the demo cannot fill, and why: left out of the emptiness check (their
# PromQL is parsed by test_deploy_dashboards), each shown to fill elsewhere.
NO_DATA_IN_DEMO = {
    "TLS days left": "the demo's gateways are plain http: no certificate to read"
    " (tests/deploy/test_tls_panel.py evaluates it over TLS series)",
    "Streams: time to first chunk and per output chunk": "streaming is opt-in"
    " (stream_interval) and the demo does not stream; the panel shows its noValue"
    " (tests/deploy/test_stream_panel.py evaluates it over stream series)",
}


# Histograms only a streaming target (stream_interval, opt-in) fills; the demo does not stream.
OPT_IN_HISTOGRAMS = {
    "nexomon_stream_time_to_first_chunk_seconds",
    "nexomon_stream_time_per_output_chunk_seconds",
}


def _fillable(dashboard: dict[str, Any]) -> dict[str, Any]:
    """``dashboard`` without the NO_DATA_IN_DEMO panels (rows' nested panels included)."""

    def keep(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**p, "panels": keep(p["panels"])} if "panels" in p else p
            for p in panels
            if p.get("title") not in NO_DATA_IN_DEMO
        ]

    return {**dashboard, "panels": keep(dashboard.get("panels", []))}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(tmp_path_factory.mktemp("panels-e2e")) as running:
        yield running


def _dashboard_ids() -> list[str]:
    return [path.stem for path in DASHBOARD_FILES]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_dashboard_ids())
def test_no_panel_is_empty_in_the_demo(stack: Stack, path: Path) -> None:
    """All, every option selected, and the location alone (issue 17: a location variable
    that empties a panel would hide exactly the regional view it exists for)."""
    dashboard = _fillable(load_dashboard(path))
    with stack.client() as client:
        chosen = selections(client, dashboard)
        assert "location=test" in chosen, sorted(chosen)  # the harness config's location
        empty = empty_panels(
            client,
            dashboard,
            chosen,
            started=stack.started,
            fine_step=SCRAPE_S,
            deadline_s=DEADLINE_S,
        )
    assert not empty, "panels without data:\n" + "\n".join(empty)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_dashboard_ids())
def test_no_two_series_of_a_panel_share_a_legend(stack: Stack, path: Path) -> None:
    """One line (or state-timeline row) per target/probe/model: a series that
    changes its label set midway (say, keeps ``__name__`` in one branch of an
    ``or``) would draw twice under one name."""
    dashboard = load_dashboard(path)
    now = time.time()
    variables = {"datasource": "prometheus", "location": ALL, "target": ALL, "model": ALL}
    plans = panel_plans(dashboard, variables, now=now, window=now - stack.started, fine_step=1)
    duplicated = []
    with stack.client() as client:
        for plan in plans:
            if plan.legend in ("", "__auto"):
                continue
            names = legend_names(plan, evaluate(client, plan))
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                duplicated.append(f"{plan.describe()}: {twice}")
    assert not duplicated, "\n".join(duplicated)


# Not the middle of a recording rule's name (level:nexomon_metric:operations).
_METRIC = re.compile(r"(?<![:\w])nexomon_[a-z0-9_]+(?![:\w])")


def _referenced_metrics() -> dict[str, set[str]]:
    """Metric name -> the files that use it, from dashboards and rule files."""
    used: dict[str, set[str]] = {}
    for path in [*DASHBOARD_FILES, *RULE_FILES]:
        for name in _METRIC.findall(path.read_text(encoding="utf-8")):
            used.setdefault(name, set()).add(path.name)
    return used


def test_dashboards_and_rules_use_metric_names_the_daemon_exports(stack: Stack) -> None:
    families = list(text_string_to_metric_families(stack.metrics_text))
    # Queries use sample names (x_total, x_bucket); prose may name a histogram family.
    exported = {family.name for family in families} | {
        sample.name for family in families for sample in family.samples
    }
    # Histograms of an opt-in feature the demo leaves off (streams): the daemon
    # exports their family (HELP and TYPE) with no sample, so a query's
    # ``_bucket`` name is checked against that family.
    exported |= {
        f"{family.name}_bucket"
        for family in families
        if family.name in OPT_IN_HISTOGRAMS and family.type == "histogram"
    }
    used = _referenced_metrics()
    assert used
    unknown = {name: sorted(files) for name, files in used.items() if name not in exported}
    assert not unknown, f"not in the daemon's /metrics: {unknown}"


def _rules(client: httpx.Client) -> list[dict[str, Any]]:
    body = client.get("/api/v1/rules").json()
    assert body["status"] == "success", body
    return [rule for group in body["data"]["groups"] for rule in group["rules"]]


def _rule_names_in_files() -> list[str]:
    names = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            names += [rule.get("alert") or rule["record"] for rule in group["rules"]]
    return names


def test_every_alert_rule_loads_and_evaluates_without_error(stack: Stack) -> None:
    assert RULE_FILES
    expected = sorted(_rule_names_in_files())
    with stack.client() as client:
        loaded = _rules(client)
        assert sorted(rule["name"] for rule in loaded) == expected
        # Wait until each rule has been evaluated at least once since the stack started.
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            loaded = _rules(client)
            if all(not rule["lastEvaluation"].startswith("0001-") for rule in loaded):
                break
            time.sleep(0.5)
    problems = [
        f"{rule['name']}: health={rule['health']} lastError={rule.get('lastError')!r} "
        f"lastEvaluation={rule['lastEvaluation']}"
        for rule in loaded
        if rule["health"] != "ok"
        or rule.get("lastError")
        or rule["lastEvaluation"].startswith("0001-")
    ]
    assert not problems, "\n".join(problems)


# Alerts the demo must raise. Each `for:` (5m-10m) is longer than this test runs,
# so they must be pending, not firing: that checks the expression and that the
# rule waits. NexomonBudgetExhausted (for 1m, needs the budget spent, which
# would pause every chat probe), NexomonLatencyHigh (15m), NexomonProbesStale
# (2m), NexomonRateLimited (no target answers only 429 here), the store,
# reload and exporter alerts are not raised by this scenario; NexomonModelUnavailable
# and NexomonModelRefused wait for 15 minutes of data, longer than the test
# runs. Their firing is covered by promtool test rules (test_deploy_rules.py).
# NexomonExporterDown is not checked either way: Prometheus starts before the
# daemon (up == 0 at first), and a scrape slower than 1 s on a loaded machine
# would raise it too.
EXPECTED_PENDING = {
    ("NexomonGatewayDown", "dead", None),
    ("NexomonModelDelisted", "sim", "sim-retiring"),
    ("NexomonRateLimitNearlyExhausted", "sim", "sim-ratelimited"),
    ("NexomonAuthFailing", "badkey", None),
}
# Availability alerts never fire on rate_limited (or a retired model's 404) alone;
# a model's first failures are not 15 minutes of failures; refusal alerts never
# fire for a target that also answers ok, nor for one that does not answer.
MUST_STAY_QUIET = {
    ("NexomonGatewayDown", "sim", None),
    ("NexomonGatewayDown", "badkey", None),
    ("NexomonModelUnavailable", "sim", "sim-down"),
    ("NexomonModelUnavailable", "sim", "sim-ratelimited"),
    ("NexomonModelUnavailable", "sim", "sim-retiring"),
    ("NexomonModelUnavailable", "sim", "sim-ok"),
    ("NexomonModelUnavailable", "sim", "sim-unpriced"),
    ("NexomonModelDelisted", "sim", "sim-ok"),
    ("NexomonModelUnavailable", "badkey", None),
    ("NexomonAuthFailing", "sim", None),
    ("NexomonAuthFailing", "dead", None),
    ("NexomonRateLimited", None, None),
    ("NexomonModelRefused", None, None),
    ("NexomonStoreFailing", None, None),
    ("NexomonStoreDroppingRows", None, None),
    ("NexomonConfigReloadFailed", None, None),
}


def _key(alert: dict[str, Any]) -> tuple[str, str | None, str | None]:
    labels = alert["labels"]
    return labels["alertname"], labels.get("target"), labels.get("model")


def _matches(key: tuple[str, str | None, str | None], alert: dict[str, Any]) -> bool:
    name, target, model = _key(alert)
    return key[0] == name and key[1] in (None, target) and key[2] in (None, model)


def test_the_demo_raises_the_expected_alerts_and_no_availability_alert_on_429(
    stack: Stack,
) -> None:
    with stack.client() as client:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            alerts = client.get("/api/v1/alerts").json()["data"]["alerts"]
            active = {_key(alert): alert for alert in alerts}
            missing = EXPECTED_PENDING - set(active)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert not missing, f"alerts not raised: {sorted(missing, key=str)}; active: {sorted(active)}"
    for key in EXPECTED_PENDING:
        alert = active[key]
        assert alert["state"] == "pending", f"{key} fired before its for: elapsed: {alert}"
        summary = alert["annotations"]["summary"]
        assert all(value in summary for value in key[1:] if value), summary
        assert alert["annotations"].get("runbook"), alert
        assert alert["labels"].get("severity") in ("critical", "warning"), alert
    noisy = [_key(alert) for alert in alerts for quiet in MUST_STAY_QUIET if _matches(quiet, alert)]
    assert not noisy, f"alerts that must stay quiet are active: {noisy}"


def _panel(client: httpx.Client, stack: Stack, file: str, title: str) -> list[Any]:
    """The series of one panel target (All selected), as ``(labels, values)``."""
    dashboard = load_dashboard(DASHBOARDS / file)
    now = time.time()
    variables = {"datasource": "prometheus", "location": ALL, "target": ALL, "model": ALL}
    plans = panel_plans(dashboard, variables, now=now, window=now - stack.started, fine_step=1)
    (plan,) = [plan for plan in plans if plan.title == title]
    return evaluate(client, plan)


def _last(series: list[Any], **labels: str) -> float:
    """The last value of the one series whose labels include ``labels``."""
    (values,) = [v for metric, v in series if labels.items() <= metric.items()]
    return values[-1]


def _max(series: list[Any], **labels: str) -> float:
    """The largest value of the one series whose labels include ``labels``."""
    (values,) = [v for metric, v in series if labels.items() <= metric.items()]
    return max(values)


DOWN_OUTCOMES = {"server_error", "timeout", "connection_error", "invalid_response"}
REFUSED_OUTCOMES = {"auth_error", "rate_limited", "client_error"}


def test_the_panels_show_the_demo_faults(stack: Stack) -> None:
    """The numbers, not only their presence: the dashboards' arithmetic is right."""
    with stack.client() as client:
        availability = _panel(client, stack, "overview.json", "Availability in range")
        state = _panel(client, stack, "overview.json", "Probe state")
        listed = _panel(client, stack, "overview.json", "Listed models")
        changes = _panel(client, stack, "overview.json", "Catalog changes")
        refused = _panel(client, stack, "ratelimits.json", "429 rate")
        retry = _panel(client, stack, "ratelimits.json", "Retry-after")
        unpriced = _panel(client, stack, "spend.json", "Unpriced models")
        down = _panel(client, stack, "overview.json", "Down probes by outcome")
        refused_probes = _panel(client, stack, "overview.json", "Refused probes by outcome")
        failures = _panel(client, stack, "overview.json", "Failures in range by target and model")
    assert _last(availability, model="sim-ok") == 1
    assert _last(availability, model="sim-down") == 0
    assert _last(availability, target="dead") == 0
    # 429s are a quota problem, not an outage: only the five answered probes count.
    assert _last(availability, model="sim-ratelimited") == 1
    # Probe state: 1 up, 0 down, 2 refused (4xx).
    assert _last(state, model="sim-ok") == 1
    assert _last(state, model="sim-down") == 0
    assert _last(state, model="sim-ratelimited") == 2
    assert _last(listed, model="sim-retiring") == 0
    assert _last(listed, model="sim-ok") == 1
    # The range shows the removal (the increase window may have moved past it by now).
    removed = [
        values
        for metric, values in changes
        if metric == {"location": "test", "target": "sim", "change": "removed"}
    ]
    assert removed and max(removed[0]) > 0, changes
    assert (
        max(max(values) for metric, values in refused if metric["model"] == "sim-ratelimited") > 0
    )
    assert _last(refused, model="sim-ok") == 0
    assert _last(retry, model="sim-ratelimited") > 0
    assert {metric["model"] for metric, _ in unpriced} == {"sim-unpriced"}
    # Down and refused apart, in whole probes: a 429 or a 403 is never down.
    assert _max(down, target="sim", outcome="server_error") >= 1
    assert _max(down, target="dead", outcome="connection_error") >= 1
    assert {metric["outcome"] for metric, _ in down} <= DOWN_OUTCOMES
    assert _max(refused_probes, target="sim", outcome="rate_limited") >= 1
    assert _max(refused_probes, target="badkey", outcome="auth_error") >= 1
    assert {metric["outcome"] for metric, _ in refused_probes} <= REFUSED_OUTCOMES
    assert {metric["outcome"] for metric, _ in failures} >= {"auth_error", "server_error"}
    for panel in (down, refused_probes, failures):
        values = [value for _, series in panel for value in series]
        assert values and all(value == round(value) for value in values), panel
