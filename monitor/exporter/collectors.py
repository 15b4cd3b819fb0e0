"""The exporter's two collectors: forwarding without ``_created``, and the writer's stats.

Both add the process's constant labels (``location``) to every sample, first
among its labels: the same place ``monitor.exporter.exposition`` puts them,
so both paths of a scrape render the same bytes.

Why no ``_created``: prometheus_client adds one per counter and histogram
child; in the 0.0.4 text format they become extra gauge families that double
the series count and that nothing here reads. ``disable_created_metrics()``
would switch them off process-wide (a hidden global), so the exporter's
metrics live in private registries and ``WithoutCreated`` on the caller's
registry forwards them without ``_created``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("nexomon.exporter")


class WriterStats(Protocol):
    """What ``Exporter.bind_writer``'s callable returns (the store writer's health)."""

    pending: int
    written_total: int
    errors_total: int
    dropped_total: int
    refused_total: int  # rows the database refused on their own (in the dead-letter file)
    loop_errors_total: int  # unexpected exceptions the writer thread survived (bugs)
    unjournaled_total: int  # rows accepted without a journal line (not safe from a kill)

    def health(self) -> str | None:
        """None while the writer works, else why not (dead, stalled)."""
        ...


class WithoutCreated(Collector):
    """Forwards registries' families minus their ``_created`` samples, each
    sample with ``const_labels`` put before its own labels.

    ``without_cached()`` leaves the ``cached`` registry out, in the calling
    thread only, while ``Exporter.render`` renders those families itself.
    """

    def __init__(
        self,
        cached: CollectorRegistry,
        rest: CollectorRegistry,
        const_labels: Mapping[str, str],
    ) -> None:
        self._cached = cached
        self._rest = rest
        self._const = dict(const_labels)
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
                const = self._const
                out.samples = [
                    s._replace(labels={**const, **s.labels})
                    for s in family.samples
                    if s.name != created
                ]
                yield out

    def describe(self) -> Iterable[Metric]:
        # Names only, so the caller's registry can refuse duplicates.
        return [
            Metric(f.name, f.documentation, f.type, f.unit)
            for registry in (self._cached, self._rest)
            for f in registry.collect()
        ]


class WriterCollector(Collector):
    """The store writer's counters and health, read from its stats at scrape time.

    ``nexomon_store_rows_refused_total`` counts rows the database refused on
    their own (kept in the dead-letter file), ``nexomon_store_writer_errors_total``
    unexpected exceptions the writer survived, ``nexomon_store_unjournaled_rows_total``
    rows accepted without a journal line, and ``nexomon_store_writer_up`` is 1
    while the writer thread is alive and not stalled. Every sample carries
    ``const_labels``.
    """

    def __init__(self, const_labels: Mapping[str, str]) -> None:
        self.stats: Callable[[], WriterStats] | None = None
        self._names = list(const_labels)
        self._values = list(const_labels.values())

    def _families(self, stats: WriterStats | None) -> list[Metric]:
        gauge, counter, names = GaugeMetricFamily, CounterMetricFamily, self._names
        families: list[Metric] = [
            gauge("nexomon_store_pending_rows", "Rows waiting to be written.", labels=names),
            counter("nexomon_store_written_rows", "Rows written to the database.", labels=names),
            counter("nexomon_store_errors", "Failed database writes.", labels=names),
            counter(
                "nexomon_store_dropped_rows", "Rows dropped (outage buffer full).", labels=names
            ),
            counter("nexomon_store_rows_refused", "Rows the database refused.", labels=names),
            counter("nexomon_store_writer_errors", "Errors the writer survived.", labels=names),
            counter("nexomon_store_unjournaled_rows", "Rows without a journal line.", labels=names),
            gauge("nexomon_store_writer_up", "1 while the store writer works.", labels=names),
        ]
        if stats is not None:
            values = (
                stats.pending,
                stats.written_total,
                stats.errors_total,
                stats.dropped_total,
                stats.refused_total,
                stats.loop_errors_total,
                stats.unjournaled_total,
                0 if stats.health() else 1,
            )
            for family, value in zip(families, values, strict=True):
                family.add_metric(self._values, float(value))
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
