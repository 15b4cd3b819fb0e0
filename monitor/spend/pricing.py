"""What a probe cost: Decimal prices times the tokens the gateway reported.

Prices are USD per million tokens (``[pricing."MODEL"] input/output`` in the
config, optionally overridden per target). Cost is exact Decimal arithmetic,
``(prompt x input + completion x output) / 1_000_000``, then quantized to
``COST_QUANTUM`` (1e-10 USD) with ROUND_HALF_EVEN. The quantum keeps prices
with up to four decimals exact (``0.0001 $/M x 1 token = 1e-10 $``) and
gives the ``cost_usd`` column a fixed scale; finer prices are rounded.

An unknown cost is ``None``, never 0: a model with no price, or a result
whose ``usage`` is missing, has no cost. Tokens spent on a model with no
price are reported once through ``UnpricedTracker`` (the caller logs one
warning and sets ``nexomon_model_unpriced``).

This module reads prices through the ``PriceLike`` protocol (``.input`` and
``.output`` Decimals), so ``monitor.config.model.Price`` fits without an import.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Protocol

from monitor.results import ProbeResult

COST_QUANTUM = Decimal("1e-10")  # USD; the scale of the cost_usd column
PER_MILLION = Decimal(1_000_000)

# Enough digits for any realistic token count times any price before the
# quantize; the default 28 would already do, this makes it independent of
# whatever context the caller's thread carries.
_PRECISION = 50


class PriceLike(Protocol):
    """A price in USD per million tokens (``monitor.config.model.Price``)."""

    @property
    def input(self) -> Decimal: ...

    @property
    def output(self) -> Decimal: ...


def cost(
    price: PriceLike | None, prompt_tokens: int | None, completion_tokens: int | None
) -> Decimal | None:
    """USD cost of one exchange, or None when it cannot be known.

    None when ``price`` is None (model unpriced) or either token count is
    None (``usage`` missing or incomplete): a guess would be silently wrong.
    Otherwise the exact Decimal, quantized to ``COST_QUANTUM``.
    """
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        raw = (
            Decimal(prompt_tokens) * Decimal(price.input)
            + Decimal(completion_tokens) * Decimal(price.output)
        ) / PER_MILLION
        return raw.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)


def spent_tokens(result: ProbeResult) -> bool:
    """True when the result reports any tokens spent (``usage`` present, non-zero)."""
    counts = (result.prompt_tokens, result.completion_tokens, result.total_tokens)
    return any(n for n in counts if n is not None)


def price_result(result: ProbeResult, price: PriceLike | None) -> ProbeResult:
    """``result`` with ``cost_usd`` filled from its usage and ``price``.

    ``cost_usd`` becomes None when the cost is unknown (see ``cost``); a
    result without usage (models probe, failures, skipped) keeps None. The
    original frozen value is not changed.
    """
    return result.replace(cost_usd=cost(price, result.prompt_tokens, result.completion_tokens))


class UnpricedTracker:
    """Remembers the (target, model) pairs that spent tokens with no price.

    ``observe`` is called once per chat result together with the price that
    was used for it. It answers True exactly when the caller should log the
    one warning: the first time a pair spends tokens unpriced. A pair that
    gets a price later (config reload) is forgotten, so it would warn again
    if the price were removed once more. Used from one asyncio loop; not
    locked.
    """

    def __init__(self) -> None:
        self._unpriced: set[tuple[str, str]] = set()

    def observe(self, result: ProbeResult, price: PriceLike | None) -> bool:
        """Record ``result``; True when this pair just became unpriced (warn now)."""
        key = (result.target, result.model)
        if price is not None:
            self._unpriced.discard(key)
            return False
        if not spent_tokens(result) or key in self._unpriced:
            return False
        self._unpriced.add(key)
        return True

    def is_unpriced(self, target: str, model: str) -> bool:
        """The value of ``nexomon_model_unpriced{target, model}`` (as a bool)."""
        return (target, model) in self._unpriced

    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        """Every (target, model) currently spending tokens without a price."""
        return frozenset(self._unpriced)

    @staticmethod
    def warning(target: str, model: str) -> str:
        """The one log line for a newly unpriced pair."""
        return (
            f"target {target!r} model {model!r} spent tokens but has no price; "
            f'its cost is unknown (add [pricing."{model}"] to the config)'
        )
