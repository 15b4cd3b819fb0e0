"""The exporter: docs/architecture.md's metric table, bounded labels, forget(), promtool.

Latency histograms and the location label: tests/exporter/test_exporter_latency.py.
"""

from __future__ import annotations

import logging
import math
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from testutil import need_binary

from monitor.exporter.exporter import Exporter
from monitor.exporter.slots import MAX_LABEL_LENGTH
from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult

STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LOCATION = "eu-west"
JOB = {"target", "probe", "model"}
TM = {"target", "model"}


def result(**changes: object) -> ProbeResult:
    base = ProbeResult(
        started_at=STARTED,
        location="test",
        target="gw",
        probe="chat",
        model="m1",
        outcome=Outcome.OK,
        http_status=200,
        duration_s=0.25,
        phases=Phases(resolve=0.001, connect=0.002, tls=0.003, processing=0.2, transfer=0.01),
        prompt_tokens=12,
        completion_tokens=3,
        total_tokens=15,
        cost_usd=Decimal("0.0000024"),
        ratelimit_limit=60,
        ratelimit_remaining=59,
    )
    return base.replace(**changes)


@dataclass
class Stats:
    pending: int = 4
    written_total: int = 100
    errors_total: int = 1
    dropped_total: int = 0
    refused_total: int = 2
    loop_errors_total: int = 0
    unjournaled_total: int = 0

    @staticmethod
    def health() -> str | None:
        return None


def scrape(registry: CollectorRegistry) -> dict[str, tuple[str, list]]:
    """{family name as exposed: (type, samples)}."""
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        out[name] = (family.type, family.samples)
    return out


def value(registry: CollectorRegistry, sample_name: str, **labels: str) -> float | None:
    """The value of the sample with exactly ``labels`` (``location`` is added)."""
    labels = {"location": LOCATION, **labels}
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and sample.labels == labels:
                return sample.value
    return None


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def exporter(registry: CollectorRegistry) -> Exporter:
    exp = Exporter(registry, version="1.2.3", location=LOCATION)
    exp.configure_target("gw", max_models=3)
    return exp


@pytest.fixture
def busy(exporter: Exporter, registry: CollectorRegistry) -> CollectorRegistry:
    """A registry after a few hand-made results and every other call."""
    exporter.observe(
        result(
            probe="models",
            model="",
            model_ids=("m1", "m2"),
            invalid_entries=3,
            prompt_tokens=None,
        )
    )
    exporter.observe(result(response_model="m1-2024-08-06"))
    exporter.observe(
        result(
            model="m2",
            outcome=Outcome.RATE_LIMITED,
            http_status=429,
            retry_after_s=7.0,
            ratelimit_reset_s=7.0,
            ratelimit_limit_tokens=40000,
            ratelimit_remaining_tokens=0,
            ratelimit_reset_tokens_s=0.5,
            ratelimit_invalid=2,
            prompt_tokens=None,
            completion_tokens=None,
            cost_usd=None,
        )
    )
    exporter.observe(
        result(probe="contract", model="cors_preflight", outcome=Outcome.INVALID_RESPONSE)
    )
    exporter.observe(  # an ok stream (opt-in): no tokens, so the chat's counts stand
        result(
            probe="stream",
            prompt_tokens=None,
            completion_tokens=None,
            cost_usd=None,
            ttft_s=0.3,
            output_tokens_per_s=50.0,
            chunk_gaps_s=(0.02, 0.03),
        )
    )
    exporter.mark_unpriced("gw", "m2", True)
    exporter.catalog_changed("gw", "added", 2)
    exporter.catalog_flapped("gw", 5)
    exporter.set_interval("gw", "chat", "m1", 300)
    exporter.observe_lag(0.003)
    exporter.misfire()
    exporter.probe_error()
    exporter.set_budget(Decimal("0.25"), Decimal("1.00"))
    exporter.set_reload_ok(False)
    exporter.bind_writer(Stats)
    return registry


