"""CatalogLog: catalog changes become metrics and log lines, bounded for a hostile gateway.

A gateway alternating two lists of 50,000 ids wrote 300,692 log lines in
32 s on main. The writer already bounds a listing's events (at most
``max_models`` named per direction plus one summary, monitor.catalog); this
sink bounds the log:

* every event counts in ``nexomon_catalog_changes_total`` (a summary event
  by the number of models it stands for);
* a named change is logged, unless the same model's change was logged less
  than ``quiet_s`` (an hour) ago: then it is counted in
  ``nexomon_catalog_flaps_total{target}`` instead, and the model's next
  logged line says how many changes were left out;
* a summary event is one line: ``target T: 49,950 more models added
  (beyond max_models 50, not named)``.

The table of recently logged models is bounded (``max_tracked``): under a
gateway that invents new ids every listing the oldest entries go first, so
memory stays flat and at worst a model is logged again sooner.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from monitor.catalog import CatalogEvent

log = logging.getLogger("nexomon.catalog")

QUIET_S = 3600.0
MAX_TRACKED = 20_000


class CatalogMetrics(Protocol):
    def catalog_changed(self, target: str, change: str, count: int = 1) -> None: ...

    def catalog_flapped(self, target: str, count: int = 1) -> None: ...


class CatalogLog:
    """The writer's ``on_catalog_events`` sink (called on the writer thread)."""

    def __init__(
        self,
        metrics: CatalogMetrics,
        *,
        quiet_s: float = QUIET_S,
        max_tracked: int = MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._quiet_s = quiet_s
        self._max_tracked = max_tracked
        self._clock = clock
        # (target, model) -> [when its last line was logged, changes left out since]
        self._recent: OrderedDict[tuple[str, str], list[float]] = OrderedDict()

    def __call__(self, events: list[CatalogEvent]) -> None:
        now = self._clock()
        self._forget_older_than(now - self._quiet_s)
        for event in events:
            self._metrics.catalog_changed(event.target, event.change, event.count)
            if event.summary:
                log.info(
                    "target %s: %d more models %s (beyond max_models, not named)",
                    event.target,
                    event.count,
                    event.change,
                )
                continue
            key = (event.target, event.model)
            entry = self._recent.get(key)
            if entry is not None:
                entry[1] += 1
                self._metrics.catalog_flapped(event.target)
                continue
            log.info("target %s: model %s %s", event.target, event.model, event.change)
            self._recent[key] = [now, 0]
            if len(self._recent) > self._max_tracked:
                self._drop_oldest()

    def _forget_older_than(self, cutoff: float) -> None:
        """Entries are in logging order: drop from the front while they are old."""
        while self._recent and next(iter(self._recent.values()))[0] <= cutoff:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        (target, model), (_, left_out) = self._recent.popitem(last=False)
        if left_out:
            log.info(
                "target %s: model %s changed %d more times in the hour after its last line",
                target,
                model,
                int(left_out),
            )
