"""The metric objects of docs/architecture.md's metric table, on one private registry.

``MetricSet`` creates every nexomon metric (names, help, types, label sets
are contracts: see docs/architecture.md and monitor.exporter.exporter's docstring) on the
registry it is given and remembers each metric's label names in order.
It also sets the process-wide (unlabelled) ones; ``Exporter`` is a
MetricSet that also feeds and renders the rest.

The ``location`` label is not among the label names here: it is one
constant per process, added to every sample where the families are
collected (``monitor.exporter.collectors``) and into the pre-rendered line
prefixes (``monitor.exporter.exposition``), so no ``labels()`` call and no
cached child carries it.
"""

from __future__ import annotations

import math
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase


def _quarter_octaves(low: float, high: float) -> tuple[float, ...]:
    """``low * 2**(k/4)`` up to ``high``, to 4 significant digits (readable ``le`` values)."""
    steps = round(4 * math.log2(high / low))
    return tuple(float(f"{low * 2 ** (k / 4):.4g}") for k in range(steps + 1))


# Latency of ok probes: OpenTelemetry GenAI's range (0.01 to 81.92 s) with
# every OTel bound kept, and quarter-octave steps (factor 1.19) from 0.02 to
# 20.48 s, where probe latencies live. Why: histogram_quantile interpolates
# within a bucket, so with OTel's doubling buckets a p95 could be ~20 % off
# the report's (10 % log buckets, monitor.store.histogram); with factor 1.19
# it stays within ~10 % (docs/architecture.md, "Latency that agrees").
# Quarter octaves over the whole range (53 bounds) would cost 9 more series
# per model than the budget of 70 allows.
DURATION_BUCKETS = (0.01, *_quarter_octaves(0.02, 20.48), 40.96, 81.92)
# Phases are per (target, probe), not per model, so they can afford the same
# fine layout, plus two bounds below 10 ms for connections to a near gateway.
PHASE_BUCKETS = (0.0025, 0.005, *DURATION_BUCKETS)
# model_metrics = "compact" (issue 20): octaves over the same range, 16 bounds
# instead of 46. The phases split a probe's time into network and gateway
# shares, a question octaves answer; at 100 targets the fine layout was 2.4 MB
# of a 12 MB scrape. The latency histogram, the figure that must agree with
# the report, keeps DURATION_BUCKETS in both modes.
PHASE_BUCKETS_COMPACT = (0.0025, 0.005, *(0.01 * 2**k for k in range(14)))
# The phases with a distribution: connect is connect + tls (set-up of a new
# connection, 0 on a reused one), processing is request sent to first byte.
HISTOGRAM_PHASES = ("connect", "processing")
# Streams (opt-in, monitor.probes.stream): OpenTelemetry GenAI's client metrics
# gen_ai.client.operation.time_to_first_chunk and .time_per_output_chunk, with
# modest layouts (16 and 15 series a model): a gateway's first chunk takes
# 50 ms to seconds, its chunks come every few ms to a few hundred.
STREAM_TTFC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 7.5, 10.0, 20.0)
STREAM_CHUNK_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CATALOG_CHANGES = ("added", "removed")

_JOB = ("target", "probe", "model")
_TM = ("target", "model")
_TMK = (*_TM, "kind")
LOCATION_LABEL = "location"  # on every series; see the module docstring


