"""Prometheus metrics: every series of DESIGN.md's metric table, on an explicit registry.

Contracts:

- Metric names, types and label sets are those of DESIGN.md (plus
  ``nexomon_probe_interval_seconds``, ``nexomon_models_over_limit``,
  ``nexomon_probe_errors_total`` and ``nexomon_scheduler_misfires_total``).
  Nothing is registered on prometheus_client's global ``REGISTRY``.
- Label values are bounded. A target exports at most ``max_models`` distinct
  ``model`` values, first come first served; ids beyond that, and ids longer
  than ``MAX_LABEL_LENGTH`` (model ids come from an untrusted gateway), are
  left out of every metric, counted in ``nexomon_models_over_limit{target}``
  and logged once per target. A model keeps its slot until ``forget()``.
- No ``_created`` series. prometheus_client adds one per counter and
  histogram child; in the 0.0.4 text format they become extra gauge
  families that double the series count and that nothing here reads.
  ``disable_created_metrics()`` would switch them off process-wide (a
  hidden global), so the metrics live in private registries and a small
  collector on the caller's registry forwards them without ``_created``.
- The scrape: ``render(registry)`` is a drop-in for ``generate_latest``
  (``web.build_app(render_metrics=...)``) with the same samples and values.
  At 1,000 models there are ~37,000 samples and ``generate_latest`` costs
  ~10 µs each (label sorting and escaping, float formatting): 0.6-0.8 s a
  scrape, against a 100 ms target. Disabling ``_created`` series (process-
  wide) only halves that (31k samples: 670 -> 327 ms). But values change
  only when a result arrives (1,000 models every 5 min: ~3 results/s), so
  the per-(target, model) families (every metric with both labels) are
  rendered incrementally by ``monitor.exposition.SeriesExposition``:
  ``_child`` (the only way those series change) and ``_forget`` mark the
  series, and a scrape re-renders only marked ones, reading values from the
  prometheus_client children (still the single source of truth), with
  prometheus_client's own formatting. The rest of the registry (a few
  dozen samples) goes through ``generate_latest``. Cost: ~5 ms plus
  ~0.12 ms per (target, model) with a new result since the last scrape;
  the first scrape after series appear renders them in full, once.
  Memory: the cached text and line prefixes, ~20 MB at 1,000 models.
- A skipped result (no request sent) counts in ``nexomon_probes_total`` and
  moves ``nexomon_probe_last_run_timestamp_seconds`` (the job ran), but
  leaves success, duration, phases and HTTP status at the last real probe.
  The last-run timestamp is ``started_at + duration_s`` (``started_at``
  when there is no duration), so it is the result's own time, not the
  time the exporter happened to see it.
- Values from the gateway that a counter cannot take (negative token
  counts or cost) are ignored, never raised: observing is not allowed to fail.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from monitor.catalog import MAX_MODEL_ID_LENGTH
from monitor.exposition import Children, Key, SeriesExposition
from monitor.outcome import Outcome
from monitor.results import ProbeResult

log = logging.getLogger("nexomon.exporter")

# OpenTelemetry GenAI semantic conventions' bucket boundaries for LLM latency.
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_LABEL_LENGTH = MAX_MODEL_ID_LENGTH  # one bound for stored, labelled and probed ids
DEFAULT_MAX_MODELS = 100  # DESIGN.md's default, for a target observed before configure_target
CATALOG_CHANGES = ("added", "removed")
# Refused ids are remembered to count them once; this caps that memory.
_MAX_REFUSED_TRACKED = 100_000

_JOB = ("target", "probe", "model")
_TM = ("target", "model")


class WriterStats(Protocol):
    """What ``bind_writer``'s callable returns (the store writer's health)."""

    pending: int
    written_total: int
    errors_total: int
    dropped_total: int


class _WithoutCreated(Collector):
    """Forwards registries' families minus their ``_created`` samples.

    ``without_cached()`` leaves the ``cached`` registry out, in the calling
    thread only, while ``Exporter.render`` renders those families itself.
    """

    def __init__(self, cached: CollectorRegistry, rest: CollectorRegistry) -> None:
        self._cached = cached
        self._rest = rest
        self._local = threading.local()

    @contextlib.contextmanager
    def without_cached(self) -> Iterator[None]:
        self._local.skip = True
        try:
            yield
        finally:
            self._local.skip = False

    def collect(self) -> Iterator[Metric]:
        skip = getattr(self._local, "skip", False)
        for registry in (self._rest,) if skip else (self._cached, self._rest):
            for family in registry.collect():
                out = Metric(family.name, family.documentation, family.type, family.unit)
                created = family.name + "_created"
                out.samples = [s for s in family.samples if s.name != created]
                yield out

    def describe(self) -> Iterable[Metric]:
        # Names only, so the caller's registry can refuse duplicates.
        return [
            Metric(f.name, f.documentation, f.type, f.unit)
            for registry in (self._cached, self._rest)
            for f in registry.collect()
        ]


class _WriterCollector(Collector):
    """The store writer's counters, read from its stats at scrape time."""

    def __init__(self) -> None:
        self.stats: Callable[[], WriterStats] | None = None

    def _families(self, stats: WriterStats | None) -> list[Metric]:
        families: list[Metric] = [
            GaugeMetricFamily("nexomon_store_pending_rows", "Rows waiting to be written."),
            CounterMetricFamily("nexomon_store_written_rows", "Rows written to the database."),
            CounterMetricFamily("nexomon_store_errors", "Failed database writes."),
            CounterMetricFamily("nexomon_store_dropped_rows", "Rows dropped (outage buffer full)."),
        ]
        if stats is not None:
            values = (stats.pending, stats.written_total, stats.errors_total, stats.dropped_total)
            for family, value in zip(families, values, strict=True):
                family.add_metric([], float(value))
        return families

    def collect(self) -> Iterator[Metric]:
        if self.stats is None:
            return
        try:
            stats = self.stats()
        except Exception:
            # A scrape must not fail because the writer is in trouble.
            log.exception("reading the store writer's stats failed")
            return
        yield from self._families(stats)

    def describe(self) -> Iterable[Metric]:
        return self._families(None)


