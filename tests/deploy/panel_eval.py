"""Evaluate dashboard panels the way Grafana would, against a real Prometheus.

Contract:

- :func:`variable_values` resolves a dashboard's ``label_values(...)`` query
  variables in dashboard order (a later variable may use an earlier one) via
  ``/api/v1/label/NAME/values?match[]=...``, as Grafana's Prometheus
  datasource does. Empty values are dropped.
- :func:`panel_plans` turns every visible PromQL target of a dashboard into a
  :class:`QueryPlan`: the substituted expression (``panel_queries``) and the
  HTTP request Grafana would send. Instant targets query at ``now``. Range
  targets of panels whose minimum ``interval`` is an hour or more use that
  interval as the step over the dashboard's own time range, with start and
  end rounded *down* to a multiple of the step (Grafana's ``AlignTimeRange``;
  the dashboards are UTC, so no offset): that rounding is what can hide a
  whole day of data from a day-bucketed panel. Other range targets are
  queried over ``window`` seconds up to ``now`` with ``fine_step`` (a Grafana
  zoomed onto the test run): a 5m step would only show data once the demo
  has crossed a 5-minute boundary, which a short test cannot wait for.
- ``$__range`` is the dashboard's time range (``time.from`` is ``now-N``);
  ``$__interval`` and ``$__rate_interval`` keep panel_queries' defaults,
  raised to a panel's minimum interval.
- :func:`evaluate` runs one plan and returns its series as
  ``(labels, [values])``; :func:`has_finite_value` says whether any value is
  a number (an all-NaN answer draws nothing, so it counts as empty);
  :func:`legend_names` renders a plan's ``legendFormat`` for each series.
- :func:`selections` gives the variable settings a test checks: ``all``
  (every variable All, the dashboards' ``allValue`` ``.*``), ``each`` (every
  option of every variable selected, as Grafana lists them) and one
  ``location=NAME`` per location (that location alone, the rest All).
  :func:`empty_panels` polls until no panel target is empty under any of
  them (or a deadline passes) and returns the empty ones, described.
  Both are shared with the many-location tests: nothing in them knows the
  demo.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .panel_queries import VariableValue, duration_seconds, panel_targets, substitute

_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*(?P<label>\w+)\s*\)\s*$")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
DAY_BUCKET_MIN_S = 3600.0
ALL = ".*"  # the dashboards' allValue
Series = tuple[dict[str, str], list[float]]


@dataclass(frozen=True)
class QueryPlan:
    """One panel target as Grafana would request it."""

    dashboard: str
    title: str
    expr: str
    instant: bool
    start: float = 0.0
    end: float = 0.0
    step: float = 0.0
    legend: str = ""  # the target's legendFormat ("" or "__auto": Grafana's own naming)

    def describe(self) -> str:
        kind = "instant" if self.instant else f"range step={self.step:g}s"
        return f"{self.dashboard} / {self.title} [{kind}]: {self.expr}"


def walk_panels(panels: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every panel, the ones inside collapsed rows included, in dashboard order."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def dashboard_range_s(dashboard: Mapping[str, Any]) -> float:
    """Seconds in the dashboard's default time range (``now-6h`` .. ``now``)."""
    time_range = dashboard.get("time", {})
    if time_range.get("to", "now") != "now" or not str(time_range.get("from", "")).startswith(
        "now-"
    ):
        raise ValueError(f"unsupported dashboard time range {time_range!r}")
    return duration_seconds(time_range["from"][len("now-") :])


def variable_values(
    client: httpx.Client,
    dashboard: Mapping[str, Any],
    selected: Mapping[str, VariableValue],
) -> dict[str, list[str]]:
    """Every ``label_values`` variable's options, given the ``selected`` value of each."""
    options: dict[str, list[str]] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, Mapping) else str(query)
        match = _LABEL_VALUES.match(text)
        if match is None:
            raise ValueError(f"variable {variable['name']}: unsupported query {text!r}")
        selector = substitute(match["selector"], selected, where=f"${variable['name']}")
        response = client.get(
            f"/api/v1/label/{match['label']}/values", params={"match[]": selector}
        )
        body = response.json()
        assert body.get("status") == "success", body
        options[variable["name"]] = [value for value in body["data"] if value]
    return options


