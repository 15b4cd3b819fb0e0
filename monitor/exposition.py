"""Incremental Prometheus text exposition of the per-(target, model) metric families.

Why: at 1,000 models the exporter holds ~37,000 samples, and
prometheus_client's ``generate_latest`` re-renders every one of them on every
scrape (~10 µs a sample: label sorting, name and label escaping, float
formatting), ~0.4-0.8 s a scrape. Yet values only change when a probe result
arrives (1,000 models at a 60 s interval: ~17 results a second), so most of
that work repeats the previous scrape's.

How: ``SeriesExposition`` keeps the rendered sample lines of every series,
grouped per metric family and per (target, model) key. The owner marks a
series (``mark(key, series)``) whenever it creates or changes it, and a key
(``mark(key)``) when it removes series of it; ``render`` re-reads and
re-renders only the marked series, drops the gone ones, re-joins the
touched (family, key) chunks, and joins the chunks under each family's one
``# HELP``/``# TYPE`` header (the text format wants every sample of a
family grouped under it). With nothing marked, the last body is reused.

Contracts:

- The prometheus_client metric objects stay the single source of truth:
  values are read from the children (``child.collect()``) at render time,
  never copied at observe time.
- Byte-for-byte prometheus_client's formatting: the first time a series is
  rendered, its lines come from ``generate_latest`` itself (so escaping,
  label order and float formatting are the library's); each line's
  ``name{labels} `` prefix is kept, and later renders only append
  ``floatToGoString(value)``. A prefix never changes for a series, since
  its name and labels do not.
- No ``_created`` samples (see ``monitor.exporter``).
- ``render`` is safe to call from several threads (scrapes serialise on a
  lock); ``mark`` from any thread. A key marked while a render runs stays
  dirty and is rendered again by the next scrape, so a racing change is
  never lost, at worst shown one scrape late, as with ``generate_latest``,
  which also reads children one at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

Key = tuple[str, str]  # (target, model)
SeriesId = tuple[MetricWrapperBase, tuple[str, ...]]  # (metric, label values)
# What the owner hands ``render`` per marked key: every live series of it.
Children = Mapping[Key, Sequence[tuple[SeriesId, Any]]]


class _Families:
    """The smallest thing ``generate_latest`` accepts: a ``collect()``."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> list[Metric]:
        return self._families


def _text(families: Iterable[Metric]) -> str:
    return generate_latest(_Families(families)).decode("utf-8")  # type: ignore[arg-type]


def _samples(child: Any) -> list[Sample]:
    """A child's samples without ``_created``; names are suffixes (``_total``, ``_bucket``).

    ``_samples()`` is prometheus_client's own per-child reading (what
    ``collect()`` wraps), half the cost of ``child.collect()``.
    """
    return [s for s in child._samples() if s.name != "_created"]