class MetricSet:
    """Every nexomon metric, created on ``inner``; ``_labelnames`` maps each to its labels."""

    def __init__(
        self, inner: CollectorRegistry, *, version: str, location: str, compact: bool = False
    ) -> None:
        """``compact``: the phase histograms get ``PHASE_BUCKETS_COMPACT``."""
        self.location = location
        # Label names per metric, in order, so forget() can call remove().
        self._labelnames: dict[MetricWrapperBase, tuple[str, ...]] = {}

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            metric = Gauge(name, doc, labels, registry=inner)
            self._labelnames[metric] = labels
            return metric

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            metric = Counter(name, doc, labels, registry=inner)
            self._labelnames[metric] = labels
            return metric

        self.success = gauge(
            "nexomon_probe_success", "1 if the last completed probe succeeded.", _JOB
        )
        self.duration = Histogram(
            "nexomon_probe_duration_seconds",
            "Latency of the probes that answered ok (gateway time, no client-side queueing); "
            "failed probes count only in nexomon_probes_total.",
            _JOB,
            buckets=DURATION_BUCKETS,
            registry=inner,
        )
        self._labelnames[self.duration] = _JOB
        self.phase = Histogram(
            "nexomon_probe_phase_duration_seconds",
            "Time per phase of the probes that answered ok, per target and probe: connect "
            "(connect + tls, 0 on a reused connection) and processing (to the first byte).",
            ("target", "probe", "phase"),
            buckets=PHASE_BUCKETS_COMPACT if compact else PHASE_BUCKETS,
            registry=inner,
        )
        self._labelnames[self.phase] = ("target", "probe", "phase")
        self.probes = counter("nexomon_probes_total", "Probes by outcome.", (*_JOB, "outcome"))
        self.last_run = gauge(
            "nexomon_probe_last_run_timestamp_seconds", "When the last probe finished.", _JOB
        )
        self.http_status = gauge(
            "nexomon_probe_http_status_code", "Last HTTP status (0 when none).", _JOB
        )
        self.interval = gauge(
            "nexomon_probe_interval_seconds", "Configured interval of the probe job.", _JOB
        )
        self.listed = gauge("nexomon_model_listed", "1 while /models lists the model, else 0.", _TM)
        self.catalog_size = gauge(
            "nexomon_catalog_size", "Models in the last /models answer.", ("target",)
        )
        self.catalog_changes = counter(
            "nexomon_catalog_changes_total",
            "Models added to or removed from /models.",
            ("target", "change"),
        )
        self.catalog_flaps = counter(
            "nexomon_catalog_flaps_total",
            "Catalog changes of a model within an hour of its last logged change (not logged).",
            ("target",),
        )
        self.catalog_invalid = gauge(
            "nexomon_catalog_invalid_entries",
            "Entries of the last /models answer skipped as invalid (no usable id).",
            ("target",),
        )
        self.over_limit = gauge(
            "nexomon_models_over_limit",
            "Model ids left out of the metrics (beyond max_models or too long).",
            ("target",),
        )
        self.tokens = counter(
            "nexomon_tokens_total", "Tokens the probes used, from usage.", (*_TM, "type")
        )
        self.cost = counter("nexomon_cost_usd_total", "Probe spend at configured prices.", _TM)
        self.unpriced = gauge(
            "nexomon_model_unpriced", "1 when tokens were spent on a model with no price.", _TM
        )
        # kind: "requests" (NexoRouter's unsuffixed headers) or "tokens", from
        # whichever header family the gateway sends (monitor.gateway.ratelimit).
        self.rl_limit = gauge(
            "nexomon_ratelimit_limit", "Last rate-limit quota announced, by kind.", _TMK
        )
        self.rl_remaining = gauge(
            "nexomon_ratelimit_remaining", "Last rate-limit remaining count, by kind.", _TMK
        )
        self.rl_reset = gauge(
            "nexomon_ratelimit_reset_seconds",
            "Seconds to the rate-limit window's reset, as announced by the last answer, by kind.",
            _TMK,
        )
        self.rl_invalid = counter(
            "nexomon_ratelimit_invalid_headers_total",
            "Rate-limit header values that did not parse (ignored, the probe unaffected).",
            ("target",),
        )
        self.substituted = gauge(
            "nexomon_model_substituted",
            "1 when the last chat answer named another model than the one asked for, else 0.",
            _TM,
        )
        self.contract_check = gauge(
            "nexomon_contract_check",
            "1 when the last run of a documented-contract check passed, else 0.",
            ("target", "check"),
        )
        self.substitutions = counter(
            "nexomon_model_substitutions_total",
            "Chat answers that named another model than the one asked for.",
            _TM,
        )
        self.retry_after = gauge(
            "nexomon_ratelimit_retry_after_seconds", "Last retry-after, in seconds.", _TM
        )
        # Only stream jobs feed these three (monitor.exporter.stream_signals): a
        # daemon without stream_interval exports none of them.
        self.stream_ttfc = Histogram(
            "nexomon_stream_time_to_first_chunk_seconds",
            "Ok streams: request sent to the first output chunk (OTel GenAI time to first chunk).",
            _TM,
            buckets=STREAM_TTFC_BUCKETS,
            registry=inner,
        )
        self._labelnames[self.stream_ttfc] = _TM
        self.stream_chunk = Histogram(
            "nexomon_stream_time_per_output_chunk_seconds",
            "Ok streams: gap between consecutive output chunks (OTel GenAI time per output chunk).",
            _TM,
            buckets=STREAM_CHUNK_BUCKETS,
            registry=inner,
        )
        self._labelnames[self.stream_chunk] = _TM
        self.stream_rate = gauge(
            "nexomon_stream_output_tokens_per_second",
            "Last ok stream: output tokens per second after the first one.",
            _TM,
        )
        self.budget_spent = gauge("nexomon_budget_spent_usd", "Today's probe spend (UTC day).")
        self.budget_limit = gauge(
            "nexomon_budget_limit_usd", "Today's spend cap; +Inf when there is none."
        )
        self.lag = Histogram(
            "nexomon_scheduler_lag_seconds",
            "Actual job start minus scheduled start.",
            buckets=LAG_BUCKETS,
            registry=inner,
        )
        self.misfires = counter(
            "nexomon_scheduler_misfires_total", "Job runs the scheduler missed."
        )
        self.errors = counter(
            "nexomon_probe_errors_total", "Exceptions caught in the probe runner (bugs)."
        )
        self.reload_ok = gauge(
            "nexomon_config_last_reload_successful", "0 after a config reload that failed."
        )
        self.prober_active = gauge(
            "nexomon_prober_active",
            "1 while this process probes its location; 0 on hot standby (another is active).",
        )
        self.build_info = gauge("nexomon_build_info", "Build information.", ("version",))

        self.budget_limit.set(math.inf)
        self.reload_ok.set(1)
        self.build_info.labels(version=version).set(1)

    # -- the process-wide metrics (no labels but location) ------------------

    def observe_lag(self, seconds: float) -> None:
        """Record how late a job started (an early start counts as 0)."""
        self.lag.observe(max(0.0, seconds))

    def misfire(self) -> None:
        self.misfires.inc()

    def probe_error(self) -> None:
        self.errors.inc()

    def set_budget(self, spent_usd: Decimal | float, limit_usd: Decimal | float | None) -> None:
        """Today's probe spend and cap; no cap is exported as +Inf."""
        self.budget_spent.set(float(spent_usd))
        self.budget_limit.set(math.inf if limit_usd is None else float(limit_usd))

    def set_reload_ok(self, ok: bool) -> None:
        self.reload_ok.set(1 if ok else 0)

    def set_prober_active(self, active: bool) -> None:
        self.prober_active.set(1 if active else 0)

    # -- per target, with no cached children ------------------------------------

    def catalog_flapped(self, target: str, count: int = 1) -> None:
        """Count catalog changes the log left out (a model flapping within the hour)."""
        self.catalog_flaps.labels(target=target).inc(count)

    def catalog_changed(self, target: str, change: str, count: int = 1) -> None:
        """Count models added to or removed from a target's /models answer."""
        if change not in CATALOG_CHANGES:
            raise ValueError(f"change must be one of {CATALOG_CHANGES}, not {change!r}")
        if count > 0:
            self.catalog_changes.labels(target=target, change=change).inc(count)
