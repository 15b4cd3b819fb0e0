"""What every probe shares: its context, its signature and the common result fields.

A probe is ``async def probe(ctx: ProbeContext, model: str) -> ProbeResult``
(``model`` is "" for probes that are not per model). It never raises for
gateway trouble: every failure is a ProbeResult with an outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.gateway.classify import ShapeCheck, classify
from monitor.gateway.client import GatewayClient
from monitor.gateway.exchange import Exchange
from monitor.results import ProbeResult
from monitor.untrusted import clean

# The error line is short by construction (classify); this bound only makes
# sure no future path can hand a sink a gateway's whole body.
ERROR_LIMIT = 512


class ProbeTarget(Protocol):
    """The part of a target's config that probes read (monitor.config.model's target)."""

    @property
    def name(self) -> str: ...

    @property
    def max_tokens(self) -> int: ...

    @property
    def prompt(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """What a probe runs with: a client bound to the target, its config, our location."""

    client: GatewayClient
    target: ProbeTarget
    location: str


ProbeFn = Callable[[ProbeContext, str], Awaitable[ProbeResult]]


def exchange_result(
    ctx: ProbeContext,
    probe: str,
    model: str,
    exchange: Exchange,
    expect: ShapeCheck,
    **fields: Any,
) -> ProbeResult:
    """The ProbeResult fields every probe fills the same way from its Exchange,
    plus the probe's own ``fields`` (one construction, no ``replace`` after).

    The Exchange's strings are clean already (GatewayClient); the error line,
    which quotes the gateway, passes monitor.untrusted.clean once more.
    """
    outcome, error = classify(exchange, expect)
    if error is not None:
        error = clean(error, ERROR_LIMIT)
    return ProbeResult(
        started_at=exchange.started_at,
        location=ctx.location,
        target=ctx.target.name,
        probe=probe,
        model=model,
        outcome=outcome,
        http_status=exchange.status,
        duration_s=exchange.duration_s,
        phases=exchange.phases,
        request_id=exchange.request_id,
        error=error,
        retry_after_s=exchange.retry_after_s,
        **exchange.ratelimits.result_fields(),
        **fields,
    )