METRICS = [
    ("nexomon_probe_success", "gauge", JOB),
    ("nexomon_probe_duration_seconds", "histogram", JOB),
    ("nexomon_probe_phase_duration_seconds", "histogram", {"target", "probe", "phase"}),
    ("nexomon_probes_total", "counter", JOB | {"outcome"}),
    ("nexomon_probe_last_run_timestamp_seconds", "gauge", JOB),
    ("nexomon_probe_http_status_code", "gauge", JOB),
    ("nexomon_probe_interval_seconds", "gauge", JOB),
    ("nexomon_model_listed", "gauge", TM),
    ("nexomon_catalog_size", "gauge", {"target"}),
    ("nexomon_catalog_changes_total", "counter", {"target", "change"}),
    ("nexomon_models_over_limit", "gauge", {"target"}),
    ("nexomon_catalog_flaps_total", "counter", {"target"}),
    ("nexomon_catalog_invalid_entries", "gauge", {"target"}),
    ("nexomon_tokens_total", "counter", TM | {"type"}),
    ("nexomon_cost_usd_total", "counter", TM),
    ("nexomon_model_unpriced", "gauge", TM),
    ("nexomon_ratelimit_limit", "gauge", TM | {"kind"}),
    ("nexomon_ratelimit_remaining", "gauge", TM | {"kind"}),
    ("nexomon_ratelimit_reset_seconds", "gauge", TM | {"kind"}),
    ("nexomon_ratelimit_invalid_headers_total", "counter", {"target"}),
    ("nexomon_model_substituted", "gauge", TM),
    ("nexomon_model_substitutions_total", "counter", TM),
    ("nexomon_contract_check", "gauge", {"target", "check"}),
    ("nexomon_stream_time_to_first_chunk_seconds", "histogram", TM),
    ("nexomon_stream_time_per_output_chunk_seconds", "histogram", TM),
    ("nexomon_stream_output_tokens_per_second", "gauge", TM),
    ("nexomon_ratelimit_retry_after_seconds", "gauge", TM),
    ("nexomon_budget_spent_usd", "gauge", set()),
    ("nexomon_budget_limit_usd", "gauge", set()),
    ("nexomon_scheduler_lag_seconds", "histogram", set()),
    ("nexomon_scheduler_misfires_total", "counter", set()),
    ("nexomon_probe_errors_total", "counter", set()),
    ("nexomon_store_pending_rows", "gauge", set()),
    ("nexomon_store_written_rows_total", "counter", set()),
    ("nexomon_store_errors_total", "counter", set()),
    ("nexomon_store_dropped_rows_total", "counter", set()),
    ("nexomon_store_rows_refused_total", "counter", set()),
    ("nexomon_store_writer_errors_total", "counter", set()),
    ("nexomon_store_unjournaled_rows_total", "counter", set()),
    ("nexomon_store_writer_up", "gauge", set()),
    ("nexomon_config_last_reload_successful", "gauge", set()),
    ("nexomon_prober_active", "gauge", set()),
    ("nexomon_build_info", "gauge", {"version"}),
]


@pytest.mark.parametrize(("name", "kind", "labels"), METRICS, ids=[m[0] for m in METRICS])
def test_every_metric_is_exported_with_its_type_and_labels(
    busy: CollectorRegistry, name: str, kind: str, labels: set[str]
) -> None:
    families = scrape(busy)
    assert name in families
    family_kind, samples = families[name]
    assert family_kind == kind
    assert samples
    for sample in samples:
        assert set(sample.labels) - {"le"} == labels | {"location"}
        assert sample.labels["location"] == LOCATION


def test_no_metric_outside_the_table_and_no_created_series(busy: CollectorRegistry) -> None:
    assert set(scrape(busy)) == {name for name, _, _ in METRICS}
    assert b"_created" not in generate_latest(busy)


