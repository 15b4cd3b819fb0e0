"""``model_metrics = "compact"``: per-target latency histograms, series that appear when non-zero.

The same Exporter as tests/exporter/test_exporter.py, built with ``compact=True``;
every assertion reads the real exposition (``Exporter.render``, what /metrics serves)
parsed by prometheus_client's own parser. The daemon's path from the config key to
the scrape is in tests/daemon/test_compact_metrics.py.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.exporter.exporter import Exporter
from monitor.outcome import Outcome
from tests.exporter.test_exporter import LOCATION, result


def samples(
    exporter: Exporter, registry: CollectorRegistry
) -> list[tuple[str, dict[str, str], float]]:
    text = exporter.render(registry).decode()
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def make(compact: bool) -> tuple[Exporter, CollectorRegistry]:
    registry = CollectorRegistry()
    exporter = Exporter(registry, version="1", location=LOCATION, compact=compact)
    exporter.configure_target("gw", max_models=10)
    return exporter, registry


def per_model(rows: list[tuple[str, dict[str, str], float]], model: str) -> list[str]:
    return sorted(
        f"{name}{'/' + labels['outcome'] if 'outcome' in labels else ''}"
        for name, labels, _ in rows
        if labels.get("model") == model
    )


def test_a_chat_model_has_seven_series_not_sixty_six() -> None:
    # Without a price or rate-limit headers; each adds its own series in both modes.
    answer = result(model="m1", cost_usd=None, ratelimit_limit=None, ratelimit_remaining=None)
    full, full_registry = make(compact=False)
    compact, compact_registry = make(compact=True)
    for exporter in (full, compact):
        exporter.set_interval("gw", "chat", "m1", 300)
        exporter.observe(answer)
        exporter.mark_unpriced("gw", "m1", False)
        exporter.observe(result(probe="models", model="", model_ids=("m1",), prompt_tokens=None))
    compact_rows = samples(compact, compact_registry)
    assert per_model(compact_rows, "m1") == [
        "nexomon_model_listed",
        "nexomon_probe_interval_seconds",
        "nexomon_probe_last_run_timestamp_seconds",
        "nexomon_probe_success",
        "nexomon_probes_total/ok",
        "nexomon_tokens_total",
        "nexomon_tokens_total",
    ]
    full_rows = per_model(samples(full, full_registry), "m1")
    assert len(full_rows) > 60  # every outcome at 0, the histogram's buckets, unpriced 0
    assert "nexomon_probe_duration_seconds_count" in full_rows


def test_the_latency_histogram_is_per_target_with_an_empty_model() -> None:
    exporter, registry = make(compact=True)
    for model, seconds in (("m1", 0.25), ("m2", 0.5), ("m3", 4.0)):
        exporter.observe(result(model=model, duration_s=seconds))
    exporter.observe(result(model="m3", outcome=Outcome.SERVER_ERROR, http_status=500))
    rows = samples(exporter, registry)
    counts = [
        (labels, value)
        for name, labels, value in rows
        if name == "nexomon_probe_duration_seconds_count"
    ]
    assert counts == [({"location": LOCATION, "target": "gw", "probe": "chat", "model": ""}, 3.0)]
    total = next(
        value
        for name, labels, value in rows
        if name == "nexomon_probe_duration_seconds_sum" and labels["probe"] == "chat"
    )
    assert total == 4.75  # ok answers only, as in full mode


def test_an_outcome_appears_with_its_first_count() -> None:
    exporter, registry = make(compact=True)
    exporter.set_interval("gw", "chat", "m1", 60)  # the job exists: no outcome yet
    assert not [n for n, _, _ in samples(exporter, registry) if n == "nexomon_probes_total"]
    exporter.observe(result(model="m1", outcome=Outcome.TIMEOUT, http_status=None))
    exporter.observe(result(model="m1", outcome=Outcome.TIMEOUT, http_status=None))
    exporter.observe(result(model="m1"))
    outcomes = {
        labels["outcome"]: value
        for name, labels, value in samples(exporter, registry)
        if name == "nexomon_probes_total" and labels["model"] == "m1"
    }
    assert outcomes == {"timeout": 2.0, "ok": 1.0}


def test_the_http_status_appears_with_the_first_answer_other_than_200_and_then_stays() -> None:
    exporter, registry = make(compact=True)

    def statuses() -> dict[str, float]:
        return {
            labels["model"]: value
            for name, labels, value in samples(exporter, registry)
            if name == "nexomon_probe_http_status_code" and labels["probe"] == "chat"
        }

    exporter.observe(result(model="m1"))
    exporter.observe(result(model="m2"))
    assert statuses() == {}
    exporter.observe(result(model="m1", outcome=Outcome.SERVER_ERROR, http_status=503))
    exporter.observe(result(model="m2", outcome=Outcome.TIMEOUT, http_status=None))
    assert statuses() == {"m1": 503.0, "m2": 0.0}
    exporter.observe(result(model="m1"))  # answered again: the series follows, at 200
    assert statuses() == {"m1": 200.0, "m2": 0.0}


def test_the_phase_histograms_have_octave_buckets() -> None:
    bounds: dict[bool, list[str]] = {}
    for compact in (False, True):
        exporter, registry = make(compact=compact)
        exporter.observe(result(model="m1"))
        bounds[compact] = [
            labels["le"]
            for name, labels, _ in samples(exporter, registry)
            if name == "nexomon_probe_phase_duration_seconds_bucket"
            and labels["phase"] == "connect"
        ]
    assert len(bounds[False]) == 47  # 46 bounds and +Inf
    assert bounds[True] == [
        "0.0025", "0.005", "0.01", "0.02", "0.04", "0.08", "0.16", "0.32", "0.64",
        "1.28", "2.56", "5.12", "10.24", "20.48", "40.96", "81.92", "+Inf",
    ]  # fmt: skip


def test_unpriced_and_substitution_appear_when_they_first_happen_and_then_stay() -> None:
    exporter, registry = make(compact=True)
    exporter.mark_unpriced("gw", "m1", False)
    exporter.observe(result(model="m1", response_model="m1"))
    names = {n for n, labels, _ in samples(exporter, registry) if labels.get("model") == "m1"}
    assert not names & {
        "nexomon_model_unpriced",
        "nexomon_model_substituted",
        "nexomon_model_substitutions_total",
    }

    exporter.mark_unpriced("gw", "m1", True)
    exporter.observe(result(model="m1", response_model="other", substituted_by="other"))
    exporter.mark_unpriced("gw", "m1", False)  # back to priced: the series stays, at 0
    exporter.observe(result(model="m1", response_model="m1"))  # answered by itself again
    values = {
        name: value
        for name, labels, value in samples(exporter, registry)
        if labels.get("model") == "m1"
        and name
        in {
            "nexomon_model_unpriced",
            "nexomon_model_substituted",
            "nexomon_model_substitutions_total",
        }
    }
    assert values == {
        "nexomon_model_unpriced": 0.0,
        "nexomon_model_substituted": 0.0,
        "nexomon_model_substitutions_total": 1.0,
    }


def test_forget_keeps_the_target_histogram_and_forget_target_removes_it() -> None:
    exporter, registry = make(compact=True)
    exporter.observe(result(model="m1"))
    exporter.observe(result(model="m2"))
    exporter.forget("gw", "m1")
    rows = samples(exporter, registry)
    assert not [1 for _, labels, _ in rows if labels.get("model") == "m1"]
    assert ("nexomon_probe_duration_seconds_count", 2.0) in [
        (n, v)
        for n, labels, v in rows
        if labels.get("probe") == "chat" and labels.get("model") == ""
    ]
    exporter.observe(result(model="m2"))  # the job's cached child is still the target's
    exporter.forget_target("gw")
    assert not [1 for _, labels, _ in samples(exporter, registry) if labels.get("target") == "gw"]
    exporter.configure_target("gw", max_models=10)
    exporter.observe(result(model="m1"))  # a fresh histogram after forget_target
    count = [
        v
        for n, labels, v in samples(exporter, registry)
        if n == "nexomon_probe_duration_seconds_count" and labels.get("probe") == "chat"
    ]
    assert count == [1.0]
