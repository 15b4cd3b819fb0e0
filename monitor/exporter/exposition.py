"""Incremental Prometheus text exposition of the per-(target, model) metric families.

Why: at 1,000 models the exporter holds ~66,000 samples, and
prometheus_client's ``generate_latest`` re-renders every one of them on every
scrape (~10 µs a sample: label sorting, name and label escaping, float
formatting), ~0.4-0.8 s a scrape. Yet values only change when a probe result
arrives (1,000 models at a 60 s interval: ~17 results a second), so most of
that work repeats the previous scrape's.

How: ``SeriesExposition`` keeps, per metric family and per (target, model)
key, the rendered UTF-8 lines of that key's series of the family (a
"chunk"), and per key a plan: for each of its chunks, a %-template of the
lines (each value replaced by "%s") and the children in line order. The
owner marks a key (``mark(key)``) whenever a value of it changes, and
``mark(key, structural=True)`` when a series of it appears or goes;
``render`` re-renders the marked keys only and joins the chunks under each
family's one ``# HELP``/``# TYPE`` header (the text format wants every
sample of a family grouped under it).

Re-rendering a key whose series stayed the same is cheap: each template is
filled with its children's current values (read straight from the
children, see ``values_of``, formatted by ``go_string``); no label is
formatted, no ``Sample`` built, no owner lock taken. A structural change
re-plans the key from ``children_of``: series seen before keep their
template lines, new ones get theirs from one ``generate_latest`` call per
batch of keys. Kept: the chunks (bytes), the templates (str), the plans;
~10 MB at 1,000 models (tracemalloc).

Contracts:

- The prometheus_client metric objects stay the single source of truth:
  values are read from the children at render time, never copied at
  observe time.
- Byte-for-byte prometheus_client's formatting: a series' first lines come
  from ``generate_latest`` itself; later renders keep each line's
  ``name{labels} `` prefix and append the value as the library formats it
  (``monitor.exporter.exposition_values``).
- No ``_created`` samples (see ``monitor.exporter.exporter``).
- ``const_labels`` (the process's ``location``) come first in every line,
  as ``monitor.exporter.collectors.WithoutCreated`` puts them. They are part
  of each series' template, rendered once with the series: a later render
  costs nothing more per sample for them.
- ``render`` is safe to call from several threads (scrapes serialise on a
  lock); ``render_steps`` drives the same work in slices, for the event
  loop; ``mark`` from any thread. A key marked while a render runs stays
  dirty and is rendered again by the next scrape, so a racing change is
  never lost, at worst shown one scrape late (a series removed after the
  marks were taken may be shown once more), as with ``generate_latest``,
  which also reads children one at a time.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from monitor.exporter.exposition_values import (
    GO_MEMO,
    go_string,
    lines_per_series,
    samples_of,
    text_of,
    values_of,
)

Key = tuple[str, str]  # (target, model)
SeriesId = tuple[MetricWrapperBase, tuple[str, ...]]  # (metric, label values)
# What the owner hands ``render`` per marked key: every live series of it.
Children = Mapping[Key, Sequence[tuple[SeriesId, Any]]]

_REPLAN_BATCH = 100  # keys per first render (see ``render``)
_REPLAN_SLICE = 4  # the same when rendering in steps of ~1 ms (``render_steps``)


class SeriesExposition:
    """Cached text of ``metrics``' series, re-rendered per marked key.

    ``labelnames`` gives each metric's label names in order (to turn a
    series' label values back into labels); ``const_labels`` go before them
    on every line. Every metric must be a plain
    prometheus_client ``Gauge``, ``Counter`` or ``Histogram`` (what
    ``values_of`` can read).
    """

    def __init__(
        self,
        metrics: Sequence[MetricWrapperBase],
        labelnames: Mapping[MetricWrapperBase, tuple[str, ...]],
        const_labels: Mapping[str, str] | None = None,
    ) -> None:
        self._const = dict(const_labels or {})
        for metric in metrics:
            if type(metric) not in (Gauge, Counter, Histogram):
                raise TypeError(f"cannot read the values of a {type(metric).__name__}")
        self._metrics = tuple(metrics)
        self._labelnames = {m: labelnames[m] for m in self._metrics}
        self._per = {m: lines_per_series(m) for m in self._metrics}
        # The describe() family (name, help, type) of each metric, and its header lines.
        self._desc = {m: m.describe()[0] for m in self._metrics}
        self._headers = {m: text_of([self._empty(m)]) for m in self._metrics}
        self._dirty: dict[Key, bool] = {}  # key -> a series of it appeared or went
        self._dirty_lock = threading.Lock()
        self._render_lock = threading.Lock()
        # metric -> key -> that key's lines of the metric (dict order = output order)
        self._chunks: dict[MetricWrapperBase, dict[Key, bytes]] = {m: {} for m in self._metrics}
        # key -> how to re-render each of its chunks while its series stay the same
        self._plans: dict[Key, list[_Chunk]] = {}

    def _empty(self, metric: MetricWrapperBase) -> Metric:
        desc = self._desc[metric]
        return Metric(desc.name, desc.documentation, desc.type, desc.unit)

    # -- bookkeeping -------------------------------------------------------

    def mark(self, key: Key, *, structural: bool = False) -> None:
        """Note that a series of ``key`` changed value, or (``structural``) that a
        series of ``key`` was created or removed."""
        with self._dirty_lock:
            if structural or key not in self._dirty:
                self._dirty[key] = structural

    def _take_dirty(self) -> dict[Key, bool]:
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, {}
        return dirty

    # -- rendering -----------------------------------------------------------

    def render(self, children_of: Callable[[set[Key]], Children]) -> bytes:
        """The UTF-8 text of every cached family, after re-rendering what was marked.

        ``children_of(keys)`` returns, for each of ``keys``, every live series
        of the key with its prometheus_client child (an empty sequence for a
        key whose series are all gone); the owner takes its own lock there.
        It is called only for keys marked ``structural`` (or never rendered).
        """
        for text in self.render_steps(children_of, slice_s=None):
            if text is not None:
                return text
        raise AssertionError("render_steps ended without the text")  # pragma: no cover

    def render_steps(
        self,
        children_of: Callable[[set[Key]], Children],
        *,
        slice_s: float | None,
        min_share: float = 0.0,
        ramp_s: float = math.inf,
    ) -> Iterator[bytes | None]:
        """``render`` in steps: yields None after each ~``slice_s`` seconds of
        work, then the text (last). ``slice_s=None``: no intermediate steps.

        For rendering on the event loop between other callbacks (see
        ``monitor.exporter.render``): a scrape of 2,400 fresh models is
        ~100 ms of CPU, which in one piece, or in a thread taking the GIL
        every switch interval, delays due probes by tens of ms. A step does
        not end while the render has worked less than its share of the time
        since it began: ``min_share``, rising to all of it over ``ramp_s``
        (age / ramp_s), so an overloaded loop cannot starve a scrape: one of
        W seconds of work ends within ~min(W / min_share, sqrt(W * ramp_s)).
        The render lock
        is held from the first step to the last: on one thread, drive one
        generator at a time (the caller serialises).
        """
        clock = time.perf_counter
        began = resumed = clock()
        worked = 0.0

        def step_over() -> bool:
            """Whether to yield now: a slice worked and the share is kept."""
            nonlocal worked, resumed
            now = clock()
            if slice_s is None or now - resumed < slice_s:
                return False
            age = now - began
            if worked + (now - resumed) < max(min_share, age / ramp_s) * age:
                return False  # behind its share: keep working
            worked += now - resumed
            return True

        with self._render_lock:
            dirty = self._take_dirty()
            if dirty:
                plans = self._plans
                changed = {
                    key for key, structural in dirty.items() if structural or key not in plans
                }
                for key in dirty.keys() - changed:
                    self._fill(key, plans[key])
                    if step_over():
                        yield None
                        resumed = clock()
                # Keys whose series changed, a batch at a time: the first render of
                # 1,000 new models would otherwise hold all their samples, the whole
                # generate_latest text and its lines at once (a peak RSS keeps).
                # When slicing, small batches (~0.4 ms a key) checked like keys above.
                ordered = list(changed)
                batch = _REPLAN_BATCH if slice_s is None else _REPLAN_SLICE
                for i in range(0, len(ordered), batch):
                    self._replan_batch(set(ordered[i : i + batch]), children_of)
                    if step_over():
                        yield None
                        resumed = clock()
            out: list[bytes] = []
            for metric in self._metrics:
                out.append(self._headers[metric])
                out.extend(self._chunks[metric].values())
            yield b"".join(out)

    def _replan_batch(self, keys: set[Key], children_of: Callable[[set[Key]], Children]) -> None:
        """Re-plan and render ``keys`` (their series appeared or went)."""
        pending: list[tuple[Key, int, MetricWrapperBase, _Pieces, tuple[Any, ...]]] = []
        new: list[tuple[SeriesId, Any]] = []
        for key, children in children_of(keys).items():
            self._replan(key, children, pending, new)
        first = self._first_render(new)
        plans = self._plans
        for key, i, metric, pieces, children in pending:
            template = "".join([p if isinstance(p, str) else first[p] for p in pieces])
            plans[key][i] = (metric, template, children)
            self._fill(key, [plans[key][i]])

    def _fill(self, key: Key, chunks: Iterable[_Chunk]) -> None:
        """Render chunks of ``key``: each template filled with its children's values."""
        memo, go, per, out = GO_MEMO.get, go_string, self._per, self._chunks
        for metric, template, children in chunks:
            if per[metric] == 1:  # Gauge or Counter children: one sample each
                values = [child._value._value for child in children]
            else:
                values = [v for child in children for v in values_of(child)]
            text = template % tuple([memo(v) or go(v) for v in values])
            out[metric][key] = text.encode("utf-8")

    def _replan(
        self,
        key: Key,
        children: Sequence[tuple[SeriesId, Any]],
        pending: list[tuple[Key, int, MetricWrapperBase, _Pieces, tuple[Any, ...]]],
        new: list[tuple[SeriesId, Any]],
    ) -> None:
        """Make the plan of ``key`` from its live series; drop chunks of metrics it lost.

        A chunk with the same children as before keeps its template; in any
        other, series seen before (the same child object) keep their template
        lines and new ones get theirs from one batched first render (appended
        to ``new``); those chunks go to ``pending``.
        """
        old = {chunk[0]: chunk for chunk in self._plans.pop(key, ())}
        groups: dict[MetricWrapperBase, list[tuple[SeriesId, Any]]] = {}
        for series, child in children:
            groups.setdefault(series[0], []).append((series, child))
        for metric in old.keys() - groups.keys():
            self._chunks[metric].pop(key, None)
        plan: list[_Chunk] = []
        for metric, group in groups.items():
            kids = tuple(child for _, child in group)
            _, template, old_kids = old.get(metric, (metric, "", ()))
            if old_kids == kids:  # the same objects (children compare by identity)
                plan.append((metric, template, kids))
                continue
            per = self._per[metric]
            lines = template.split("\n")
            at = {id(child): i * per for i, child in enumerate(old_kids)}
            pieces: _Pieces = []
            for series, child in group:
                start = at.get(id(child))
                if start is None:
                    pieces.append(series)
                    new.append((series, child))
                else:
                    pieces.append("".join([line + "\n" for line in lines[start : start + per]]))
            pending.append((key, len(plan), metric, pieces, kids))
            plan.append((metric, "", kids))  # completed once ``new`` is rendered
        if plan:
            self._plans[key] = plan
        self._fill(key, [chunk for chunk in plan if chunk[1]])

    def _first_render(self, new: Sequence[tuple[SeriesId, Any]]) -> dict[SeriesId, str]:
        """The template lines of series never rendered before, from ``generate_latest``.

        One ``generate_latest`` call for all of them: one family per metric,
        each series' samples in order; the output has the same order. Each
        line's value is cut off (at its last space: a value has none, a label
        value is quoted) and replaced by "%s"; "%" in labels is doubled.
        """
        if not new:
            return {}
        order = {m: i for i, m in enumerate(self._metrics)}
        ordered = sorted(new, key=lambda item: order[item[0][0]])
        families: dict[MetricWrapperBase, Metric] = {}
        counts: list[tuple[SeriesId, int]] = []
        for (metric, values), child in ordered:
            family = families.get(metric)
            if family is None:
                family = families[metric] = self._empty(metric)
            labels = {**self._const, **dict(zip(self._labelnames[metric], values, strict=True))}
            samples = samples_of(child)
            for s in samples:
                family.add_sample(family.name + s.name, {**labels, **s.labels}, s.value)
            counts.append(((metric, values), len(samples)))
        # split("\n"), not splitlines(): a label value may hold other line breaks
        # (\x1c, \u2028...) that the format leaves unescaped. A sample line starts
        # with its metric name, never with "#".
        text = text_of(families.values()).decode("utf-8")
        lines = (
            line[: line.rindex(" ") + 1].replace("%", "%%") + "%s\n"
            for line in text.split("\n")[:-1]
            if not line.startswith("#")
        )
        return {series: "".join([next(lines) for _ in range(n)]) for series, n in counts}


# How to render one (metric, key) chunk: (metric, %-template of its lines, its
# children in line order).
_Chunk = tuple[MetricWrapperBase, str, tuple[Any, ...]]
# A chunk being re-planned: a series' template lines, or the id of a new series.
_Pieces = list[str | SeriesId]