@pytest.mark.parametrize(
    ("sample", "labels", "expected"),
    [
        ("nexomon_probe_success", {"target": "gw", "probe": "chat", "model": "m1"}, 1),
        ("nexomon_probe_success", {"target": "gw", "probe": "chat", "model": "m2"}, 0),
        ("nexomon_probe_http_status_code", {"target": "gw", "probe": "chat", "model": "m2"}, 429),
        (
            "nexomon_probes_total",
            {"target": "gw", "probe": "chat", "model": "m2", "outcome": "rate_limited"},
            1,
        ),
        (
            "nexomon_probes_total",
            {"target": "gw", "probe": "chat", "model": "m2", "outcome": "ok"},
            0,
        ),
        (
            "nexomon_probe_phase_duration_seconds_sum",
            {"target": "gw", "probe": "chat", "phase": "processing"},
            0.2,
        ),
        (
            "nexomon_probe_phase_duration_seconds_sum",
            {"target": "gw", "probe": "chat", "phase": "connect"},
            0.005,  # connect + tls
        ),
        (
            "nexomon_probe_phase_duration_seconds_count",
            {"target": "gw", "probe": "models", "phase": "connect"},
            1,
        ),
        (
            "nexomon_probe_duration_seconds_count",
            {"target": "gw", "probe": "chat", "model": "m1"},
            1,
        ),
        (
            "nexomon_probe_duration_seconds_bucket",
            {"target": "gw", "probe": "chat", "model": "m1", "le": "0.32"},
            1,
        ),
        (
            "nexomon_probe_last_run_timestamp_seconds",
            {"target": "gw", "probe": "chat", "model": "m1"},
            STARTED.timestamp() + 0.25,
        ),
        ("nexomon_probe_interval_seconds", {"target": "gw", "probe": "chat", "model": "m1"}, 300),
        ("nexomon_tokens_total", {"target": "gw", "model": "m1", "type": "input"}, 12),
        ("nexomon_tokens_total", {"target": "gw", "model": "m1", "type": "output"}, 3),
        ("nexomon_cost_usd_total", {"target": "gw", "model": "m1"}, 0.0000024),
        ("nexomon_ratelimit_remaining", {"target": "gw", "model": "m1", "kind": "requests"}, 59),
        ("nexomon_ratelimit_limit", {"target": "gw", "model": "m2", "kind": "tokens"}, 40000),
        ("nexomon_ratelimit_remaining", {"target": "gw", "model": "m2", "kind": "tokens"}, 0),
        ("nexomon_ratelimit_reset_seconds", {"target": "gw", "model": "m2", "kind": "tokens"}, 0.5),
        ("nexomon_ratelimit_reset_seconds", {"target": "gw", "model": "m2", "kind": "requests"}, 7),
        ("nexomon_ratelimit_invalid_headers_total", {"target": "gw"}, 2),
        ("nexomon_model_substituted", {"target": "gw", "model": "m1"}, 0),
        ("nexomon_model_substitutions_total", {"target": "gw", "model": "m1"}, 0),
        ("nexomon_contract_check", {"target": "gw", "check": "cors_preflight"}, 0),
        ("nexomon_ratelimit_retry_after_seconds", {"target": "gw", "model": "m2"}, 7),
        ("nexomon_model_unpriced", {"target": "gw", "model": "m2"}, 1),
        ("nexomon_model_listed", {"target": "gw", "model": "m2"}, 1),
        ("nexomon_catalog_size", {"target": "gw"}, 2),
        ("nexomon_catalog_changes_total", {"target": "gw", "change": "added"}, 2),
        ("nexomon_catalog_changes_total", {"target": "gw", "change": "removed"}, 0),
        ("nexomon_catalog_flaps_total", {"target": "gw"}, 5),
        ("nexomon_catalog_invalid_entries", {"target": "gw"}, 3),
        ("nexomon_budget_spent_usd", {}, 0.25),
        ("nexomon_budget_limit_usd", {}, 1.0),
        ("nexomon_scheduler_misfires_total", {}, 1),
        ("nexomon_config_last_reload_successful", {}, 0),
        ("nexomon_store_pending_rows", {}, 4),
        ("nexomon_store_written_rows_total", {}, 100),
        ("nexomon_store_rows_refused_total", {}, 2),
        ("nexomon_store_writer_up", {}, 1),
        ("nexomon_build_info", {"version": "1.2.3"}, 1),
    ],
)
def test_values_follow_the_observed_results(
    busy: CollectorRegistry, sample: str, labels: dict[str, str], expected: float
) -> None:
    assert value(busy, sample, **labels) == pytest.approx(expected)