def panel_plans(
    dashboard: Mapping[str, Any],
    variables: Mapping[str, VariableValue],
    *,
    now: float,
    window: float,
    fine_step: float,
) -> list[QueryPlan]:
    """A :class:`QueryPlan` per visible target of every panel (see the module contract)."""
    name = str(dashboard.get("title", "dashboard"))
    range_s = dashboard_range_s(dashboard)
    given = {"__range": f"{int(range_s)}s", **variables}
    plans: list[QueryPlan] = []
    for panel in walk_panels(dashboard.get("panels", [])):
        # One panel at a time, so the plan knows the panel's minimum interval.
        single = {"panels": [{**panel, "panels": []}]}
        minimum = duration_seconds(panel["interval"]) if panel.get("interval") else 0.0
        legends = {
            str(t.get("refId", "")): str(t.get("legendFormat", ""))
            for t in panel.get("targets", [])
        }
        for query in panel_targets(single, given):
            legend = legends.get(query.ref_id, "")
            if query.instant:
                start, end, step = now, now, 0.0
            elif minimum >= DAY_BUCKET_MIN_S:
                start = math.floor((now - range_s) / minimum) * minimum
                end = math.floor(now / minimum) * minimum
                step = minimum
            else:
                start, end, step = now - window, now, fine_step
            plans.append(
                QueryPlan(name, query.title, query.expr, query.instant, start, end, step, legend)
            )
    return plans


def evaluate(client: httpx.Client, plan: QueryPlan) -> list[Series]:
    """Run ``plan`` through Prometheus' HTTP API; a failed query raises AssertionError."""
    if plan.instant:
        response = client.get("/api/v1/query", params={"query": plan.expr, "time": plan.end})
    else:
        params = {"query": plan.expr, "start": plan.start, "end": plan.end, "step": plan.step}
        response = client.get("/api/v1/query_range", params=params)
    body = response.json()
    assert body.get("status") == "success", f"{plan.describe()}\n{body}"
    data = body["data"]
    kind, result = data["resultType"], data["result"]
    if kind == "scalar":
        return [({}, [float(result[1])])]
    if kind == "vector":
        return [(item["metric"], [float(item["value"][1])]) for item in result]
    if kind == "matrix":
        return [(item["metric"], [float(v) for _, v in item["values"]]) for item in result]
    raise AssertionError(f"{plan.describe()}: unexpected result type {kind}")


def legend_names(plan: QueryPlan, series: Sequence[Series]) -> list[str]:
    """Each series' legend as Grafana renders ``{{label}}`` templates (missing: empty)."""

    def render(labels: dict[str, str]) -> str:
        return _LEGEND.sub(lambda match: labels.get(match.group(1), ""), plan.legend)

    return [render(labels) for labels, _ in series]


def has_finite_value(series: Sequence[Series]) -> bool:
    """True when some series has a value that is neither NaN nor infinite."""
    return any(math.isfinite(value) for _, values in series for value in values)


def selections(client: httpx.Client, dashboard: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``all``, ``each`` and ``location=NAME`` variable settings (see the module contract)."""
    base: dict[str, Any] = {"datasource": "prometheus"}
    every = {**base, "location": ALL, "target": ALL, "model": ALL}
    # Grafana resolves the variables in list order: locations, then targets, then models.
    locations = variable_values(client, dashboard, every)["location"]
    targets = variable_values(client, dashboard, {**every, "location": locations})["target"]
    options = variable_values(
        client, dashboard, {**every, "location": locations, "target": targets}
    )
    for name, values in options.items():
        assert values, f"{dashboard['title']}: variable ${name} has no options"
    chosen: dict[str, dict[str, Any]] = {"all": every, "each": {**base, **options}}
    for location in locations:
        chosen[f"location={location}"] = {**every, "location": [location]}
    return chosen


def empty_panels(
    client: httpx.Client,
    dashboard: Mapping[str, Any],
    chosen: Mapping[str, Mapping[str, Any]],
    *,
    started: float,
    fine_step: float,
    deadline_s: float,
) -> list[str]:
    """The panel targets without a finite value under some setting of ``chosen``, described.

    Rate windows need a few scrapes after the last event, so it polls until
    none is empty or ``deadline_s`` has passed; ``started`` is when
    Prometheus began scraping (range queries cover ``started``..now).
    """
    deadline = time.monotonic() + deadline_s
    while True:
        now = time.time()
        empty: list[str] = []
        for name, variables in chosen.items():
            plans = panel_plans(
                dashboard, variables, now=now, window=now - started, fine_step=fine_step
            )
            assert plans, f"{dashboard.get('title')} has no queries"
            empty += [
                f"({name}) {plan.describe()}"
                for plan in plans
                if not has_finite_value(evaluate(client, plan))
            ]
        if not empty or time.monotonic() > deadline:
            return empty
        time.sleep(1)
