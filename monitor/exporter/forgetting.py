"""Removing series: a model that left, a target that left the config.

``SeriesRemoval`` is the part of ``Exporter`` that takes series away again;
it uses the Exporter's lock, child cache and label slots (all declared
below for the reader and the type checker, provided by Exporter).

Contracts:

- ``forget(target, model)`` removes every series of the (target, model) and
  frees its label slot; with ``keep_listed`` its ``nexomon_model_listed`` 0
  series and its slot stay until a newcomer needs the slot.
- ``forget(target, "")`` is the key of the models probe, the phase
  histograms and (``compact``) the per-target latency histograms: their
  child caches go with it.
- ``forget_target(target)`` removes every series of the target, its
  per-target ones (catalog, limits, contract checks) included.
"""

from __future__ import annotations

from typing import Any

from monitor.exporter.metrics import CATALOG_CHANGES


class SeriesRemoval:
    """Mixin of ``Exporter``."""

    _lock: Any
    _models: dict[Any, Any]
    _phases: dict[tuple[str, str], Any]
    _target_durations: dict[tuple[str, str], Any]
    _series: dict[Any, dict[Any, Any]]
    _exposition: Any
    _slots: Any
    _listed: dict[str, set[str]]
    listed: Any
    catalog_size: Any
    over_limit: Any
    catalog_flaps: Any
    catalog_invalid: Any
    catalog_changes: Any
    rl_invalid: Any
    _forget_contract: Any  # UsageSignals (later in Exporter's MRO)

    def forget(self, target: str, model: str, *, keep_listed: bool = False) -> None:
        """Remove the series of (target, model) and free its label slot.

        ``keep_listed`` (a model that left /models): keep its
        ``nexomon_model_listed`` 0 series, so "delisted" stays visible and
        alertable, and keep its slot until a newcomer needs one (the oldest
        delisted model is evicted first), so the bound stays ``max_models``.
        The child cache of the model goes either way (a delisted model that
        comes back is admitted and cached anew).
        """
        with self._lock:
            self._forget(target, model, keep_listed=keep_listed)

    def _forget(self, target: str, model: str, *, keep_listed: bool) -> None:
        """``forget`` with the lock held."""
        key = (target, model)
        self._models.pop(key, None)
        if model == "":  # the phase histograms' key (see __init__), compact's durations too
            for cache in (self._phases, self._target_durations):
                for target_probe in [k for k in cache if k[0] == target]:
                    del cache[target_probe]
        series = self._series.pop(key, {})
        kept = {(m, v): c for (m, v), c in series.items() if keep_listed and m is self.listed}
        for metric, values in series.keys() - kept.keys():
            metric.remove(*values)
        self._exposition.mark(key, structural=True)
        if kept:
            self._series[key] = kept
            self._slots.delist(target, model)
            return
        self._slots.release(target, model)
        self._listed.get(target, set()).discard(model)

    def forget_target(self, target: str) -> None:
        """Remove every series of a target (it left the config on reload)."""
        with self._lock:
            models = {model for t, model in (*self._series, *self._models) if t == target}
        for model in models:
            self.forget(target, model)
        with self._lock:
            for metric in (
                self.catalog_size,
                self.over_limit,
                self.catalog_flaps,
                self.catalog_invalid,
                self.rl_invalid,
            ):
                metric.remove(target)
            for change in CATALOG_CHANGES:
                self.catalog_changes.remove(target, change)
            self._slots.drop(target)
            self._listed.pop(target, None)
            self._forget_contract(target)
