"""Grafana dashboards: structure, variables, PromQL that parses, and @grafana/schema types."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .dashboard_ts import dashboard_module
from .panel_queries import _walk_panels, panel_queries
from .tools import DASHBOARD_FILES, DASHBOARDS, load_dashboard, need_binary, run

TSC_DIR = Path(__file__).resolve().parent / "tsc"
EXPECTED = {"overview.json", "ratelimits.json", "spend.json"}
# docs/architecture.md's metric table plus the interval gauge; `up` comes from Prometheus.
METRICS = {
    "nexomon_probe_success",
    "nexomon_probe_duration_seconds_bucket",
    "nexomon_probe_phase_duration_seconds_bucket",
    "nexomon_probes_total",
    "nexomon_probe_last_run_timestamp_seconds",
    "nexomon_probe_http_status_code",
    "nexomon_probe_interval_seconds",
    "nexomon_model_listed",
    "nexomon_catalog_size",
    "nexomon_catalog_changes_total",
    "nexomon_tokens_total",
    "nexomon_cost_usd_total",
    "nexomon_model_unpriced",
    "nexomon_ratelimit_limit",
    "nexomon_ratelimit_remaining",
    "nexomon_ratelimit_retry_after_seconds",
    "nexomon_ratelimit_reset_seconds",
    "nexomon_ratelimit_invalid_headers_total",
    "nexomon_model_substituted",
    "nexomon_model_substitutions_total",
    "nexomon_contract_check",
    "nexomon_budget_spent_usd",
    "nexomon_budget_limit_usd",
    "nexomon_scheduler_lag_seconds_bucket",
    "nexomon_store_pending_rows",
    "nexomon_store_written_rows_total",
    "nexomon_store_errors_total",
    "nexomon_store_dropped_rows_total",
    "nexomon_config_last_reload_successful",
    "nexomon_build_info",
    "nexomon_tls_cert_expiry_timestamp_seconds",
    "nexomon_stream_time_to_first_chunk_seconds_bucket",
    "nexomon_stream_time_per_output_chunk_seconds_bucket",
}
# Metrics of the nexomon process itself: no target label to filter on (location, like every series).
INSTANCE_METRICS = {
    "nexomon_build_info",
    "nexomon_scheduler_lag_seconds_bucket",
    "nexomon_budget_spent_usd",
    "nexomon_budget_limit_usd",
    "nexomon_store_pending_rows",
    "nexomon_store_written_rows_total",
    "nexomon_store_errors_total",
    "nexomon_store_dropped_rows_total",
    "nexomon_config_last_reload_successful",
}
VARIABLES = {"location": ["eu-west", "us.east"], "target": ["sim", "nexo.router"], "model": ".*"}
ids = [path.name for path in DASHBOARD_FILES]


def _all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_walk_panels(dashboard.get("panels", [])))


def test_the_three_dashboards_exist() -> None:
    assert {path.name for path in DASHBOARD_FILES} >= EXPECTED


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=ids)
def test_dashboard_has_current_schema_and_unique_uid(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"].startswith("nexomon-")
    assert dashboard.get("id") is None
    uids = [load_dashboard(other)["uid"] for other in DASHBOARD_FILES]
    assert uids.count(dashboard["uid"]) == 1


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=ids)
def test_dashboard_has_datasource_location_target_and_model_variables(path: Path) -> None:
    listed = load_dashboard(path)["templating"]["list"]
    variables = {v["name"]: v for v in listed}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("location", "target", "model"):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["query"].startswith("label_values(")
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"
    # Every instance exports build_info, so a location that probes nothing yet is listed;
    # target and model follow the chosen locations (Grafana resolves them in list order).
    assert variables["location"]["query"] == "label_values(nexomon_build_info, location)"
    names = [v["name"] for v in listed]
    assert names.index("location") < names.index("target") < names.index("model")
    for name in ("target", "model"):
        assert 'location=~"$location"' in variables[name]["query"], name


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=ids)
def test_no_hard_coded_datasource_uid(path: Path) -> None:
    dashboard = load_dashboard(path)

    def refs(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, dict):
            found = [node["datasource"]] if isinstance(node.get("datasource"), dict) else []
            return found + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    for ref in refs(dashboard):
        assert ref.get("uid") in {"${datasource}", "-- Grafana --"}, ref


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=ids)
def test_panels_have_unique_ids_and_fit_the_grid(path: Path) -> None:
    panels = _all_panels(load_dashboard(path))
    panel_ids = [panel["id"] for panel in panels]
    assert len(panel_ids) == len(set(panel_ids))
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        assert panel["type"] == "row" or panel.get("targets"), panel["title"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=ids)
def test_queries_use_only_contract_metrics_and_filter_by_target(path: Path) -> None:
    for title, expr in panel_queries(load_dashboard(path), VARIABLES):
        names = set(re.findall(r"\bnexomon_\w+", expr))
        assert names, title
        assert names <= METRICS, f"{title}: {names - METRICS}"
        if not names <= INSTANCE_METRICS:
            assert "(sim|nexo\\\\.router)" in expr, f"{title} ignores $target: {expr}"
        # every series carries location: no panel mixes in a location not chosen
        for name in names:
            selectors = re.findall(rf"\b{name}\{{([^}}]*)\}}", expr)
            assert selectors, f"{title}: {name} without a selector: {expr}"
            for selector in selectors:
                assert 'location=~"(eu-west|us\\\\.east)"' in selector, f"{title}: {expr}"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=ids)
def test_every_panel_query_parses_as_promql(path: Path, tmp_path: Path) -> None:
    # promtool parses each expression of a rule file; recording rules make that
    # a PromQL syntax check of every panel query, variables substituted.
    promtool = need_binary("promtool")
    queries = panel_queries(load_dashboard(path), VARIABLES)
    rules = [{"record": f"panel:query_{n}", "expr": expr} for n, (_, expr) in enumerate(queries)]
    rule_file = tmp_path / "panels.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": path.stem, "rules": rules}]}))
    result = run([promtool, "check", "rules", str(rule_file)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_loads_this_folder_with_a_prometheus_datasource() -> None:
    datasources = yaml.safe_load((DASHBOARDS / "provisioning/datasources/nexomon.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"]
    providers = yaml.safe_load((DASHBOARDS / "provisioning/dashboards/nexomon.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/nexomon"


def _npm_ready() -> Path:
    """node_modules of tests/deploy/tsc, installed from the lock file when missing."""
    npm = need_binary("npm")
    need_binary("node")
    if not (TSC_DIR / "node_modules" / "typescript").is_dir():
        command = "ci" if (TSC_DIR / "package-lock.json").exists() else "install"
        result = run([npm, command, "--no-audit", "--no-fund"], cwd=TSC_DIR, timeout=300)
        if result.returncode != 0:
            message = f"npm {command} failed: {result.stderr[-2000:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    return TSC_DIR / "node_modules"


def _typecheck(tmp_path: Path, modules: dict[str, str]) -> tuple[int, str]:
    node_modules = _npm_ready()
    (tmp_path / "node_modules").symlink_to(node_modules, target_is_directory=True)
    (tmp_path / "tsconfig.json").write_text((TSC_DIR / "tsconfig.json").read_text())
    for name, text in modules.items():
        (tmp_path / f"{name}.ts").write_text(text, encoding="utf-8")
    tsc = node_modules / "typescript" / "bin" / "tsc"
    result = run(
        [need_binary("node"), str(tsc), "-p", "tsconfig.json", "--noEmit", "--strict"],
        cwd=tmp_path,
        timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


def test_dashboards_type_check_against_grafana_schema(tmp_path: Path) -> None:
    modules = {
        path.stem: dashboard_module(path.read_text(encoding="utf-8"), path.stem)
        for path in DASHBOARD_FILES
    }
    returncode, output = _typecheck(tmp_path, modules)
    assert returncode == 0, output


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda d: d["panels"][1].update(gridPoz=d["panels"][1]["gridPos"]), "gridPoz"),
        (lambda d: d.pop("schemaVersion"), "schemaVersion"),
        (lambda d: d["templating"]["list"][0].update(type="datasorce"), "datasorce"),
        (
            lambda d: d["panels"][1]["fieldConfig"]["defaults"]["thresholds"].update(mode="abs"),
            '"abs"',
        ),
    ],
    ids=["unknown-key", "missing-required", "bad-variable-type", "bad-enum-value"],
)
def test_type_check_rejects_a_broken_dashboard(tmp_path: Path, mutation: Any, message: str) -> None:
    dashboard = load_dashboard(DASHBOARDS / "overview.json")
    mutation(dashboard)
    returncode, output = _typecheck(tmp_path, {"broken": dashboard_module(json.dumps(dashboard))})
    assert returncode != 0
    assert message in output
