"""Reading and formatting prometheus_client children's values, as the library does.

Used by ``monitor.exporter.exposition``. Contract: byte-for-byte prometheus_client's
formatting: the first time a series is
rendered, its lines come from ``generate_latest`` itself (so escaping,
label order and float formatting are the library's); later renders keep
each line's ``name{labels} `` prefix (in the template; a prefix never
changes for a series) and append ``floatToGoString(value)``
(``go_string`` is that function, memoised for integral values).
``values_of`` reads a child's values in ``_child_samples()`` order,
``_created`` left out, without taking the values' locks (reading a
float attribute is atomic; the lock only guards read-modify-write). Both
lean on prometheus_client internals (``_value``, ``_buckets``, ``_sum``,
``_upper_bounds``) and are pinned by tests against the library's own
samples and ``generate_latest``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from prometheus_client import Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

_GO_MEMO_MAX = 4096  # integral values seen: counts, status codes, token totals
# Non-zero integral value -> its text. Never a zero: 0.0 == -0.0, but they
# format differently, so a lookup must not find one for the other.
GO_MEMO: dict[float, str] = {}
_ZERO, _NEG_ZERO = floatToGoString(0.0), floatToGoString(-0.0)


def go_string(value: float) -> str:
    """``floatToGoString(value)``, memoised for non-zero integral values.

    ``GO_MEMO.get(value) or go_string(value)`` is the same, one call
    cheaper on a hit.
    """
    text = GO_MEMO.get(value)
    if text is not None:
        return text
    if not value:
        return _NEG_ZERO if math.copysign(1.0, value) < 0 else _ZERO
    text = floatToGoString(value)
    if type(value) is float and value.is_integer() and len(GO_MEMO) < _GO_MEMO_MAX:
        GO_MEMO[value] = text
    return text


def values_of(child: Any) -> list[float]:
    """A child's sample values in ``_child_samples()`` order, without ``_created``."""
    if type(child) is Histogram:
        values: list[float] = []
        acc = 0.0
        for bucket in child._buckets:
            acc += bucket._value
            values.append(acc)
        values.append(acc)  # _count
        if child._upper_bounds[0] >= 0:
            values.append(child._sum._value)
        return values
    return [child._value._value]  # Gauge, Counter: one sample


def lines_per_series(metric: MetricWrapperBase) -> int:
    """How many sample lines each series of ``metric`` has (``values_of``'s length)."""
    if type(metric) is Histogram:
        return len(metric._upper_bounds) + 1 + (metric._upper_bounds[0] >= 0)
    return 1


class _Families:
    """The smallest thing ``generate_latest`` accepts: a ``collect()``."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> list[Metric]:
        return self._families


def text_of(families: Iterable[Metric]) -> bytes:
    return generate_latest(_Families(families))  # type: ignore[arg-type]


def samples_of(child: Any) -> list[Sample]:
    """A child's samples without ``_created``; names are suffixes (``_total``, ``_bucket``)."""
    return [s for s in child._samples() if s.name != "_created"]
