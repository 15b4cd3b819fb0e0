"""Durations as people write them: ``30``, ``2.5``, ``"30s"``, ``"5m"``, ``"1h30m"``.

Contract:

- ``parse_duration(value) -> float`` returns seconds.
- A number (int or float, not bool) is seconds. A string is either a bare
  number of seconds (``"30"``, ``"2.5"``) or one or more ``<number><unit>``
  parts that are added up (``"1h30m"``, ``"1h 30m"``). Units: ``ms``, ``s``,
  ``m``, ``h``, ``d`` (case-insensitive).
- Anything else, a negative number, NaN or infinity raises ``ValueError``
  with a one-line message that says what is accepted. Callers that must not
  echo input (the config loader) word their own message instead.
"""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "parse_duration"]

# Longest unit first so "ms" is not read as "m" followed by garbage.
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|s|m|h|d)")
_BARE = re.compile(rf"\s*{_NUMBER}\s*")

_ACCEPTED = 'use seconds or numbers with units ms, s, m, h, d, e.g. 30, "30s", "5m", "1h30m"'


def parse_duration(value: int | float | str) -> float:
    """Return ``value`` in seconds; raise ``ValueError`` when it is not a duration."""
    if isinstance(value, bool):
        raise ValueError(f"a duration must be a number or a string; {_ACCEPTED}")
    if isinstance(value, int | float):
        try:
            return _checked(float(value))
        except OverflowError:  # an int beyond float range (TOML ints are unbounded)
            raise ValueError("a duration must be a finite number of seconds") from None
    if not isinstance(value, str):
        raise ValueError(f"a duration must be a number or a string; {_ACCEPTED}")
    text = value.strip().lower()
    if _BARE.fullmatch(text):
        return _checked(float(text))
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"invalid duration {value!r}; {_ACCEPTED}")
    return _checked(total)


def _checked(seconds: float) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds < 0:
        raise ValueError("a duration must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds compactly for messages: ``0.25`` -> ``"250ms"``, ``90`` -> ``"1m30s"``.

    Whole-second values are split into d/h/m/s parts; anything with a
    fraction is shown in seconds (``"2.5s"``), below one second in ms.
    """
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    if rest == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