def test_skipped_result_counts_but_keeps_the_last_real_probe(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    job = {"target": "gw", "probe": "chat", "model": "m1"}
    exporter.observe(result())
    exporter.observe(
        result(outcome=Outcome.SKIPPED, http_status=None, duration_s=None, phases=Phases())
    )
    assert value(registry, "nexomon_probes_total", **job, outcome="skipped") == 1
    assert value(registry, "nexomon_probe_success", **job) == 1
    assert value(registry, "nexomon_probe_http_status_code", **job) == 200
    assert value(registry, "nexomon_probe_duration_seconds_count", **job) == 1


def test_missing_http_status_is_exported_as_zero(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.observe(result(outcome=Outcome.CONNECTION_ERROR, http_status=None, duration_s=None))
    job = {"target": "gw", "probe": "chat", "model": "m1"}
    assert value(registry, "nexomon_probe_http_status_code", **job) == 0
    assert value(registry, "nexomon_probe_success", **job) == 0
    assert value(registry, "nexomon_probe_duration_seconds_count", **job) is None


def test_negative_usage_from_the_gateway_is_ignored(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.observe(result(prompt_tokens=-5, completion_tokens=2, cost_usd=Decimal("-1")))
    assert value(registry, "nexomon_tokens_total", target="gw", model="m1", type="output") == 2
    assert value(registry, "nexomon_cost_usd_total", target="gw", model="m1") is None


def test_delisted_model_is_exported_as_zero(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.observe(result(probe="models", model="", model_ids=("m1", "m2")))
    exporter.observe(result(probe="models", model="", model_ids=("m1",)))
    assert value(registry, "nexomon_model_listed", target="gw", model="m1") == 1
    assert value(registry, "nexomon_model_listed", target="gw", model="m2") == 0
    assert value(registry, "nexomon_catalog_size", target="gw") == 1


def test_no_budget_cap_is_exported_as_infinity(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.set_budget(0.5, None)
    assert value(registry, "nexomon_budget_limit_usd") == math.inf


def model_values(registry: CollectorRegistry) -> set[str]:
    return {
        sample.labels["model"]
        for _, samples in scrape(registry).values()
        for sample in samples
        if "model" in sample.labels
    }


def test_models_beyond_max_models_are_left_out_counted_and_logged_once(
    exporter: Exporter, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    ids = tuple(f"model-{i}" for i in range(10))
    with caplog.at_level(logging.WARNING, logger="nexomon.exporter"):
        exporter.observe(result(probe="models", model="", model_ids=ids))
        for model in ids:
            exporter.observe(result(model=model))
        exporter.observe(result(probe="models", model="", model_ids=ids))
    assert model_values(registry) == {"", "model-0", "model-1", "model-2"}
    assert value(registry, "nexomon_models_over_limit", target="gw") == 7
    assert value(registry, "nexomon_catalog_size", target="gw") == 10
    warnings = [r for r in caplog.records if r.name == "nexomon.exporter"]
    assert len(warnings) == 1
    assert "gw" in warnings[0].getMessage()


def test_overlong_model_id_is_left_out(exporter: Exporter, registry: CollectorRegistry) -> None:
    long_id = "x" * (MAX_LABEL_LENGTH + 1)
    exporter.observe(result(model=long_id))
    exporter.set_interval("gw", "chat", long_id, 60)
    exporter.mark_unpriced("gw", long_id, True)
    assert model_values(registry) == set()
    assert value(registry, "nexomon_models_over_limit", target="gw") == 1


def test_limits_are_per_target(exporter: Exporter, registry: CollectorRegistry) -> None:
    exporter.configure_target("other", max_models=1)
    for model in ("a", "b"):
        exporter.observe(result(target="other", model=model))
        exporter.observe(result(target="gw", model=model))
    assert value(registry, "nexomon_models_over_limit", target="other") == 1
    assert value(registry, "nexomon_models_over_limit", target="gw") == 0


def test_forget_removes_every_series_of_the_model_and_frees_its_slot(
    busy: CollectorRegistry, exporter: Exporter
) -> None:
    exporter.forget("gw", "m1")
    assert "m1" not in model_values(busy)
    assert "m2" in model_values(busy)
    for model in ("n1", "n2"):  # m1's slot is free again: m2 + n1 + n2 = max_models
        exporter.observe(result(model=model))
    assert {"n1", "n2"} <= model_values(busy)
    assert value(busy, "nexomon_models_over_limit", target="gw") == 0


def test_delisted_model_keeps_listed_zero_until_a_newcomer_needs_its_slot(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    # max_models is 3 here: m1..m3 hold every slot.
    exporter.observe(result(probe="models", model="", model_ids=("m1", "m2", "m3")))
    for model in ("m1", "m2", "m3"):
        exporter.observe(result(model=model))
    exporter.observe(result(probe="models", model="", model_ids=("m1", "m2")))
    exporter.forget("gw", "m3", keep_listed=True)  # what the scheduler does on delisting
    assert value(registry, "nexomon_model_listed", target="gw", model="m3") == 0
    assert value(registry, "nexomon_probe_success", target="gw", probe="chat", model="m3") is None
    exporter.observe(result(model="n1"))  # a newcomer takes the delisted model's slot
    assert "m3" not in model_values(registry)
    assert value(registry, "nexomon_probe_success", target="gw", probe="chat", model="n1") == 1
    assert value(registry, "nexomon_models_over_limit", target="gw") == 0


def test_forgotten_model_starts_from_zero_when_it_comes_back(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.observe(result())
    exporter.forget("gw", "m1")
    exporter.observe(result(outcome=Outcome.SERVER_ERROR, http_status=500))
    labels = {"target": "gw", "probe": "chat", "model": "m1"}
    assert value(registry, "nexomon_probes_total", **labels, outcome="ok") == 0
    assert value(registry, "nexomon_probes_total", **labels, outcome="server_error") == 1


def test_forget_target_removes_all_its_series(busy: CollectorRegistry, exporter: Exporter) -> None:
    exporter.configure_target("other", max_models=3)
    exporter.observe(result(target="other"))
    exporter.forget_target("gw")
    targets = {
        sample.labels["target"]
        for _, samples in scrape(busy).values()
        for sample in samples
        if "target" in sample.labels
    }
    assert targets == {"other"}


def test_unknown_catalog_change_is_refused(exporter: Exporter) -> None:
    with pytest.raises(ValueError, match="change"):
        exporter.catalog_changed("gw", "renamed")


def test_failing_writer_stats_do_not_break_the_scrape(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    def broken() -> Stats:
        raise RuntimeError("writer gone")

    exporter.bind_writer(broken)
    assert b"nexomon_build_info" in generate_latest(registry)
    assert b"nexomon_store_pending_rows" not in generate_latest(registry)


def test_exporter_never_touches_the_global_registry() -> None:
    from prometheus_client import REGISTRY

    before = set(REGISTRY._names_to_collectors)
    Exporter(CollectorRegistry(), version="x")
    assert set(REGISTRY._names_to_collectors) == before


def test_two_exporters_on_one_registry_are_refused(registry: CollectorRegistry) -> None:
    Exporter(registry, version="x")
    with pytest.raises(ValueError, match="Duplicated"):
        Exporter(registry, version="x")


def test_promtool_check_metrics_is_clean(busy: CollectorRegistry) -> None:
    promtool = need_binary("promtool")
    proc = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(busy),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout.decode().strip() == ""


def test_unpriced_follows_every_toggle(exporter: Exporter, registry: CollectorRegistry) -> None:
    seen = []
    for unpriced in (True, True, False, False, True):
        exporter.mark_unpriced("gw", "m1", unpriced)
        seen.append(value(registry, "nexomon_model_unpriced", target="gw", model="m1"))
    assert seen == [1, 1, 0, 0, 1]


def test_unpriced_comes_back_after_forget(exporter: Exporter, registry: CollectorRegistry) -> None:
    # The unchanged-value shortcut must not survive forget(): the series is gone.
    for keep_listed in (False, True):
        exporter.mark_unpriced("gw", "m1", True)
        exporter.forget("gw", "m1", keep_listed=keep_listed)
        assert value(registry, "nexomon_model_unpriced", target="gw", model="m1") is None
        exporter.mark_unpriced("gw", "m1", True)
        assert value(registry, "nexomon_model_unpriced", target="gw", model="m1") == 1


def test_cached_children_are_dropped_by_forget_and_made_again(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    labels = {"target": "gw", "probe": "chat", "model": "m1"}
    for keep_listed in (False, True, False):
        exporter.set_interval("gw", "chat", "m1", 60)
        exporter.observe(result(retry_after_s=2.0))
        exporter.forget("gw", "m1", keep_listed=keep_listed)
        assert value(registry, "nexomon_probe_success", **labels) is None
        exporter.observe(result(outcome=Outcome.TIMEOUT, http_status=None, retry_after_s=None))
        assert value(registry, "nexomon_probes_total", **labels, outcome="ok") == 0
        assert value(registry, "nexomon_probes_total", **labels, outcome="timeout") == 1
        assert value(registry, "nexomon_probe_success", **labels) == 0
        assert value(registry, "nexomon_probe_interval_seconds", **labels) is None
        assert value(registry, "nexomon_tokens_total", target="gw", model="m1", type="input") == 12
        ratelimit = value(
            registry, "nexomon_ratelimit_retry_after_seconds", target="gw", model="m1"
        )
        assert ratelimit is None
        exporter.forget("gw", "m1")


def test_listed_follows_the_catalog(exporter: Exporter, registry: CollectorRegistry) -> None:
    seen = []
    for ids in (("m1", "m2"), ("m1",), ("m1",), ("m2", "m1")):
        exporter.observe(result(probe="models", model="", model_ids=ids))
        seen.append(
            tuple(
                value(registry, "nexomon_model_listed", target="gw", model=m) for m in ("m1", "m2")
            )
        )
    assert seen == [(1, 1), (1, 0), (1, 0), (1, 1)]


def test_substitution_sets_the_gauge_and_counts_every_substituted_answer(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    labels = {"target": "gw", "model": "m1"}
    exporter.observe(result(response_model=None))  # no model named: nothing known yet
    assert value(registry, "nexomon_model_substituted", **labels) is None
    for answered in ("m1-cheap", "m1-cheap", "m1"):
        exporter.observe(
            result(response_model=answered, substituted_by=None if answered == "m1" else answered)
        )
    assert value(registry, "nexomon_model_substitutions_total", **labels) == 2
    assert value(registry, "nexomon_model_substituted", **labels) == 0  # the last answer matched
    exporter.observe(result(response_model="other", substituted_by="other"))
    assert value(registry, "nexomon_model_substituted", **labels) == 1


def test_a_kind_keeps_its_last_figure_when_an_answer_omits_it(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.observe(result(ratelimit_limit_tokens=1000, ratelimit_remaining_tokens=10))
    exporter.observe(result(ratelimit_limit_tokens=None, ratelimit_remaining_tokens=None))
    tokens = {"target": "gw", "model": "m1", "kind": "tokens"}
    assert value(registry, "nexomon_ratelimit_remaining", **tokens) == 10
    assert value(registry, "nexomon_ratelimit_invalid_headers_total", target="gw") == 0


def test_a_contract_check_sets_its_gauge_only(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.set_interval("gw", "contract", "models_shape", 3600)
    exporter.observe(result(probe="contract", model="models_shape", prompt_tokens=None))
    assert value(registry, "nexomon_contract_check", target="gw", check="models_shape") == 1
    text = generate_latest(registry).decode()
    assert 'probe="contract"' not in text and 'model="models_shape"' not in text
    exporter.forget_contract("gw")
    assert value(registry, "nexomon_contract_check", target="gw", check="models_shape") is None
