"""What one result says beyond up/down: usage, spend, rate limits, substitution.

``UsageSignals`` is the part of ``Exporter`` that turns a result's token
usage, cost, rate-limit figures and answered model into the per-(target,
model) series; it relies on the Exporter's ``_child`` / ``_set`` cache and
is called with the Exporter's lock held.

Contracts:

- Rate-limit gauges carry ``kind`` (``requests``, ``tokens``); each kind's
  series appears with its first value and keeps the last one announced (a
  figure a later answer omits is not cleared: the gateway said nothing new).
- ``nexomon_ratelimit_invalid_headers_total{target}`` counts the values
  that did not parse; the probe's outcome is untouched.
- The substitution pair appears with the first chat answer that names its
  model: ``nexomon_model_substituted`` is 1 or 0 for the last such answer
  and ``nexomon_model_substitutions_total`` starts at 0, so ``increase()``
  sees the first substitution. An answer without a model changes neither.
  With ``compact`` the pair appears with the first substitution, at 1.
- A ``contract`` result (monitor.probes.contract; ``model`` is the check's
  name) sets ``nexomon_contract_check{target,check}`` and nothing else.
"""

from __future__ import annotations

from typing import Any

from monitor.exporter.children import ModelChildren
from monitor.outcome import Outcome
from monitor.results import ProbeResult

# kind, then the ProbeResult fields of its limit, remaining and reset.
_KINDS = (
    ("requests", "ratelimit_limit", "ratelimit_remaining", "ratelimit_reset_s"),
    ("tokens", "ratelimit_limit_tokens", "ratelimit_remaining_tokens", "ratelimit_reset_tokens_s"),
)


class UsageSignals:
    """Mixin of ``Exporter`` (which provides the metrics and the child cache)."""

    tokens: Any
    cost: Any
    retry_after: Any
    rl_limit: Any
    rl_remaining: Any
    rl_reset: Any
    rl_invalid: Any
    substituted: Any
    substitutions: Any
    contract_check: Any
    compact: bool  # [monitor] model_metrics = "compact" (see monitor.exporter.exporter)
    _lock: Any
    # target -> the contract checks exported for it (forget_target removes them)
    _contract_checks: dict[str, set[str]]

    # Provided by Exporter (first in its MRO), declared for the reader and the checker.
    def _child(self, metric: Any, key: Any, values: tuple[str, ...]) -> Any:
        raise NotImplementedError

    def _set(self, holder: Any, attr: str, metric: Any, key: Any) -> Any:
        raise NotImplementedError

    def _signal(self, state: ModelChildren, metric: Any, kind: str) -> Any:
        """The child of ``metric`` for ``state``'s model and ``kind`` ("" for none)."""
        child = state.signals.get((metric, kind))
        if child is None:
            values = (*state.values, kind) if kind else state.values
            child = state.signals[(metric, kind)] = self._child(metric, state.values, values)
        return child

    def _observe_usage(self, r: ProbeResult, state: ModelChildren) -> None:
        key = state.values
        for i, count in enumerate((r.prompt_tokens, r.completion_tokens)):
            if count is not None and count >= 0:
                tokens = state.tokens
                if tokens is None:  # both types appear together, at 0
                    tokens = state.tokens = (
                        self._child(self.tokens, key, (*key, "input")),
                        self._child(self.tokens, key, (*key, "output")),
                    )
                tokens[i].inc(count)
        if r.cost_usd is not None and r.cost_usd >= 0:
            (state.cost or self._set(state, "cost", self.cost, key)).inc(float(r.cost_usd))
        if r.retry_after_s is not None:
            child = state.retry_after or self._set(state, "retry_after", self.retry_after, key)
            child.set(r.retry_after_s)
        self._observe_ratelimits(r, state)
        if r.ratelimit_invalid:
            self.rl_invalid.labels(target=r.target).inc(r.ratelimit_invalid)
        if r.response_model is not None:
            self._observe_substitution(r, state)

    def _observe_ratelimits(self, r: ProbeResult, state: ModelChildren) -> None:
        for kind, limit, remaining, reset in _KINDS:
            for metric, field in ((self.rl_limit, limit), (self.rl_remaining, remaining)):
                value = getattr(r, field)
                if value is not None:
                    self._signal(state, metric, kind).set(value)
            seconds = getattr(r, reset)
            if seconds is not None:
                self._signal(state, self.rl_reset, kind).set(seconds)

    def _observe_contract(self, r: ProbeResult) -> None:
        """``nexomon_contract_check{target,check}``: the check is the result's ``model``.

        Only this gauge: a check is no model, so it takes no label slot and has
        no per-job series (the rows and the report keep its outcomes)."""
        if r.outcome is Outcome.SKIPPED:
            return
        self.contract_check.labels(target=r.target, check=r.model).set(1 if r.success else 0)
        self._contract_checks.setdefault(r.target, set()).add(r.model)

    def _forget_contract(self, target: str) -> None:
        for check in self._contract_checks.pop(target, set()):
            self.contract_check.remove(target, check)

    def forget_contract(self, target: str) -> None:
        """Drop a target's contract gauges (its checks were switched off on reload)."""
        with self._lock:
            self._forget_contract(target)

    def _observe_substitution(self, r: ProbeResult, state: ModelChildren) -> None:
        substituted = r.substituted_by is not None
        if self.compact and not substituted and (self.substituted, "") not in state.signals:
            return  # compact: the pair appears with the first substitution
        self._signal(state, self.substituted, "").set(1 if substituted else 0)
        counter = self._signal(state, self.substitutions, "")
        if substituted:
            counter.inc()