class SeriesExposition:
    """Cached text of ``metrics``' series, re-rendered per marked series.

    ``labelnames`` gives each metric's label names in order (to turn a
    series' label values back into labels).
    """

    def __init__(
        self,
        metrics: Sequence[MetricWrapperBase],
        labelnames: Mapping[MetricWrapperBase, tuple[str, ...]],
    ) -> None:
        self._metrics = tuple(metrics)
        self._order = {m: i for i, m in enumerate(self._metrics)}
        self._labelnames = dict(labelnames)
        # The describe() family (name, help, type) of each metric, and its header lines.
        self._desc = {m: m.describe()[0] for m in self._metrics}
        self._headers = {m: _text([self._empty(m)]) for m in self._metrics}
        self._dirty: dict[Key, set[SeriesId]] = {}
        self._dirty_lock = threading.Lock()
        self._render_lock = threading.Lock()
        # metric -> key -> that key's lines of the metric (dict order = output order)
        self._chunks: dict[MetricWrapperBase, dict[Key, str]] = {m: {} for m in self._metrics}
        # key -> series -> (its lines' "name{labels} " prefixes, its lines), in series order
        self._rendered: dict[Key, dict[SeriesId, tuple[tuple[str, ...], str]]] = {}
        self._body: bytes | None = None  # the last render, while nothing was marked since

    def _empty(self, metric: MetricWrapperBase) -> Metric:
        desc = self._desc[metric]
        return Metric(desc.name, desc.documentation, desc.type, desc.unit)

    # -- bookkeeping -------------------------------------------------------

    def mark(self, key: Key, series: SeriesId | None = None) -> None:
        """Note that ``series`` of ``key`` was created or changed, or (``None``)
        that some series of ``key`` may have been removed."""
        with self._dirty_lock:
            marked = self._dirty.setdefault(key, set())
            if series is not None:
                marked.add(series)

    def _take_dirty(self) -> dict[Key, set[SeriesId]]:
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, {}
        return dirty

    # -- rendering -----------------------------------------------------------

    def render(self, children_of: Callable[[set[Key]], Children]) -> bytes:
        """The UTF-8 text of every cached family, after re-rendering what was marked.

        ``children_of(keys)`` returns, for each of ``keys``, every live series
        of the key with its prometheus_client child (an empty sequence for a
        key whose series are all gone); the owner takes its own lock there.
        """
        with self._render_lock:
            dirty = self._take_dirty()
            if dirty:
                for key, children in children_of(set(dirty)).items():
                    self._render_key(key, dirty[key], children)
            if dirty or self._body is None:
                parts: list[str] = []
                for metric in self._metrics:
                    parts.append(self._headers[metric])
                    parts.extend(self._chunks[metric].values())
                self._body = "".join(parts).encode("utf-8")
            return self._body

    def _render_key(
        self, key: Key, marked: set[SeriesId], children: Sequence[tuple[SeriesId, Any]]
    ) -> None:
        """Re-render the marked and never-rendered series of ``key``; drop the gone ones.

        Only the chunks of metrics with a re-rendered, new or gone series are
        joined again (a /models result marks just ``listed`` of every model).
        """
        old = self._rendered.pop(key, {})
        rendered: dict[SeriesId, tuple[tuple[str, ...], str]] = {}
        new: dict[SeriesId, list[Sample]] = {}
        touched: set[MetricWrapperBase] = set()
        for series, child in children:
            known = old.pop(series, None)
            if known is not None and series not in marked:
                rendered[series] = known
                continue
            touched.add(series[0])
            samples = _samples(child)
            if known is not None and len(known[0]) == len(samples):
                text = "".join(
                    [
                        p + floatToGoString(s.value) + "\n"
                        for p, s in zip(known[0], samples, strict=True)
                    ]
                )
                rendered[series] = (known[0], text)
            else:
                new[series] = samples
        touched.update(metric for metric, _ in old)  # what is left in old is gone
        rendered.update(self._first_render(new))
        if rendered:
            self._rendered[key] = rendered
        by_metric: dict[MetricWrapperBase, list[str]] = {metric: [] for metric in touched}
        for series, _ in children:
            if series[0] in by_metric:
                by_metric[series[0]].append(rendered[series][1])
        for metric, texts in by_metric.items():
            if texts:
                self._chunks[metric][key] = "".join(texts)
            else:
                self._chunks[metric].pop(key, None)

    def _first_render(
        self, new: Mapping[SeriesId, list[Sample]]
    ) -> dict[SeriesId, tuple[tuple[str, ...], str]]:
        """Series never rendered before, as ``generate_latest`` writes them.

        One ``generate_latest`` call for all of them: one family per metric,
        each series' samples in order; the output has the same order.
        """
        if not new:
            return {}
        ordered = sorted(new.items(), key=lambda item: self._order[item[0][0]])
        families: dict[MetricWrapperBase, Metric] = {}
        for (metric, values), samples in ordered:
            family = families.get(metric)
            if family is None:
                family = families[metric] = self._empty(metric)
            labels = dict(zip(self._labelnames[metric], values, strict=True))
            for s in samples:
                family.add_sample(family.name + s.name, {**labels, **s.labels}, s.value)
        # split("\n"), not splitlines(): a label value may hold other line breaks
        # (\x1c, \u2028...) that the format leaves unescaped. A sample line starts
        # with its metric name, never with "#".
        text = _text(families.values())
        lines = (line + "\n" for line in text.split("\n")[:-1] if not line.startswith("#"))
        out = {}
        for series, samples in ordered:
            mine = [next(lines) for _ in samples]
            out[series] = (tuple(line[: line.rindex(" ") + 1] for line in mine), "".join(mine))
        return out
