"""The rate-limit headers a chat answer carries, in one of the common families.

The bucket (``monitor.simulator.ratelimit``) is the truth; this module only
words it the way a gateway family does, so nexomon's reader
(``monitor.gateway.ratelimit``) can be tested against each on a real socket.
Scenario key ``ratelimit_headers``:

- ``nexorouter`` (default): ``x-ratelimit-limit``, ``x-ratelimit-remaining``.
- ``epoch``: those plus ``x-ratelimit-reset`` in epoch seconds (GitHub style).
- ``openai``: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, resets
  as Go durations (``1s``, ``6m0s``, ``20ms``).
- ``ietf``: draft-07 ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (whole
  seconds) with ``RateLimit-Policy``.
- ``ietf-structured``: draft-08 ``RateLimit: "requests";r=..;t=..,
  "tokens";r=..;t=..`` with ``RateLimit-Policy`` (``q``, ``w``, ``qu``).
- ``invalid``: every family's names with values that do not parse (a buggy
  gateway): nexomon must ignore and count them, never fail the probe.

The tokens kind is the request bucket scaled by ``TOKENS_PER_REQUEST``: a
simulated token budget that empties and refills with the requests one. A
reset is the time until the bucket is full again.
"""

from __future__ import annotations

import math

from monitor.simulator.ratelimit import Decision
from monitor.simulator.scenario import RATELIMIT_FAMILIES, RateLimit

FAMILIES = RATELIMIT_FAMILIES
TOKENS_PER_REQUEST = 1000

Header = tuple[bytes, bytes]


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's time.Duration prints it: ``20ms``, ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{round(secs, 3):g}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    return f"{hours}h{text}" if hours else text


def _h(name: str, value: object) -> Header:
    return name.encode("ascii"), str(value).encode("ascii")


def ratelimit_headers(
    family: str, decision: Decision, spec: RateLimit, wall_now: float
) -> list[Header]:
    """The headers of ``family`` for one take of the bucket ``spec``."""
    limit, remaining = decision.limit, decision.remaining
    reset_s = max(0.0, (limit - remaining) / spec.per_s)
    t_limit, t_remaining = limit * TOKENS_PER_REQUEST, remaining * TOKENS_PER_REQUEST
    if family == "epoch":
        return [
            _h("x-ratelimit-limit", limit),
            _h("x-ratelimit-remaining", remaining),
            _h("x-ratelimit-reset", math.ceil(wall_now + reset_s)),
        ]
    if family == "openai":
        return [
            _h("x-ratelimit-limit-requests", limit),
            _h("x-ratelimit-remaining-requests", remaining),
            _h("x-ratelimit-reset-requests", go_duration(reset_s)),
            _h("x-ratelimit-limit-tokens", t_limit),
            _h("x-ratelimit-remaining-tokens", t_remaining),
            _h("x-ratelimit-reset-tokens", go_duration(reset_s)),
        ]
    window = max(1, math.ceil(limit / spec.per_s))
    if family == "ietf":
        return [
            _h("ratelimit-limit", limit),
            _h("ratelimit-remaining", remaining),
            _h("ratelimit-reset", math.ceil(reset_s)),
            _h("ratelimit-policy", f"{limit};w={window}"),
        ]
    if family == "ietf-structured":
        reset = math.ceil(reset_s)
        return [
            _h(
                "ratelimit",
                f'"requests";r={remaining};t={reset}, "tokens";r={t_remaining};t={reset}',
            ),
            _h(
                "ratelimit-policy",
                f'"requests";q={limit};w={window}, "tokens";q={t_limit};w={window};qu="tokens"',
            ),
        ]
    if family == "invalid":
        return [
            _h("x-ratelimit-limit", "lots"),
            _h("x-ratelimit-remaining", "-1"),
            _h("x-ratelimit-reset-tokens", "soon"),
            _h("ratelimit", "not a list;;"),
        ]
    return [_h("x-ratelimit-limit", limit), _h("x-ratelimit-remaining", remaining)]
