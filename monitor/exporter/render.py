"""The exporter's scrape: ``generate_latest``'s output, rendered incrementally.

``ScrapeRenderer.render(registry)`` is a drop-in for ``generate_latest``
(``web.build_app(render_metrics=...)``) with the same samples and values:
the per-(target, model) families come from ``SeriesExposition`` (only the
series with a new value since the last scrape are re-rendered), the rest of
``registry`` (a few dozen samples, anything else registered on it included)
from ``generate_latest``. For a registry the exporter is not registered on,
it is plain ``generate_latest``.

``render_async`` does the same work on the event loop, in slices of
``RENDER_SLICE_S`` with a turn of the loop between them. Why: at 2,400
models probed every second a scrape re-renders every model, ~100 ms of CPU.
In a worker thread that thread takes the GIL every switch interval, so the
loop ran at about half speed for the whole render and due probes started up
to ~45 ms late (lag p99, benchmarks/throughput.py); in slices the loop runs
its ready callbacks between two slices, and a scrape delays them by about
one slice. The scrape itself takes longer in wall time on a busy loop, but
keeps a share of it that grows with its age (``RENDER_MIN_SHARE``,
``RENDER_RAMP_S``), so an overloaded loop cannot starve it past
Prometheus' scrape timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from monitor.exporter.collectors import WithoutCreated
from monitor.exporter.exposition import Children, Key, SeriesExposition

RENDER_SLICE_S = 0.001  # a stepped scrape's work between two turns of the loop
# The share of the wall time a stepped scrape keeps, however busy the loop:
# 10 %, rising to all of it over 4 s of age. The first scrape at 2,800
# models (~1 s of work: every series is new) then ends within ~2 s on a
# saturated loop, inside Prometheus' 10 s timeout; with 10 % alone it could
# take 10 s (benchmarks/throughput.py saw one time out).
RENDER_MIN_SHARE = 0.1
RENDER_RAMP_S = 4.0


class ScrapeRenderer:
    """Renders the exporter's registry; see the module docstring."""

    def __init__(
        self,
        exposition: SeriesExposition,
        children_of: Callable[[set[Key]], Children],
        registry: CollectorRegistry,
        collector: WithoutCreated,
    ) -> None:
        self._exposition = exposition
        self._children_of = children_of
        self._registry = registry
        self._collector = collector
        self._turn = asyncio.Lock()  # one stepped render at a time on the loop

    def render(self, registry: CollectorRegistry) -> bytes:
        if registry is not self._registry:
            return generate_latest(registry)
        return self._exposition.render(self._children_of) + self._rest(registry)

    async def render_async(self, registry: CollectorRegistry) -> bytes:
        if registry is not self._registry:
            return generate_latest(registry)
        async with self._turn:
            steps = self._exposition.render_steps(
                self._children_of,
                slice_s=RENDER_SLICE_S,
                min_share=RENDER_MIN_SHARE,
                ramp_s=RENDER_RAMP_S,
            )
            for text in steps:
                if text is not None:
                    return text + self._rest(registry)
                await asyncio.sleep(0)
        raise AssertionError("render_steps ended without the text")  # pragma: no cover

    def _rest(self, registry: CollectorRegistry) -> bytes:
        with self._collector.without_cached():
            return generate_latest(registry)
