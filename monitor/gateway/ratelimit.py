"""Rate-limit headers of every common family, read into one shape.

Gateways announce their limits in four header families; ``read_ratelimits``
reads them all into a ``RateLimits``: per kind (``requests``, ``tokens``) a
limit, a remaining count and the seconds until the window resets.

- NexoRouter (and GitHub style): ``x-ratelimit-limit``,
  ``x-ratelimit-remaining`` (kind ``requests``) and ``x-ratelimit-reset``:
  epoch seconds, epoch milliseconds (told apart by magnitude: above 10^12 is
  milliseconds), or, below 10^9 (before 2001 as an epoch), seconds from now.
- OpenAI style: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``;
  resets are Go durations (``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``).
- IETF draft (up to -07): ``RateLimit-Limit``, ``RateLimit-Remaining``,
  ``RateLimit-Reset`` (seconds from now), kind ``requests``; the limit may
  carry a policy after ``,`` or ``;`` (``100, 100;w=60``): the first item
  counts.
- IETF draft (-08 on), structured fields: ``RateLimit: "name";r=..;t=..``
  (remaining, seconds to reset) with ``RateLimit-Policy: "name";q=..;w=..``
  (the quota, looked up by the same name); a policy whose quota unit ``qu``
  names tokens is kind ``tokens``, any other is ``requests``.

Where several families give the same figure, the first in the order above
wins. Every value is untrusted: one that does not parse is ignored and
counted in ``RateLimits.invalid``, never an exception and never a failed
probe.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["requests", "tokens"]
KINDS: tuple[Kind, ...] = ("requests", "tokens")

_MAX_RESET_S = 366 * 86400.0  # a reset further away than a year is not a rate-limit window
_EPOCH_S = 10**9  # 2001-09-09 as an epoch: smaller values are seconds from now
_EPOCH_MS = 10**12  # larger values are epoch milliseconds
_MAX_VALUE_LEN = 256  # longer values are not rate-limit headers; not parsed at all
# BIGINT, the column of the counts: anything larger is not a count.
_MAX_COUNT = 2**63 - 1

# Every header name read here, lower-case (monitor.gateway.headers whitelists them).
HEADER_NAMES = frozenset(
    {
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        *(
            f"x-ratelimit-{part}-{kind}"
            for part in ("limit", "remaining", "reset")
            for kind in KINDS
        ),
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "ratelimit",
        "ratelimit-policy",
    }
)

_GO_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns))")
_GO_DURATION_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|ns))+")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_SF_NAME = re.compile(r'"((?:[^"\\]|\\.)*)"|([A-Za-z*][A-Za-z0-9_\-.:%*/]*)')


@dataclass(frozen=True, slots=True)
class Window:
    """One kind's figures; None where the gateway did not say (or said nonsense)."""

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None

    def empty(self) -> bool:
        return self.limit is None and self.remaining is None and self.reset_s is None


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The rate-limit state one answer announced, by kind, and how many values were invalid."""

    requests: Window = field(default_factory=Window)
    tokens: Window = field(default_factory=Window)
    invalid: int = 0

    def window(self, kind: Kind) -> Window:
        return self.requests if kind == "requests" else self.tokens

    def result_fields(self) -> dict[str, int | float | None]:
        """The ProbeResult fields (and ``probe_results`` columns): the requests kind
        unsuffixed (``ratelimit_limit`` keeps its meaning), the tokens kind ``_tokens``."""
        req, tok = self.requests, self.tokens
        return {
            "ratelimit_limit": req.limit,
            "ratelimit_remaining": req.remaining,
            "ratelimit_reset_s": req.reset_s,
            "ratelimit_limit_tokens": tok.limit,
            "ratelimit_remaining_tokens": tok.remaining,
            "ratelimit_reset_tokens_s": tok.reset_s,
            "ratelimit_invalid": self.invalid,
        }


def parse_count(value: str | None) -> int | None:
    """A non-negative integer header value that fits a BIGINT, else None."""
    if value is None:
        return None
    value = value.strip()
    # The length check first: int() refuses over 4,300 digits with an exception.
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    count = int(value)
    return count if count <= _MAX_COUNT else None


def _seconds(value: float) -> float | None:
    """A finite, non-negative number of seconds within a year, else None."""
    if not math.isfinite(value) or value < 0 or value > _MAX_RESET_S:
        return None
    return value


def parse_go_duration(value: str | None) -> float | None:
    """An OpenAI-style reset (``6m0s``, ``20ms``, ``1h2m3.5s``; a bare number is seconds)."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 64:
        return None
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    if not _GO_DURATION_WHOLE.fullmatch(value):
        return None
    total = sum(float(number) * _GO_UNITS[unit] for number, unit in _GO_DURATION.findall(value))
    return _seconds(total)


