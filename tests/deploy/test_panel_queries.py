"""panel_queries: every panel query of a dashboard with Grafana variables substituted."""

from __future__ import annotations

import json

import pytest

from .panel_queries import (
    duration_seconds,
    format_value,
    panel_queries,
    panel_targets,
    regex_escape,
    substitute,
)
from .tools import DASHBOARD_FILES, load_dashboard


def _dashboard(*panels: dict) -> dict:
    return {"panels": list(panels)}


def _panel(title: str, *exprs: str, **extra: object) -> dict:
    targets = [{"refId": chr(ord("A") + n), "expr": expr} for n, expr in enumerate(exprs)]
    return {"type": "timeseries", "title": title, "targets": targets, **extra}


@pytest.mark.parametrize(
    ("expr", "variables", "expected"),
    [
        ('up{t=~"$target"}', {"target": "a"}, 'up{t=~"a"}'),
        ('up{t=~"${target}"}', {"target": "a"}, 'up{t=~"a"}'),
        ('up{t=~"[[target]]"}', {"target": "a"}, 'up{t=~"a"}'),
        ('up{t=~"$target"}', {"target": ["a", "b"]}, 'up{t=~"(a|b)"}'),
        ('up{t=~"$target"}', {"target": ["a.b"]}, 'up{t=~"a\\\\.b"}'),
        ('up{t=~"${target:regex}"}', {"target": ["a", "b.c"]}, 'up{t=~"(a|b\\\\.c)"}'),
        ('up{t=~"${target:pipe}"}', {"target": ["a", "b"]}, 'up{t=~"a|b"}'),
        ('up{t=~"${target:csv}"}', {"target": ["a", "b"]}, 'up{t=~"a,b"}'),
        ('up{t=~"$target", m=~"$model"}', {"target": "x", "model": ".*"}, 'up{t=~"x", m=~".*"}'),
        ("rate(x[$__rate_interval])", {"__rate_interval": "2m"}, "rate(x[2m])"),
    ],
)
def test_substitute_renders_grafana_variable_syntaxes(
    expr: str, variables: dict, expected: str
) -> None:
    assert substitute(expr, variables) == expected


def test_substitute_refuses_an_unknown_variable() -> None:
    with pytest.raises(KeyError, match=r"\$tagret"):
        substitute('up{t=~"$tagret"}', {"target": "a"}, where="panel")


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        format_value(["a"], "percentencode-ish")


@pytest.mark.parametrize(
    ("value", "escaped"),
    [("plain", "plain"), ("a.b", "a\\\\.b"), ("(x)", "\\\\(x\\\\)"), ("a\\b", "a\\\\\\\\b")],
)
def test_regex_escape_doubles_backslashes_for_promql_strings(value: str, escaped: str) -> None:
    assert regex_escape(value) == escaped


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("15s", 15), ("5m", 300), ("1h", 3600), ("1d", 86400)]
)
def test_duration_seconds(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


def test_builtins_have_defaults_and_a_panel_interval_raises_them() -> None:
    dashboard = _dashboard(
        _panel("plain", "rate(x[$__rate_interval]) + increase(x[$__interval]) + y[$__range]"),
        _panel("daily", "increase(x[$__interval])", interval="1d"),
        _panel("ms", "x + $__interval_ms + $__range_s"),
    )
    assert panel_queries(dashboard, {}) == [
        ("plain", "rate(x[1m]) + increase(x[1m]) + y[1h]"),
        ("daily", "increase(x[1d])"),
        ("ms", "x + 60000 + 3600"),
    ]
    given = {"__interval": "2d", "__range": "7d"}
    assert panel_queries(dashboard, given)[1] == ("daily", "increase(x[2d])")


def test_multi_target_panels_name_each_ref_id_and_hidden_targets_are_skipped() -> None:
    panel = _panel("store", "a", "b", "c")
    panel["targets"][2]["hide"] = True
    panel["targets"].append({"refId": "D", "datasource": {"type": "grafana"}})
    assert panel_queries(_dashboard(panel), {}) == [("store (A)", "a"), ("store (B)", "b")]


def test_panels_inside_collapsed_rows_are_included() -> None:
    row = {"type": "row", "title": "row", "collapsed": True, "panels": [_panel("inner", "x")]}
    assert panel_queries(_dashboard(_panel("outer", "y"), row), {}) == [
        ("outer", "y"),
        ("inner", "x"),
    ]


def test_accepts_json_text_and_reports_instant_queries() -> None:
    panel = _panel("now", "x")
    panel["targets"][0].update(instant=True, range=False)
    (query,) = panel_targets(json.dumps(_dashboard(panel)), {})
    assert query.instant and query.ref_id == "A" and query.title == "now"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=[p.name for p in DASHBOARD_FILES])
def test_every_shipped_dashboard_query_substitutes_completely(path) -> None:
    variables = {"location": ["eu"], "target": ["nexorouter"], "model": ".*"}
    queries = panel_queries(load_dashboard(path), variables)
    assert queries
    for title, expr in queries:
        assert "$" not in expr and "[[" not in expr, f"{title}: {expr}"
