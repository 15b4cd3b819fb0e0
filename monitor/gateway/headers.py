"""The whitelisted response headers, parsed defensively, and text hygiene.

Only these headers are read from a gateway answer: ``x-request-id``,
``retry-after``, the body's ``content-*``, the rate-limit headers of every
common family (``monitor.gateway.ratelimit.HEADER_NAMES``) and the CORS
``access-control-*`` answers (``CORS_HEADERS``). Every value comes from an
untrusted server: a malformed one becomes None, never an exception, and
text passes monitor.untrusted.clean (valid, no API key in any encoding) and
is cut to one short, printable line.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from monitor.gateway.ratelimit import HEADER_NAMES, RateLimits, parse_count, read_ratelimits
from monitor.untrusted import REDACTED, UNBOUNDED, clean

__all__ = ["REDACTED", "GatewayHeaders", "one_line", "parse_count", "read_headers"]

# C0, DEL, C1, the line/paragraph separators and the bidi controls: what
# monitor.untrusted.escape_controls would show as escapes becomes a space here.
_NOT_PRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
_SPACES = re.compile(r"\s+")


def one_line(text: str, limit: int = 200, secret: str | None = None) -> str:
    """``text`` as one printable line of at most ``limit`` characters, ``secret`` removed.

    The text passes monitor.untrusted.clean first (lone surrogates replaced,
    ``secret`` redacted in every encoding), before anything is cut, so no
    prefix of the secret can survive truncation. Control characters and
    runs of whitespace become one space.
    """
    text = clean(text, UNBOUNDED, secret)
    text = _SPACES.sub(" ", _NOT_PRINTABLE.sub(" ", text)).strip()
    if len(text) > limit:
        text = text[: max(0, limit - 1)].rstrip() + "…"
    return text


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``retry-after`` in seconds from ``now``: delay-seconds or an HTTP-date.

    RFC 9110 allows an integer number of seconds or an HTTP-date; a
    fractional number is accepted too (some gateways send it). A date in
    the past gives 0.0. Anything else (negative, NaN, garbage) is None.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 850 / asctime forms carry no zone: they mean GMT
        when = when.replace(tzinfo=UTC)
    now = datetime.now(UTC) if now is None else now
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class GatewayHeaders:
    """The whitelisted headers of one answer, parsed."""

    request_id: str | None = None
    ratelimits: RateLimits = RateLimits()  # noqa: RUF009 - frozen, shared safely
    retry_after_s: float | None = None
    # The CORS response headers (access-control-*), one clean line each: only
    # the contract checks read them (monitor.probes.contract).
    cors: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(
        cls, headers: Mapping[str, str], secret: str | None = None, now_epoch: float | None = None
    ) -> GatewayHeaders:
        """Parse from a mapping with lower-case names (``read_headers``' result).

        ``now_epoch`` (wall time, default now) turns epoch resets into seconds from now.
        """
        raw_id = headers.get("x-request-id")
        request_id = one_line(raw_id, 128, secret) if raw_id else None
        now = time.time() if now_epoch is None else now_epoch
        cors = tuple(
            (name, one_line(headers[name], 512, secret)) for name in CORS_HEADERS if name in headers
        )
        return cls(
            request_id=request_id or None,
            ratelimits=read_ratelimits(headers, now),
            retry_after_s=parse_retry_after(headers.get("retry-after")),
            cors=cors,
        )


# CORS answers, read for the contract checks (monitor.probes.contract).
CORS_HEADERS = (
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
)
# The only response headers nexomon reads (GatewayHeaders, body handling).
_READ_HEADERS = frozenset(
    {
        b"content-type",
        b"content-length",
        b"content-encoding",
        b"x-request-id",
        b"retry-after",
        *(name.encode("ascii") for name in HEADER_NAMES),
        *(name.encode("ascii") for name in CORS_HEADERS),
    }
)


def read_headers(headers: httpx.Headers) -> dict[str, str]:
    """The headers nexomon reads, lower-cased, in one pass over the raw list.

    httpx.Headers looks a name up by scanning and lower-casing every header
    on each access; the half-dozen lookups per answer profiled at ~10 µs.
    Repeated headers are joined with ", " as ``httpx.Headers.get`` does.
    """
    wanted: dict[str, str] = {}
    encoding = headers.encoding
    for raw_key, raw_value in headers.raw:
        key = raw_key.lower()
        if key in _READ_HEADERS:
            name, value = key.decode("ascii"), raw_value.decode(encoding)
            wanted[name] = f"{wanted[name]}, {value}" if name in wanted else value
    return wanted