class Exporter:
    """Owns every nexomon metric; the runner and scheduler feed it.

    Thread-safe: observing may happen on the event loop while a scrape runs
    in a worker thread.
    """

    def __init__(self, registry: CollectorRegistry, *, version: str) -> None:
        inner = CollectorRegistry(auto_describe=True)
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
            "Total probe latency (gateway time, no client-side queueing).",
            _JOB,
            buckets=DURATION_BUCKETS,
            registry=inner,
        )
        self._labelnames[self.duration] = _JOB
        self.phase = gauge(
            "nexomon_probe_phase_seconds", "Last probe's time per phase.", (*_JOB, "phase")
        )
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
        self.rl_limit = gauge("nexomon_ratelimit_limit", "Last x-ratelimit-limit value.", _TM)
        self.rl_remaining = gauge(
            "nexomon_ratelimit_remaining", "Last x-ratelimit-remaining value.", _TM
        )
        self.retry_after = gauge(
            "nexomon_ratelimit_retry_after_seconds", "Last retry-after, in seconds.", _TM
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
        self.build_info = gauge("nexomon_build_info", "Build information.", ("version",))

        self.budget_limit.set(math.inf)
        self.reload_ok.set(1)
        self.build_info.labels(version=version).set(1)

        # The per-(target, model) families (every metric with both labels; they
        # change only through _child and _forget) get the incremental exposition.
        per_model = [m for m, names in self._labelnames.items() if {"target", "model"} <= {*names}]
        cached = CollectorRegistry(auto_describe=True)
        for metric in per_model:
            inner.unregister(metric)
            cached.register(metric)
        self._exposition = SeriesExposition(per_model, self._labelnames)
        self._registry = registry
        self._collector = _WithoutCreated(cached, inner)

        self._writer = _WriterCollector()
        registry.register(self._collector)
        registry.register(self._writer)

        self._lock = threading.Lock()
        self._max_models: dict[str, int] = {}
        self._admitted: dict[str, set[str]] = {}  # target -> models with a label slot
        self._refused: dict[str, set[str]] = {}  # target -> ids left out
        self._warned: set[str] = set()
        self._listed: dict[str, set[str]] = {}  # target -> admitted models listed last time
        # target -> delisted models still holding a slot (listed=0), oldest first
        self._delisted: dict[str, dict[str, None]] = {}
        self._jobs: set[tuple[str, str, str]] = set()
        # (target, model) -> every live (metric, label values) of it and its child,
        # for forget() and the exposition.
        self._series: dict[Key, dict[tuple[MetricWrapperBase, tuple[str, ...]], Any]] = {}

    # -- label bookkeeping ------------------------------------------------

    def configure_target(self, target: str, max_models: int) -> None:
        """Set the model cap of a target. Lowering it evicts nobody already admitted."""
        with self._lock:
            self._max_models[target] = max_models
            for change in CATALOG_CHANGES:
                self.catalog_changes.labels(target=target, change=change)
            self.over_limit.labels(target=target).set(len(self._refused.get(target, ())))

    def _admit(self, target: str, model: str) -> bool:
        """True when ``model`` may be a label value of ``target``. Caller holds the lock."""
        if model == "":  # the models probe
            return True
        admitted = self._admitted.setdefault(target, set())
        delisted = self._delisted.get(target, {})
        if model in admitted:
            delisted.pop(model, None)
            return True
        limit = self._max_models.get(target, DEFAULT_MAX_MODELS)
        if len(admitted) >= limit and delisted and len(model) <= MAX_LABEL_LENGTH:
            self._forget(target, next(iter(delisted)), keep_listed=False)
        if len(model) <= MAX_LABEL_LENGTH and len(admitted) < limit:
            admitted.add(model)
            return True
        refused = self._refused.setdefault(target, set())
        if model not in refused and len(refused) < _MAX_REFUSED_TRACKED:
            refused.add(model)
            self.over_limit.labels(target=target).set(len(refused))
        if target not in self._warned:
            self._warned.add(target)
            log.warning(
                "target %s: model ids beyond max_models=%d or longer than %d characters "
                "are left out of the metrics (first: %.60r); see nexomon_models_over_limit",
                target,
                limit,
                MAX_LABEL_LENGTH,
                model,
            )
        return False

    def _child(self, metric: MetricWrapperBase, **labels: str) -> Any:
        """``metric.labels(**labels)``, remembered under (target, model) for ``forget``.

        Marks the key dirty for the exposition: every change of a per-model
        series goes through here (or ``_forget``), with the lock held.
        """
        child = metric.labels(**labels)
        values = tuple(labels[name] for name in self._labelnames[metric])
        key = (labels["target"], labels["model"])
        self._series.setdefault(key, {})[(metric, values)] = child
        self._exposition.mark(key, (metric, values))
        return child

    # -- probe results ----------------------------------------------------

    def observe(self, result: ProbeResult) -> None:
        """Export one probe result (see the module docstring for the rules)."""
        with self._lock:
            self._observe(result)

    def _observe(self, r: ProbeResult) -> None:
        t, p, m = r.target, r.probe, r.model
        if not self._admit(t, m):
            return
        job = {"target": t, "probe": p, "model": m}
        self._zero_outcomes(t, p, m)
        self._child(self.probes, **job, outcome=r.outcome.value).inc()
        finished = r.started_at.timestamp() + (r.duration_s or 0.0)
        self._child(self.last_run, **job).set(finished)

        if r.outcome is not Outcome.SKIPPED:
            self._child(self.success, **job).set(1 if r.success else 0)
            self._child(self.http_status, **job).set(r.http_status or 0)
            if r.duration_s is not None:
                self._child(self.duration, **job).observe(r.duration_s)
            for name, seconds in r.phases.as_dict().items():
                if seconds is None:
                    self.phase.remove(t, p, m, name)  # keep no stale value from an older probe
                    self._series.get((t, m), {}).pop((self.phase, (t, p, m, name)), None)
                    self._exposition.mark((t, m))
                else:
                    self._child(self.phase, **job, phase=name).set(seconds)

        self._observe_usage(r)
        if r.model_ids is not None:
            self._observe_catalog(t, r.model_ids)

    def _zero_outcomes(self, target: str, probe: str, model: str) -> None:
        """Create every outcome of a job at 0, once. Caller holds the lock.

        A counter series that first appears at 1 hides that first probe from
        increase()/rate(); set_interval() calls this when the job is scheduled,
        so a scrape sees the zeros before the first result.
        """
        if (target, probe, model) in self._jobs:
            return
        self._jobs.add((target, probe, model))
        for outcome in Outcome:
            self._child(self.probes, target=target, probe=probe, model=model, outcome=outcome.value)

    def _observe_usage(self, r: ProbeResult) -> None:
        t, m = r.target, r.model
        tm = {"target": t, "model": m}
        for kind, count in (("input", r.prompt_tokens), ("output", r.completion_tokens)):
            if count is not None and count >= 0:
                for other in ("input", "output"):
                    self._child(self.tokens, **tm, type=other)
                self._child(self.tokens, **tm, type=kind).inc(count)
        if r.cost_usd is not None and r.cost_usd >= 0:
            self._child(self.cost, **tm).inc(float(r.cost_usd))
        for metric, value in (
            (self.rl_limit, r.ratelimit_limit),
            (self.rl_remaining, r.ratelimit_remaining),
            (self.retry_after, r.retry_after_s),
        ):
            if value is not None:
                self._child(metric, **tm).set(value)

    def _observe_catalog(self, target: str, model_ids: tuple[str, ...]) -> None:
        ids = set(model_ids)
        self.catalog_size.labels(target=target).set(len(ids))
        # The gateway's order decides who gets the label slots (first come first served).
        listed_now = {m for m in dict.fromkeys(model_ids) if m and self._admit(target, m)}
        for model in listed_now:
            self._child(self.listed, target=target, model=model).set(1)
        for model in self._listed.get(target, set()) - listed_now:
            self._child(self.listed, target=target, model=model).set(0)
        self._listed[target] = listed_now

    # -- everything else ---------------------------------------------------

    def mark_unpriced(self, target: str, model: str, unpriced: bool) -> None:
        with self._lock:
            if self._admit(target, model):
                child = self._child(self.unpriced, target=target, model=model)
                child.set(1 if unpriced else 0)

    def catalog_changed(self, target: str, change: str, count: int = 1) -> None:
        """Count models added to or removed from a target's /models answer."""
        if change not in CATALOG_CHANGES:
            raise ValueError(f"change must be one of {CATALOG_CHANGES}, not {change!r}")
        if count > 0:
            self.catalog_changes.labels(target=target, change=change).inc(count)

    def set_interval(self, target: str, probe: str, model: str, seconds: float) -> None:
        with self._lock:
            if self._admit(target, model):
                labels = {"target": target, "probe": probe, "model": model}
                self._child(self.interval, **labels).set(seconds)
                self._zero_outcomes(target, probe, model)

    def forget(self, target: str, model: str, *, keep_listed: bool = False) -> None:
        """Remove the series of (target, model) and free its label slot.

        ``keep_listed`` (a model that left /models): keep its
        ``nexomon_model_listed`` 0 series, so "delisted" stays visible and
        alertable, and keep its slot until a newcomer needs one (the oldest
        delisted model is evicted first), so the bound stays ``max_models``.
        """
        with self._lock:
            self._forget(target, model, keep_listed=keep_listed)

    def _forget(self, target: str, model: str, *, keep_listed: bool) -> None:
        """``forget`` with the lock held."""
        series = self._series.pop((target, model), {})
        kept = {(m, v): c for (m, v), c in series.items() if keep_listed and m is self.listed}
        for metric, values in series.keys() - kept.keys():
            metric.remove(*values)
        self._exposition.mark((target, model))
        self._jobs = {job for job in self._jobs if job[0] != target or job[2] != model}
        if kept:
            self._series[(target, model)] = kept
            self._delisted.setdefault(target, {})[model] = None
            return
        self._delisted.get(target, {}).pop(model, None)
        self._admitted.get(target, set()).discard(model)
        self._listed.get(target, set()).discard(model)
        refused = self._refused.get(target)
        if refused is not None and model in refused:
            refused.discard(model)
            self.over_limit.labels(target=target).set(len(refused))

    def forget_target(self, target: str) -> None:
        """Remove every series of a target (it left the config on reload)."""
        with self._lock:
            models = {model for t, model in self._series if t == target}
        for model in models:
            self.forget(target, model)
        with self._lock:
            for metric in (self.catalog_size, self.over_limit):
                metric.remove(target)
            for change in CATALOG_CHANGES:
                self.catalog_changes.remove(target, change)
            for book in (
                self._max_models,
                self._admitted,
                self._refused,
                self._listed,
                self._delisted,
            ):
                book.pop(target, None)
            self._warned.discard(target)

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

    def bind_writer(self, stats: Callable[[], WriterStats]) -> None:
        """Export the writer's health; ``stats()`` is called at every scrape."""
        self._writer.stats = stats

    # -- the scrape's fast path ---------------------------------------------

    def render(self, registry: CollectorRegistry) -> bytes:
        """``generate_latest(registry)``, fast: the same samples and values.

        The per-model families come from the incremental exposition, the rest
        of ``registry`` (anything else registered on it included) from
        ``generate_latest``. For a registry this exporter is not registered
        on, it is plain ``generate_latest``.
        """
        if registry is not self._registry:
            return generate_latest(registry)
        per_model = self._exposition.render(self._children_of)
        with self._collector.without_cached():
            rest = generate_latest(registry)
        return per_model + rest

    def _children_of(self, keys: set[Key]) -> Children:
        with self._lock:
            return {key: list(self._series.get(key, {}).items()) for key in keys}
