"""run_probe: the one path every probe attempt takes.

The scheduler and ``nexomon probe`` both call ``ProbeRunner.run``. It decides
whether a request may be sent at all (a ``retry-after`` still running, the
daily budget reached: then the attempt is recorded as ``skipped`` and no
request leaves), runs the probe, prices the result, updates the budget and
the rate-limit hold, and hands the finished ``ProbeResult`` to every sink
(exporter, writer, state log).

Contract: ``run`` never raises for gateway trouble (that is an outcome). An
exception out of a probe is a bug: it is logged with its traceback, counted
through ``on_bug``, and ``run`` returns None.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from monitor.config.model import Price, TargetConfig
from monitor.gateway.client import GatewayClient
from monitor.outcome import Outcome
from monitor.probes import PROBES, ProbeContext
from monitor.results import ProbeResult
from monitor.spend.budget import Budget, Reservation
from monitor.spend.forecast import estimate_prompt_tokens, expected_cost
from monitor.spend.pricing import UnpricedTracker, price_result, spent_tokens

log = logging.getLogger("nexomon.runner")

Sink = Callable[[ProbeResult], None]
# The probes that send a completion request: priced, budgeted, held by retry-after.
SPENDING = frozenset({"chat", "stream"})


@dataclass
class RetryAfterHolds:
    """Per (target, model): no chat or stream request before the gateway's retry-after ends.

    Times are ``time.monotonic()`` seconds so wall-clock jumps cannot shorten
    a hold.
    """

    clock: Callable[[], float] = time.monotonic
    _until: dict[tuple[str, str], float] = field(default_factory=dict)

    def remaining(self, target: str, model: str) -> float:
        until = self._until.get((target, model))
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._until[(target, model)]
            return 0.0
        return left

    def update(self, result: ProbeResult) -> None:
        if result.outcome is Outcome.RATE_LIMITED and result.retry_after_s:
            key = (result.target, result.model)
            until = self.clock() + result.retry_after_s
            self._until[key] = max(until, self._until.get(key, 0.0))


class ProbeRunner:
    """Runs one probe attempt end to end; see the module docstring."""

    def __init__(
        self,
        *,
        location: str,
        targets: Mapping[str, TargetConfig],
        clients: Mapping[str, GatewayClient],
        pricing: Mapping[str, Price],
        budget: Budget | None = None,
        sinks: Sequence[Sink] = (),
        on_bug: Callable[[], None] = lambda: None,
        on_unpriced: Callable[[str, str, bool], None] | None = None,
        holds: RetryAfterHolds | None = None,
    ) -> None:
        self.location = location
        self.targets = dict(targets)
        self.clients = dict(clients)
        self.pricing = dict(pricing)
        self.budget = budget
        self.sinks = list(sinks)
        self.holds = holds or RetryAfterHolds()
        self._on_bug = on_bug
        self._on_unpriced = on_unpriced
        self.unpriced = UnpricedTracker()

    async def run(self, target_name: str, probe: str, model: str = "") -> ProbeResult | None:
        target = self.targets[target_name]
        price = target.price(model, self.pricing) if probe in SPENDING else None
        reservation: Reservation | None = None
        skipped = self._hold_reason(target_name, probe, model)
        if skipped is None and probe in SPENDING and self.budget is not None:
            reservation = self.budget.reserve(
                expected_cost(target, price),
                estimate_prompt_tokens(target.prompt) + target.max_tokens,
            )
            if reservation is None:
                skipped = self.budget.reason()
        if skipped is not None:
            result: ProbeResult | None = self._skipped(target_name, probe, model, skipped)
        else:
            result = await self._attempt(target, probe, model)
            if result is not None and probe in SPENDING:
                result = self._price(result, price)
            if reservation is not None:
                self.budget.settle(reservation, result)  # type: ignore[union-attr]
        if result is None:
            return None
        self.holds.update(result)
        for sink in self.sinks:
            try:
                sink(result)
            except Exception:
                log.exception("bug: result sink %r raised", sink)
                self._on_bug()
        return result

    async def _attempt(self, target: TargetConfig, probe: str, model: str) -> ProbeResult | None:
        ctx = ProbeContext(client=self.clients[target.name], target=target, location=self.location)
        try:
            return await PROBES[probe](ctx, model)
        except Exception:
            log.exception("bug: probe %s/%s/%s raised", target.name, probe, model or "-")
            self._on_bug()
            return None

    def _hold_reason(self, target: str, probe: str, model: str) -> str | None:
        if probe not in SPENDING:
            return None
        left = self.holds.remaining(target, model)
        if left > 0:
            return f"waiting out retry-after ({left:.0f}s left)"
        return None

    def _skipped(self, target: str, probe: str, model: str, reason: str) -> ProbeResult:
        return ProbeResult(
            started_at=datetime.now(UTC),
            location=self.location,
            target=target,
            probe=probe,
            model=model,
            outcome=Outcome.SKIPPED,
            error=reason,
        )

    def _price(self, result: ProbeResult, price: Price | None) -> ProbeResult:
        result = price_result(result, price)
        if self.unpriced.observe(result, price):
            log.warning(UnpricedTracker.warning(result.target, result.model))
        if self._on_unpriced is not None and spent_tokens(result):
            self._on_unpriced(result.target, result.model, price is None)
        return result
