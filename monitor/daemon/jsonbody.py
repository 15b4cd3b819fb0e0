"""JSON bodies of the daemon's routes: one encoder, and parts encoded once and reused.

At 10,000 models ``/api/v1/status`` is ~10 MB of JSON. Building it as one
dict tree and encoding it at every request took ~0.5 s of a core and left
~30 MB of short-lived objects per request (heap the allocator keeps). The
parts that do not change between requests are kept encoded instead:

- ``encode(value)``: the bytes of every JSON answer of the daemon (datetimes
  as ISO 8601, Decimals as strings, sets and tuples as lists; UTF-8, no
  ``\\uXXXX`` escapes; NaN and infinities refused with ValueError).
- ``ResultsJson.encode(results)``: a JSON array of ``ProbeResult.to_json()``,
  each result encoded once and reused while it is the job's last result
  (results are frozen: the same object always encodes the same).
- ``json_object(pairs)``: a JSON object from already encoded values;
  ``json_array(values)`` an array encoded value by value (never one long
  hold of the GIL, see its docstring).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from monitor.results import ProbeResult


def json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


# One encoder for every call: ``json.dumps`` with arguments builds a JSONEncoder
# at each call, a tenth to a fifth of the time of encoding a probe result
# (10,000 of them per /api/v1/status; best of 7 on a noisy machine).
# ``encode`` keeps no state between calls, so one instance serves every thread.
_ENCODER = json.JSONEncoder(default=json_default, ensure_ascii=False, allow_nan=False)


def encode(value: Any) -> bytes:
    """``value`` as UTF-8 JSON (see the module docstring)."""
    return _ENCODER.encode(value).encode()


def encode_result(result: ProbeResult) -> bytes:
    """``result.to_json()`` as UTF-8 JSON (what ``ResultsJson`` keeps per result)."""
    return encode(result.to_json())


def json_array(values: Iterable[Any]) -> bytes:
    """``[value, ...]``: the JSON of ``encode(list(values))``, encoded one value at a time.

    For large arrays built in a worker thread: the C encoder holds the GIL for
    the whole of one call, and one call over the 24 h window's 10,000 rows
    (~10 MB) held it for 0.15-0.23 s, a stall of the event loop that long
    (benchmarks/gil_hold.py; once a minute at 10,000 models). Between two
    values the loop gets the GIL back within the switch interval.
    """
    return b"[" + b",".join(map(encode, values)) + b"]"


def json_object(pairs: Iterable[tuple[str, bytes]]) -> bytes:
    """``{"key": value, ...}`` from keys and already encoded values, in order."""
    return b"{" + b",".join(encode(key) + b":" + value for key, value in pairs) + b"}"


class ResultsJson:
    """Encodes the last results, each once while it stays the last of its job."""

    def __init__(self) -> None:
        self._encoded: dict[Hashable, tuple[ProbeResult, bytes]] = {}

    def encode(self, results: Mapping[Hashable, ProbeResult]) -> bytes:
        """A JSON array of every result's ``to_json()``, in ``results``' order.

        ``results`` must not change during the call (the daemon passes a
        ``LastResults.snapshot()``). Safe from worker threads: two calls at once
        encode some results twice.
        """
        kept = self._update(results)
        return b"[" + b",".join(part for _, part in kept.values()) + b"]"

    def refresh(self, results: Mapping[Hashable, ProbeResult]) -> None:
        """Encodes what changed in ``results`` ahead of the next ``encode`` (same
        rules), so that call finds little left to do: the status keeper calls it
        every few seconds while /api/v1/status is asked."""
        self._update(results)

    def _update(
        self, results: Mapping[Hashable, ProbeResult]
    ) -> dict[Hashable, tuple[ProbeResult, bytes]]:
        kept: dict[Hashable, tuple[ProbeResult, bytes]] = {}
        known = self._encoded
        for key, result in results.items():
            hit = known.get(key)
            if hit is None or hit[0] is not result:
                hit = (result, encode_result(result))
            kept[key] = hit
        self._encoded = kept  # jobs that are gone drop out
        return kept
