"""The location label, the latency histograms' population and buckets, and the series budget.

Contracts (docs/architecture.md, "Location" and "Latency that agrees"):
every series carries ``location``; ``nexomon_probe_duration_seconds`` and
``nexomon_probe_phase_duration_seconds`` count only ok probes with a
duration (the report's population); a real Prometheus (promtool's engine)
reading the exported buckets agrees with the report's percentiles within
10 %; a model costs at most 70 series.
"""

from __future__ import annotations

import itertools
import math
import random
import subprocess
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from testutil import need_binary

from monitor.exporter.exporter import Exporter
from monitor.exporter.metrics import DURATION_BUCKETS, HISTOGRAM_PHASES, PHASE_BUCKETS
from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.simulator.scenario import Latency
from monitor.store.histogram import LatencyHistogram

LOCATION = "ap-south"
STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
OTEL_BUCKETS = tuple(0.01 * 2**k for k in range(14))  # 0.01 to 81.92, doubling
SERIES_PER_MODEL_BUDGET = 70


def result(**changes: object) -> ProbeResult:
    base = ProbeResult(
        started_at=STARTED,
        location=LOCATION,
        target="gw",
        probe="chat",
        model="m1",
        outcome=Outcome.OK,
        http_status=200,
        duration_s=0.25,
        phases=Phases(resolve=None, connect=0.002, tls=0.003, processing=0.2, transfer=0.045),
        prompt_tokens=12,
        completion_tokens=3,
        total_tokens=15,
        cost_usd=Decimal("0.0000024"),
        ratelimit_limit=60,
        ratelimit_remaining=59,
        retry_after_s=1.0,
    )
    return base.replace(**changes)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def exporter(registry: CollectorRegistry) -> Exporter:
    exp = Exporter(registry, version="1.2.3", location=LOCATION)
    exp.configure_target("gw", max_models=100)
    return exp


def samples(body: bytes) -> list:
    return [s for f in text_string_to_metric_families(body.decode()) for s in f.samples]


