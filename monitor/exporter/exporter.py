"""Prometheus metrics: every series of docs/architecture.md's metric table, on an explicit registry.

Contracts:

- Metric names, types and label sets are those of docs/architecture.md (plus
  ``nexomon_probe_interval_seconds``, ``nexomon_models_over_limit``,
  ``nexomon_probe_errors_total`` and ``nexomon_scheduler_misfires_total``).
  Nothing is registered on prometheus_client's global ``REGISTRY``.
- Every series, the process-wide ones and the writer's included, carries
  ``location`` (the constructor's ``location``, ``[monitor] location``):
  the prober's place is part of what was measured (docs/architecture.md,
  "Why a label, not an info metric").
- The latency histograms count only probes that answered ``ok`` with a
  duration, the population of ``nexomon report``'s latency columns
  (``monitor.store.aggregate``): ``nexomon_probe_duration_seconds`` per job,
  ``nexomon_probe_phase_duration_seconds`` per (target, probe, phase).
  Failures count only in ``nexomon_probes_total{outcome}``. An ok
  ``stream`` result feeds the stream series instead
  (``monitor.exporter.stream_signals``).
- Label values are bounded (``monitor.exporter.slots.LabelSlots``). A
  target exports at most ``max_models`` distinct ``model`` values, first
  come first served; ids beyond that, and ids longer than
  ``MAX_LABEL_LENGTH`` (model ids come from an untrusted gateway), are left
  out of every metric, counted in ``nexomon_models_over_limit{target}`` and
  logged once per target. A model keeps its slot until ``forget()``.
- No ``_created`` series, and nothing on a global registry: the metrics
  live in private registries forwarded by ``monitor.exporter.collectors.WithoutCreated``.
- Observing is cheap: the prometheus_client children of a job (target,
  probe, model) and of a (target, model) are looked up once, when first
  needed, and cached (``monitor.exporter.children``) until ``forget()``; a result
  then costs no ``labels()`` call and no label dict. ``mark_unpriced``
  that changes nothing returns without the lock (the runner calls it for
  every chat result that spent tokens).
- The scrape: ``render(registry)`` is a drop-in for ``generate_latest``
  (``web.build_app(render_metrics=...)``) with the same samples and values.
  The per-(target, model) families (every metric with both labels, ~66,000
  samples at 1,000 models) and the phase histograms are rendered incrementally by
  ``monitor.exporter.exposition.SeriesExposition``: every change of such a series
  marks its (target, model), and a scrape re-renders only marked ones
  (~35 µs each), reading the values from the children. The rest of the
  registry (a few dozen samples) goes through ``generate_latest``.
  ``render_async`` is the same on the event loop in ~1 ms slices
  (``monitor.exporter.render``).
- A skipped result (no request sent) counts in ``nexomon_probes_total`` and
  moves ``nexomon_probe_last_run_timestamp_seconds`` (the job ran), but
  leaves success and HTTP status at the last real probe.
  The last-run timestamp is ``started_at + duration_s`` (``started_at``
  when there is no duration), so it is the result's own time, not the
  time the exporter happened to see it.
- Values from the gateway that a counter cannot take (negative token
  counts or cost) are ignored, never raised: observing is not allowed to fail.
- ``compact=True`` (``[monitor] model_metrics = "compact"``, for catalogs of
  thousands of models; same names and label sets): a job's latency histogram
  is kept per (target, probe) with ``model=""`` (under the key (target, "")
  with the phase histograms), and ``nexomon_probes_total{outcome}``,
  ``nexomon_model_unpriced``, ``nexomon_model_substituted`` and
  ``nexomon_model_substitutions_total`` appear with their first non-zero
  value instead of at 0, and ``nexomon_probe_http_status_code`` with its
  first status other than 200 (then it stays and follows every answer).
  The price: increase() over a new series misses its first count, so an
  alert on a new failure kind fires one probe later. The phase histograms
  keep octave buckets (``PHASE_BUCKETS_COMPACT``). ~7 series a chat model
  instead of ~66 (benchmarks/scale.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from monitor.exporter.children import JobChildren, ModelChildren
from monitor.exporter.collectors import WithoutCreated, WriterCollector, WriterStats
from monitor.exporter.exposition import Children, Key, SeriesExposition
from monitor.exporter.forgetting import SeriesRemoval
from monitor.exporter.metrics import (
    CATALOG_CHANGES,
    HISTOGRAM_PHASES,
    LOCATION_LABEL,
    MetricSet,
)
from monitor.exporter.render import ScrapeRenderer
from monitor.exporter.slots import LabelSlots
from monitor.exporter.stream_signals import STREAM_PROBE, StreamSignals
from monitor.exporter.usage_signals import UsageSignals
from monitor.outcome import Outcome
from monitor.results import ProbeResult

CONTRACT_PROBE = "contract"  # monitor.probes.contract.KIND (probes sit above the exporter)


class Exporter(SeriesRemoval, UsageSignals, StreamSignals, MetricSet):
    """Owns every nexomon metric; the runner and scheduler feed it.

    Thread-safe: observing may happen on the event loop while a scrape
    renders in a worker thread (``render``; the daemon's ``render_async``
    runs on the loop itself).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        version: str,
        location: str = "default",
        compact: bool = False,
    ) -> None:
        """``location`` is ``[monitor] location`` (its default is the config's);
        ``compact`` is ``model_metrics = "compact"`` (see the module docstring)."""
        inner = CollectorRegistry(auto_describe=True)
        super().__init__(inner, version=version, location=location, compact=compact)
        const = {LOCATION_LABEL: location}

        # The per-(target, model) families (every metric with both labels; they
        # change only through _observe*, _child and _forget) get the incremental
        # exposition; so do the phase histograms, kept under the key (target, "")
        # of the models probe: ~100 lines a target that generate_latest would
        # otherwise format anew at every scrape, on the event loop.
        per_model = [m for m, names in self._labelnames.items() if {"target", "model"} <= {*names}]
        per_model.append(self.phase)
        cached = CollectorRegistry(auto_describe=True)
        for metric in per_model:
            inner.unregister(metric)
            cached.register(metric)
        self._exposition = SeriesExposition(per_model, self._labelnames, const)
        self._registry = registry
        self._collector = WithoutCreated(cached, inner, const)

        self._writer = WriterCollector(const)
        self._renderer = ScrapeRenderer(
            self._exposition, self._children_of, registry, self._collector
        )
        registry.register(self._collector)
        registry.register(self._writer)

        self._lock = threading.Lock()
        self._slots = LabelSlots(evict=self._evict, refused=self._refused)
        self._listed: dict[str, set[str]] = {}  # target -> admitted models listed last time
        # (target, model) -> every live (metric, label values) of it and its child,
        # for forget() and the exposition.
        self._series: dict[Key, dict[tuple[MetricWrapperBase, tuple[str, ...]], Any]] = {}
        # (target, model) -> its cached children; only for admitted, non-delisted models.
        self._models: dict[Key, ModelChildren] = {}
        # (target, probe) -> the phase histogram's children, in HISTOGRAM_PHASES
        # order; their series live under the key (target, "") in _series.
        self._phases: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._contract_checks: dict[str, set[str]] = {}
        self.compact = compact
        # compact: (target, probe) -> its latency histogram child (model ""), under (target, "").
        self._target_durations: dict[tuple[str, str], Any] = {}

    # -- label bookkeeping and the child cache ---------------------------------

    def configure_target(self, target: str, max_models: int) -> None:
        """Set the model cap of a target. Lowering it evicts nobody already admitted."""
        with self._lock:
            self._slots.configure(target, max_models)
            for change in CATALOG_CHANGES:
                self.catalog_changes.labels(target=target, change=change)
            self.rl_invalid.labels(target=target)  # at 0, like every counter here
            self.over_limit.labels(target=target).set(self._slots.refused_count(target))

    def _evict(self, target: str, model: str) -> None:
        self._forget(target, model, keep_listed=False)

    def _refused(self, target: str, count: int) -> None:
        self.over_limit.labels(target=target).set(count)

    def _child(self, metric: MetricWrapperBase, key: Key, values: tuple[str, ...]) -> Any:
        """``metric.labels(*values)``, remembered under ``key`` for ``forget`` and the
        exposition (marked as a new series). Caller holds the lock; called on cache
        misses only.
        """
        child = metric.labels(*values)
        self._series.setdefault(key, {})[(metric, values)] = child
        self._exposition.mark(key, structural=True)
        return child

    def _model(self, target: str, model: str) -> ModelChildren | None:
        """The cache of an admitted (target, model), made on first use; None if refused."""
        key = (target, model)
        state = self._models.get(key)
        if state is None:
            if not self._slots.admit(target, model):
                return None
            state = self._models[key] = ModelChildren(key)
        return state

    def _job(self, target: str, probe: str, model: str) -> JobChildren | None:
        """The cache of a job, made (every outcome created at 0) on first use.

        A counter series that first appears at 1 hides that first probe from
        increase()/rate(); set_interval() makes the job when it is scheduled,
        so a scrape sees the zeros before the first result.
        """
        state = self._model(target, model)
        if state is None:
            return None
        job = state.jobs.get(probe)
        if job is None:
            key, values = state.values, (target, probe, model)
            outcomes = () if self.compact else Outcome  # compact: each on its first count
            probes = {o: self._child(self.probes, key, (*values, o.value)) for o in outcomes}
            job = state.jobs[probe] = JobChildren(values, probes)
        return job

    # -- probe results ----------------------------------------------------

    def observe(self, result: ProbeResult) -> None:
        """Export one probe result (see the module docstring for the rules)."""
        with self._lock:
            if result.probe == CONTRACT_PROBE:
                self._observe_contract(result)
            else:
                self._observe(result)

    def _observe(self, r: ProbeResult) -> None:
        state = self._models.get((r.target, r.model))
        job = None if state is None else state.jobs.get(r.probe)
        if job is None:
            job = self._job(r.target, r.probe, r.model)
            if job is None:
                return
            state = self._models[(r.target, r.model)]
        key = state.values
        counter = job.probes.get(r.outcome)
        if counter is None:  # compact mode's first count of this outcome
            counter = job.probes[r.outcome] = self._child(
                self.probes, key, (*job.values, r.outcome.value)
            )
        counter.inc()
        child = job.last_run or self._set(job, "last_run", self.last_run, key)
        child.set(r.started_at.timestamp() + (r.duration_s or 0.0))

        if r.outcome is not Outcome.SKIPPED:
            (job.success or self._set(job, "success", self.success, key)).set(1 if r.success else 0)
            status = r.http_status or 0
            child = job.http_status
            if child is None and not (self.compact and status == 200):  # compact: first non-200
                child = self._set(job, "http_status", self.http_status, key)
            if child is not None:
                child.set(status)
            if r.outcome is Outcome.OK and r.probe == STREAM_PROBE:
                self._observe_stream(r, state)  # its own latency figures (stream_signals)
            elif r.outcome is Outcome.OK and r.duration_s is not None:
                # The report's latency population (monitor.store.aggregate): ok
                # answers with a duration. A 500 answered in 60 ms is no latency.
                child = job.duration or self._duration_child(job, key)
                child.observe(r.duration_s)
                self._observe_phases(r)

        if r.probe == STREAM_PROBE and r.response_model is not None:
            # The substitution pair is the chat answers' (its contract); a stream's
            # answered model stays on its row and in probe --json.
            r = r.replace(response_model=None)
        self._observe_usage(r, state)
        # Marked after every change, never before: a scrape that takes the mark
        # fills the key from the children without the lock, so a mark set
        # before the values moved could be consumed with the old values read
        # and the last change never shown (tests/exporter/test_exposition.py,
        # the racing scrapes, caught it).
        self._exposition.mark(key)
        if r.model_ids is not None:
            self._observe_catalog(r.target, r.model_ids)
            self.catalog_invalid.labels(target=r.target).set(r.invalid_entries or 0)

    def _observe_phases(self, r: ProbeResult) -> None:
        """Observe an ok result's connect (+ tls) and processing time, per (target, probe)."""
        key = (r.target, "")
        children = self._phases.get((r.target, r.probe))
        if children is None:
            children = self._phases[(r.target, r.probe)] = tuple(
                self._child(self.phase, key, (r.target, r.probe, name)) for name in HISTOGRAM_PHASES
            )
        phases = r.phases
        children[0].observe(phases.connect + (phases.tls or 0.0))  # "connect"
        children[1].observe(phases.processing)  # "processing"
        self._exposition.mark(key)

    def _duration_child(self, job: JobChildren, key: Key) -> Any:
        """The job's latency histogram child: its own, or (compact) its target's."""
        if not self.compact:
            return self._set(job, "duration", self.duration, key)
        target, probe, _ = job.values
        child = self._target_durations.get((target, probe))
        if child is None:
            child = self._child(self.duration, (target, ""), (target, probe, ""))
            self._target_durations[(target, probe)] = child
        job.duration = child  # _observe_phases marks (target, "") after every observation
        return child

    def _set(
        self, holder: JobChildren | ModelChildren, attr: str, metric: MetricWrapperBase, key: Key
    ) -> Any:
        """Create ``holder``'s child of ``metric`` (a cache miss) and cache it as ``attr``."""
        child = self._child(metric, key, holder.values)
        setattr(holder, attr, child)
        return child

    def _observe_catalog(self, target: str, model_ids: tuple[str, ...]) -> None:
        """Set ``listed`` where it changed (a model in ``_listed`` is at 1 already)."""
        self.catalog_size.labels(target=target).set(len(set(model_ids)))
        # The gateway's order decides who gets the label slots (first come first served).
        listed_now = {m for m in dict.fromkeys(model_ids) if m and self._slots.admit(target, m)}
        before = self._listed.get(target, set())
        for model in listed_now - before:
            state = self._model(target, model)  # admitted above: never None
            if state is not None:
                (state.listed or self._set(state, "listed", self.listed, state.values)).set(1)
                self._exposition.mark(state.values)
        for model in before - listed_now:  # no admission: a delisted model keeps its place
            key = (target, model)
            state = self._models.get(key)
            child = None if state is None else state.listed
            if child is None:
                child = self._child(self.listed, key, key)
                if state is not None:
                    state.listed = child
            child.set(0)
            self._exposition.mark(key)
        self._listed[target] = listed_now

    # -- everything else ---------------------------------------------------

    def mark_unpriced(self, target: str, model: str, unpriced: bool) -> None:
        """Set ``nexomon_model_unpriced``; no lock and no work when it is unchanged."""
        unpriced = bool(unpriced)
        state = self._models.get((target, model))
        if state is not None and state.unpriced_value is unpriced:
            return  # a forget() racing this is as if it came after: the series is gone
        if self.compact and not unpriced and (state is None or state.unpriced is None):
            return  # compact: the series appears with its first 1
        with self._lock:
            state = self._model(target, model)
            if state is None:
                return
            child = state.unpriced or self._set(state, "unpriced", self.unpriced, state.values)
            child.set(1 if unpriced else 0)
            state.unpriced_value = unpriced
            self._exposition.mark(state.values)

    def set_interval(self, target: str, probe: str, model: str, seconds: float) -> None:
        if probe == CONTRACT_PROBE:  # a check has no job series (see _observe_contract)
            return
        with self._lock:
            job = self._job(target, probe, model)
            if job is not None:
                key = (target, model)
                (job.interval or self._set(job, "interval", self.interval, key)).set(seconds)
                self._exposition.mark(key)

    def bind_writer(self, stats: Callable[[], WriterStats]) -> None:
        """Export the writer's health; ``stats()`` is called at every scrape."""
        self._writer.stats = stats

    # -- the scrape's fast path ---------------------------------------------

    def render(self, registry: CollectorRegistry) -> bytes:
        """``generate_latest(registry)``, fast (see monitor.exporter.render)."""
        return self._renderer.render(registry)

    async def render_async(self, registry: CollectorRegistry) -> bytes:
        """``render`` in slices on the event loop (the daemon's /metrics)."""
        return await self._renderer.render_async(registry)

    def _children_of(self, keys: set[Key]) -> Children:
        with self._lock:
            return {key: list(self._series.get(key, {}).items()) for key in keys}
