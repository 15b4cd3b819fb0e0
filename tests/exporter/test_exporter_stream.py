"""The stream series: only for stream jobs, only from ok streams, gone with the model.

Read through the exporter's own fast scrape (``Exporter.render``, the
incremental exposition) and the registry, so both paths are covered.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.exporter.exporter import Exporter
from monitor.exporter.metrics import STREAM_CHUNK_BUCKETS, STREAM_TTFC_BUCKETS
from monitor.outcome import Outcome
from monitor.results import ProbeResult

STREAM_NAMES = (
    "nexomon_stream_time_to_first_chunk_seconds",
    "nexomon_stream_time_per_output_chunk_seconds",
    "nexomon_stream_output_tokens_per_second",
)
TM = {"location": "eu", "target": "gw", "model": "m"}


def result(probe: str = "stream", **changes: object) -> ProbeResult:
    base = ProbeResult(
        started_at=datetime(2025, 1, 2, tzinfo=UTC),
        location="eu",
        target="gw",
        probe=probe,
        model="m",
        outcome=Outcome.OK,
        http_status=200,
        duration_s=1.1,
        prompt_tokens=9,
        completion_tokens=40,
        total_tokens=49,
    )
    if probe == "stream":
        base = base.replace(
            ttft_s=0.3,
            output_tokens_per_s=50.0,
            chunk_gaps_s=(0.02, 0.02, 0.03),
            chunk_gap_p50_s=0.02,
            chunk_gap_p95_s=0.03,
            output_chunks=4,
        )
    return base.replace(**changes)


def scrape(exporter: Exporter, registry: CollectorRegistry) -> dict[str, list]:
    names: dict[str, list] = {}
    for family in text_string_to_metric_families(exporter.render(registry).decode()):
        names.setdefault(family.name, []).extend(family.samples)
    return names


def no_stream_samples(exporter: Exporter, registry: CollectorRegistry) -> bool:
    """No sample of a stream metric (their HELP and TYPE lines cost no series)."""
    scraped = scrape(exporter, registry)
    return all(not scraped.get(name) for name in STREAM_NAMES)


def make() -> tuple[Exporter, CollectorRegistry]:
    registry = CollectorRegistry()
    return Exporter(registry, version="t", location="eu"), registry


def test_a_daemon_without_streams_exports_no_stream_series() -> None:
    exporter, registry = make()
    exporter.set_interval("gw", "chat", "m", 60.0)
    exporter.observe(result(probe="chat"))
    assert no_stream_samples(exporter, registry)


def test_an_ok_stream_feeds_the_stream_series_not_the_duration_histogram() -> None:
    exporter, registry = make()
    exporter.observe(result(response_model="other", substituted_by="other"))
    exporter.observe(result(ttft_s=0.6, output_tokens_per_s=40.0, chunk_gaps_s=(0.5,)))
    value = registry.get_sample_value
    ttfc = "nexomon_stream_time_to_first_chunk_seconds"
    assert value(f"{ttfc}_count", TM) == 2 and value(f"{ttfc}_sum", TM) == 0.3 + 0.6
    assert value(f"{ttfc}_bucket", {**TM, "le": "0.5"}) == 1
    gaps = "nexomon_stream_time_per_output_chunk_seconds"
    assert value(f"{gaps}_count", TM) == 4  # one per gap, as OTel records each chunk
    assert value(f"{gaps}_bucket", {**TM, "le": "0.02"}) == 2
    assert value("nexomon_stream_output_tokens_per_second", TM) == 40.0  # the last one
    job = {**TM, "probe": "stream"}
    assert value("nexomon_probes_total", {**job, "outcome": "ok"}) == 2
    assert value("nexomon_probe_duration_seconds_count", job) is None
    assert value("nexomon_tokens_total", {**TM, "type": "output"}) == 80  # usage as for chat
    # The substitution pair stays the chat answers' (a stream's model is on its row).
    assert value("nexomon_model_substituted", TM) is None
    # The fast scrape agrees with the registry.
    scraped = scrape(exporter, registry)
    assert len(scraped[ttfc]) == len(STREAM_TTFC_BUCKETS) + 3
    assert len(scraped[gaps]) == len(STREAM_CHUNK_BUCKETS) + 3


def test_a_failed_stream_leaves_the_stream_series_alone() -> None:
    exporter, registry = make()
    exporter.observe(result(outcome=Outcome.TIMEOUT, http_status=200))
    assert no_stream_samples(exporter, registry)
    job = {**TM, "probe": "stream", "outcome": "timeout"}
    assert registry.get_sample_value("nexomon_probes_total", job) == 1


def test_forgetting_the_model_removes_its_stream_series() -> None:
    exporter, registry = make()
    exporter.observe(result())
    exporter.forget("gw", "m")
    assert no_stream_samples(exporter, registry)


def test_streaming_costs_a_model_45_more_series() -> None:
    # The stream job (9 outcomes, success, last run, HTTP status, interval), both
    # stream histograms (buckets + +Inf + _count + _sum) and the rate gauge:
    # docs/architecture.md's series budget, for a target that opts in.
    exporter, registry = make()
    exporter.set_interval("gw", "chat", "m", 60.0)
    exporter.observe(result(probe="chat"))
    before = Counter(s.labels.get("model") for v in scrape(exporter, registry).values() for s in v)
    exporter.set_interval("gw", "stream", "m", 600.0)
    exporter.observe(result())
    after = Counter(s.labels.get("model") for v in scrape(exporter, registry).values() for s in v)
    assert after["m"] - before["m"] == 13 + 16 + 15 + 1