def value(exporter: Exporter, registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value from the fast render path; 0 when the series is absent."""
    labels = {"location": LOCATION, **labels}
    found = [
        s.value for s in samples(exporter.render(registry)) if s.name == name and s.labels == labels
    ]
    return found[0] if found else 0.0


# -- location ------------------------------------------------------------------


def test_every_series_on_both_render_paths_carries_the_location(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.observe(result(probe="models", model="", model_ids=("m1", "m2"), invalid_entries=0))
    exporter.observe(result())
    exporter.observe(result(model="m2", outcome=Outcome.SERVER_ERROR, http_status=500))
    exporter.set_interval("gw", "chat", "m1", 60)
    exporter.mark_unpriced("gw", "m2", True)
    exporter.catalog_changed("gw", "added", 2)
    exporter.catalog_flapped("gw")
    exporter.observe_lag(0.01)
    exporter.set_budget(Decimal("0.5"), None)

    class Stats:
        pending = written_total = errors_total = dropped_total = 0
        refused_total = loop_errors_total = unjournaled_total = 0

        @staticmethod
        def health() -> None:
            return None

    exporter.bind_writer(Stats)
    for body in (exporter.render(registry), generate_latest(registry)):
        found = samples(body)
        assert len(found) > 100
        assert {s.labels.get("location") for s in found} == {LOCATION}
        names = {s.name for s in found}
        process_wide = {"nexomon_budget_spent_usd", "nexomon_store_writer_up", "nexomon_build_info"}
        assert process_wide <= names


def test_the_location_is_in_the_pre_rendered_prefix(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    # A re-render fills cached templates with values only: the label must be in them.
    exporter.observe(result())
    exporter.render(registry)
    exporter.observe(result(duration_s=0.5))
    lines = [
        line
        for line in exporter.render(registry).decode().splitlines()
        if line.startswith("nexomon_probe_success")
    ]
    assert lines == [
        f'nexomon_probe_success{{location="{LOCATION}",model="m1",probe="chat",target="gw"}} 1.0'
    ]


def test_the_default_location_is_the_config_default(registry: CollectorRegistry) -> None:
    exporter = Exporter(registry, version="x")
    assert {s.labels["location"] for s in samples(exporter.render(registry))} == {"default"}


# -- the histograms' population ----------------------------------------------------------


def test_a_failed_probe_adds_no_latency_sample(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    job = {"target": "gw", "probe": "chat", "model": "m1"}
    phase = {"target": "gw", "probe": "chat", "phase": "processing"}
    exporter.observe(result(duration_s=0.25))
    for outcome in Outcome:
        if outcome is not Outcome.OK:
            exporter.observe(result(outcome=outcome, http_status=500, duration_s=0.06))
    assert value(exporter, registry, "nexomon_probe_duration_seconds_count", **job) == 1
    assert value(exporter, registry, "nexomon_probe_duration_seconds_sum", **job) == 0.25
    assert value(exporter, registry, "nexomon_probe_phase_duration_seconds_count", **phase) == 1
    # ...while the failures are counted where they belong.
    assert value(exporter, registry, "nexomon_probes_total", **job, outcome="server_error") == 1


def test_a_model_that_never_answered_ok_has_no_latency_series(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.observe(result(outcome=Outcome.TIMEOUT, http_status=None, duration_s=30.0))
    names = {s.name for s in samples(exporter.render(registry))}
    assert "nexomon_probes_total" in names
    assert not {n for n in names if n.startswith("nexomon_probe_duration_seconds")}
    assert not {n for n in names if n.startswith("nexomon_probe_phase_duration_seconds")}


def test_an_ok_result_without_a_duration_is_no_latency_sample(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    # The report skips it too (monitor.store.aggregate.add_raw_row).
    exporter.observe(result(duration_s=None))
    job = {"target": "gw", "probe": "chat", "model": "m1"}
    assert value(exporter, registry, "nexomon_probe_duration_seconds_count", **job) == 0
    assert value(exporter, registry, "nexomon_probe_success", **job) == 1


# -- the phase histogram -------------------------------------------------------------


def test_phases_are_connect_plus_tls_and_processing_per_target_and_probe(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.observe(result(model="m1"))  # connect 2 ms + tls 3 ms
    exporter.observe(result(model="m2", phases=Phases(connect=0.004, tls=None, processing=0.3)))
    exporter.observe(result(model="m3", phases=Phases(connect=0.0, tls=0.0, processing=0.1)))

    def phase(name: str, phase: str) -> float:
        return value(
            exporter,
            registry,
            f"nexomon_probe_phase_duration_seconds_{name}",
            target="gw",
            probe="chat",
            phase=phase,
        )

    assert phase("count", "connect") == phase("count", "processing") == 3  # all models
    assert phase("sum", "connect") == pytest.approx(0.009)
    assert phase("sum", "processing") == pytest.approx(0.6)
    # A reused connection (no set-up) lands in the lowest bucket.
    lowest = value(
        exporter,
        registry,
        "nexomon_probe_phase_duration_seconds_bucket",
        target="gw",
        probe="chat",
        phase="connect",
        le=str(PHASE_BUCKETS[0]),
    )
    assert lowest == 1
    phases = {
        s.labels["phase"]
        for s in samples(exporter.render(registry))
        if s.name.startswith("nexomon_probe_phase_duration_seconds")
    }
    assert phases == set(HISTOGRAM_PHASES) == {"connect", "processing"}


def test_forgetting_a_model_keeps_the_phases_and_forgetting_the_target_drops_them(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.observe(result())
    labels = {"target": "gw", "probe": "chat", "phase": "connect"}
    exporter.forget("gw", "m1")
    assert value(exporter, registry, "nexomon_probe_phase_duration_seconds_count", **labels) == 1
    exporter.forget_target("gw")
    assert value(exporter, registry, "nexomon_probe_phase_duration_seconds_count", **labels) == 0
    exporter.configure_target("gw", 10)
    exporter.observe(result())  # comes back from zero
    assert value(exporter, registry, "nexomon_probe_phase_duration_seconds_count", **labels) == 1


# -- buckets ---------------------------------------------------------------------


def test_duration_buckets_keep_the_otel_bounds_and_step_by_a_quarter_octave() -> None:
    bounds = list(DURATION_BUCKETS)
    assert bounds == sorted(set(bounds))
    assert bounds[0] == 0.01 and bounds[-1] == 81.92
    assert all(any(math.isclose(b, o) for b in bounds) for o in OTEL_BUCKETS)
    fine = [b for b in bounds if 0.02 <= b <= 20.48]
    ratios = [hi / lo for lo, hi in itertools.pairwise(fine)]
    assert max(ratios) < 2**0.25 * 1.001 and min(ratios) > 2**0.25 * 0.999
    assert len(bounds) == 44
    assert PHASE_BUCKETS[-len(bounds) :] == DURATION_BUCKETS and PHASE_BUCKETS[0] < 0.01


def test_the_exported_buckets_are_the_layout(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.observe(result())
    bounds = sorted(
        float(s.labels["le"])
        for s in samples(exporter.render(registry))
        if s.name == "nexomon_probe_duration_seconds_bucket"
    )
    assert bounds == [*DURATION_BUCKETS, math.inf]


# -- agreement with the report, through a real Prometheus engine -----------------------


def _promtool_quantiles(
    tmp_path: Path, buckets: dict[str, float], expected: dict[float, float]
) -> subprocess.CompletedProcess[str]:
    """Run promtool's PromQL engine: histogram_quantile over the buckets vs ``expected``.

    The buckets go from 0 (at 0m) to their counts (at 1m); each case asserts
    that |histogram_quantile(q, rate(...[2m])) / expected - 1| < 0.1.
    """
    series = [
        {
            "series": f'nexomon_probe_duration_seconds_bucket{{location="{LOCATION}",le="{le}"}}',
            "values": f"0 {count:g}",
        }
        for le, count in buckets.items()
    ]
    cases = [
        {
            "expr": (
                f"abs(histogram_quantile({q}, sum by (le) "
                f"(rate(nexomon_probe_duration_seconds_bucket[2m]))) / {want!r} - 1) < bool 0.1"
            ),
            "eval_time": "1m",
            "exp_samples": [{"labels": "{}", "value": 1}],
        }
        for q, want in expected.items()
    ]
    test = {
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": cases}],
    }
    path = tmp_path / "agree.test.yml"
    path.write_text(yaml.safe_dump(test), encoding="utf-8")
    return subprocess.run(
        [need_binary("promtool"), "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _scraped_buckets(exporter: Exporter, registry: CollectorRegistry) -> dict[str, float]:
    return {
        s.labels["le"]: s.value
        for s in samples(exporter.render(registry))
        if s.name == "nexomon_probe_duration_seconds_bucket"
    }


def test_prometheus_percentiles_agree_with_the_report_within_10_percent(
    exporter: Exporter, registry: CollectorRegistry, tmp_path: Path
) -> None:
    # The simulator's default latency (lognormal, median 250 ms, p99 1200 ms), fixed seed.
    rng = random.Random(17)
    latency = Latency(dist="lognormal", median=250, p99=1200)
    report = LatencyHistogram()
    for _ in range(2000):
        seconds = latency.sample_s(rng)
        exporter.observe(result(duration_s=seconds))
        report.add(seconds)
        # Failures answered fast must not pull the percentiles down.
        exporter.observe(result(outcome=Outcome.SERVER_ERROR, http_status=500, duration_s=0.03))
    expected = {q: report.quantile(q) for q in (0.5, 0.95, 0.99)}
    proc = _promtool_quantiles(tmp_path, _scraped_buckets(exporter, registry), expected)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_agreement_check_can_fail_with_doubling_buckets(tmp_path: Path) -> None:
    # The same check on OpenTelemetry's doubling buckets (the old layout) fails:
    # the test above is not vacuous.
    rng = random.Random(17)
    latency = Latency(dist="lognormal", median=250, p99=1200)
    report = LatencyHistogram()
    counts: Counter[float] = Counter()
    for _ in range(2000):
        seconds = latency.sample_s(rng)
        report.add(seconds)
        counts[next((b for b in OTEL_BUCKETS if seconds <= b), math.inf)] += 1
    cumulative, total = {}, 0
    for bound in [*OTEL_BUCKETS, math.inf]:
        total += counts[bound]
        cumulative["+Inf" if bound == math.inf else repr(bound)] = total
    expected = {q: report.quantile(q) for q in (0.5, 0.95, 0.99)}
    proc = _promtool_quantiles(tmp_path, cumulative, expected)
    assert proc.returncode != 0
    assert "FAILED" in proc.stdout + proc.stderr


# -- the series budget ----------------------------------------------------------------


def _exposition(models: int, **extra: object) -> bytes:
    """A real exposition: one target, ``models`` models, every per-model series present
    (NexoRouter's headers: the requests kind, no reset; ``extra`` adds fields)."""
    registry = CollectorRegistry()
    exporter = Exporter(registry, version="1.2.3", location=LOCATION)
    exporter.configure_target("gw", max_models=1000)
    ids = tuple(f"model-{i:04d}" for i in range(models))
    exporter.set_interval("gw", "models", "", 60)
    exporter.observe(result(probe="models", model="", model_ids=ids, invalid_entries=0))
    for model in ids:
        exporter.set_interval("gw", "chat", model, 300)
        exporter.observe(result(model=model, response_model=model, **extra))
        exporter.mark_unpriced("gw", model, False)
    return exporter.render(registry)


def test_a_model_costs_at_most_70_series() -> None:
    one, many = _exposition(1), _exposition(11)
    per_model = Counter(s.labels["model"] for s in samples(many) if s.labels.get("model"))
    assert len(per_model) == 11
    assert set(per_model.values()) == {70}  # docs/architecture.md's budget table
    assert max(per_model.values()) <= SERIES_PER_MODEL_BUDGET
    # What a model adds to the whole exposition, per-target series included.
    added = (len(samples(many)) - len(samples(one))) / 10
    assert added <= SERIES_PER_MODEL_BUDGET


def test_a_gateway_announcing_both_kinds_and_resets_costs_four_more() -> None:
    # OpenAI style: limit, remaining and reset for requests and tokens (6 gauges
    # instead of NexoRouter's 2), the budget table's footnote.
    both = {
        "ratelimit_reset_s": 1.0,
        "ratelimit_limit_tokens": 1000,
        "ratelimit_remaining_tokens": 900,
        "ratelimit_reset_tokens_s": 0.2,
    }
    per_model = Counter(
        s.labels["model"] for s in samples(_exposition(3, **both)) if s.labels.get("model")
    )
    assert set(per_model.values()) == {74}