def parse_epoch_reset(value: str | None, now_epoch: float) -> float | None:
    """``x-ratelimit-reset``: epoch s or ms by magnitude, small values seconds from now."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 32:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    if number >= _EPOCH_MS:
        return _seconds(max(0.0, number / 1000.0 - now_epoch))
    if number >= _EPOCH_S:
        return _seconds(max(0.0, number - now_epoch))
    return _seconds(number)


def _first_item(value: str) -> str:
    """The first list item of a draft-07 value (``100, 100;w=60`` -> ``100``)."""
    return value.split(",", 1)[0].split(";", 1)[0]


def _parse_sf_list(value: str) -> dict[str, dict[str, str]] | None:
    """A structured-field list of ``name;key=value`` members (RFC 8941, the subset used here).

    Returns name -> parameters, or None when the value is not such a list.
    """
    members: dict[str, dict[str, str]] = {}
    for raw_member in value.split(","):
        member = raw_member.strip()
        if not member:
            return None
        match = _SF_NAME.match(member)
        if match is None:
            return None
        name = match.group(1) if match.group(1) is not None else match.group(2)
        rest = member[match.end() :]
        if rest and not rest.startswith(";"):
            return None
        params: dict[str, str] = {}
        for raw_param in rest.split(";")[1:]:
            key, _, param_value = raw_param.strip().partition("=")
            if not key:
                return None
            params[key.strip().lower()] = param_value.strip().strip('"')
        members[name] = params
    return members or None


class _Reader:
    """Collects one answer's figures, first family first; counts what does not parse."""

    def __init__(self, headers: Mapping[str, str], now_epoch: float) -> None:
        self.headers = headers
        self.now_epoch = now_epoch
        self.invalid = 0
        self.figures: dict[Kind, dict[str, float | int]] = {"requests": {}, "tokens": {}}

    def get(self, name: str) -> str | None:
        value = self.headers.get(name)
        if value is not None and len(value) > _MAX_VALUE_LEN:
            self.invalid += 1
            return None
        return value

    def put(self, kind: Kind, what: str, value: str | None, parsed: float | int | None) -> None:
        if value is None:
            return
        if parsed is None:
            self.invalid += 1
        else:
            self.figures[kind].setdefault(what, parsed)

    def count(self, kind: Kind, what: str, name: str, *, first_item: bool = False) -> None:
        value = self.get(name)
        raw = _first_item(value) if value is not None and first_item else value
        self.put(kind, what, value, parse_count(raw))

    def structured(self) -> None:
        """``RateLimit`` + ``RateLimit-Policy`` (draft -08 on)."""
        value, policy_value = self.get("ratelimit"), self.get("ratelimit-policy")
        if value is None:
            return
        members = _parse_sf_list(value)
        policies = _parse_sf_list(policy_value) if policy_value else {}
        if members is None or policies is None:
            self.invalid += 1
            return
        for name, params in members.items():
            policy = policies.get(name, {})
            unit = policy.get("qu", "requests").lower()
            kind: Kind = "tokens" if "token" in unit else "requests"
            if "r" in params:
                self.put(kind, "remaining", params["r"], parse_count(params["r"]))
            if "t" in params:
                self.put(kind, "reset_s", params["t"], parse_go_duration(params["t"]))
            if "q" in policy:
                self.put(kind, "limit", policy["q"], parse_count(policy["q"]))

    def result(self) -> RateLimits:
        def window(kind: Kind) -> Window:
            got = self.figures[kind]
            limit, remaining, reset = got.get("limit"), got.get("remaining"), got.get("reset_s")
            return Window(
                limit=int(limit) if limit is not None else None,
                remaining=int(remaining) if remaining is not None else None,
                reset_s=float(reset) if reset is not None else None,
            )

        return RateLimits(window("requests"), window("tokens"), self.invalid)


def read_ratelimits(headers: Mapping[str, str], now_epoch: float) -> RateLimits:
    """Every family's figures from ``headers`` (lower-case names), in the module's order."""
    reader = _Reader(headers, now_epoch)
    reader.count("requests", "limit", "x-ratelimit-limit")  # NexoRouter
    reader.count("requests", "remaining", "x-ratelimit-remaining")
    value = reader.get("x-ratelimit-reset")
    reader.put("requests", "reset_s", value, parse_epoch_reset(value, now_epoch))
    for kind in KINDS:  # OpenAI style
        reader.count(kind, "limit", f"x-ratelimit-limit-{kind}")
        reader.count(kind, "remaining", f"x-ratelimit-remaining-{kind}")
        value = reader.get(f"x-ratelimit-reset-{kind}")
        reader.put(kind, "reset_s", value, parse_go_duration(value))
    reader.structured()  # IETF, structured fields
    reader.count("requests", "limit", "ratelimit-limit", first_item=True)  # IETF, draft-07
    reader.count("requests", "remaining", "ratelimit-remaining", first_item=True)
    value = reader.get("ratelimit-reset")
    raw = _first_item(value) if value is not None else None
    reader.put("requests", "reset_s", value, parse_go_duration(raw) if raw else None)
    return reader.result()
