"""The expected probe cost of a config, before it ever runs.

``nexomon config check`` prints ``render_forecast(forecast(config))``.

Assumptions (stated in the output's contract, not hidden):

* runs per day = 86400 / ``chat_interval`` per (target, model), plus
  86400 / ``stream_interval`` when the target streams (a stream probe asks
  the same prompt and ``max_tokens``); jitter,
  failures and skipped probes are ignored. The models probe (GET /models)
  costs nothing and is not counted.
* prompt tokens per run = ceil(len(prompt) / 4) + ``MESSAGE_OVERHEAD`` (the
  chat template's role and framing tokens) + ``NONCE_TOKENS`` (the nonce the
  chat probe adds so no cache answers it). Four characters per token is the
  usual English rule of thumb; the real count depends on the tokenizer.
* completion tokens per run = ``max_tokens``: the worst case, a model may
  stop earlier ("OK" is a token or two).
* cost per run = ``pricing.cost(price, prompt, completion)``.
* a month is 30 days.

A target with ``models = ["*"]`` probes whatever ``/models`` lists, which
cannot be known before it runs: its row's cost is unknown, and the forecast
shows a per-model figure at the most expensive price configured for that
target instead, plus how many models it may stand for (``max_models``).

Unknown is shown as unknown, never as a sum that reads like a price: when
no row's dollar cost is known the totals line says ``expected probe spend:
unknown (...)``; when some are, ``at least $X/day ..., plus N rows of
unknown cost (...)``. The parenthesis names what is missing
(``Forecast.missing``): the explicit models without a price
(``no price for gw/m1, gw/m2``) and each ``"*"`` target, whose models are
unknown until ``/models`` answers (``no price for any model`` when no price
is configured at all).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from monitor.spend.budget import format_usd
from monitor.spend.pricing import PriceLike, cost

SECONDS_PER_DAY = Decimal(86400)
DAYS_PER_MONTH = 30
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 8  # role and framing tokens of one user message
NONCE_TOKENS = 6  # the random nonce the chat probe appends
WILDCARD = "*"
MAX_NAMED = 5  # unpriced models named in the totals line


def estimate_prompt_tokens(prompt: str) -> int:
    """Expected ``prompt_tokens`` of one chat probe with this prompt text."""
    return math.ceil(len(prompt) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD + NONCE_TOKENS


def expected_cost(target: Any, price: PriceLike | None) -> Decimal | None:
    """Worst-case cost of one chat probe of ``target`` (for budget reservations)."""
    return cost(price, estimate_prompt_tokens(target.prompt), target.max_tokens)


@dataclass(frozen=True, slots=True)
class ModelForecast:
    """One (target, model) row. For ``model == "*"`` the figures are per model."""

    target: str
    model: str
    runs_per_day: Decimal
    prompt_tokens: int  # per run
    completion_tokens: int  # per run, worst case
    cost_per_run: Decimal | None  # None: no price (or, for "*", no price configured at all)
    price_model: str | None = None  # "*": the configured price used for the per-model figure
    max_models: int | None = None  # "*": the most models the row stands for

    @property
    def wildcard(self) -> bool:
        return self.model == WILDCARD

    @property
    def tokens_per_day(self) -> Decimal:
        """Tokens per day (per model for ``"*"``)."""
        return self.runs_per_day * (self.prompt_tokens + self.completion_tokens)

    @property
    def per_model_usd_per_day(self) -> Decimal | None:
        """Dollars per day for one model of this row, None when unpriced."""
        if self.cost_per_run is None:
            return None
        return self.cost_per_run * self.runs_per_day

    @property
    def usd_per_day(self) -> Decimal | None:
        """Dollars per day for the row; None when unknown (unpriced or ``"*"``)."""
        return None if self.wildcard else self.per_model_usd_per_day


@dataclass(frozen=True, slots=True)
class Forecast:
    """Every row plus the budget it is compared against."""

    rows: tuple[ModelForecast, ...]
    budget_usd: Decimal | None = None
    budget_tokens: int | None = None

    @property
    def complete_usd(self) -> bool:
        """True when every row's dollar cost is known (totals are exact, not bounds)."""
        return all(row.usd_per_day is not None for row in self.rows)

    @property
    def complete_tokens(self) -> bool:
        return not any(row.wildcard for row in self.rows)

    @property
    def known_usd(self) -> bool:
        """True when at least one row's dollar cost is known (the sum means something)."""
        return any(row.usd_per_day is not None for row in self.rows)

    @property
    def missing(self) -> tuple[str, ...]:
        """Why the dollar total is not exact, one phrase each; empty when it is.

        ``no price for T/M, ...`` for explicit models without a price (at
        most ``MAX_NAMED`` named), and one phrase per ``"*"`` target.
        """
        unpriced = [
            f"{r.target}/{r.model}" for r in self.rows if not r.wildcard and r.usd_per_day is None
        ]
        out = []
        if unpriced:
            named = ", ".join(unpriced[:MAX_NAMED])
            more = len(unpriced) - MAX_NAMED
            out.append(f"no price for {named}" + (f" and {more} more" if more > 0 else ""))
        for row in self.rows:
            if row.wildcard:
                what = (
                    'no price for any model: add [pricing."MODEL"] for the models it lists'
                    if row.price_model is None
                    else "models unknown until /models answers"
                )
                out.append(f'{row.target} "*": {what}')
        return tuple(out)

    @property
    def usd_per_day(self) -> Decimal:
        """Sum of the known rows: exact if ``complete_usd``, else a lower bound."""
        return sum((r.usd_per_day for r in self.rows if r.usd_per_day is not None), Decimal(0))

    @property
    def usd_per_month(self) -> Decimal:
        return self.usd_per_day * DAYS_PER_MONTH

    @property
    def tokens_per_day(self) -> Decimal:
        """Sum of the explicit rows: exact if ``complete_tokens``, else a lower bound."""
        return sum((r.tokens_per_day for r in self.rows if not r.wildcard), Decimal(0))

    @property
    def hours_until_usd_cap(self) -> Decimal | None:
        """Hours into each UTC day at which ``budget_usd`` is reached; None: not reached.

        An upper bound when costs are incomplete (spend is at least this fast).
        """
        return _hours_until(self.budget_usd, self.usd_per_day)

    @property
    def hours_until_token_cap(self) -> Decimal | None:
        return _hours_until(self.budget_tokens, self.tokens_per_day)


def _hours_until(cap: Decimal | int | None, per_day: Decimal) -> Decimal | None:
    if cap is None or per_day <= 0 or per_day < cap:
        return None
    return Decimal(24) * Decimal(cap) / per_day


def forecast(config: Any) -> Forecast:
    """The expected probe spend of ``config`` (``monitor.config.model.Config``)."""
    default_pricing: Mapping[str, PriceLike] = config.pricing
    rows: list[ModelForecast] = []
    for target in config.targets:
        runs = SECONDS_PER_DAY / Decimal(repr(float(target.chat_interval)))
        stream_interval = getattr(target, "stream_interval", None)
        if stream_interval is not None:  # opt-in streams spend like chat probes
            runs += SECONDS_PER_DAY / Decimal(repr(float(stream_interval)))
        prompt = estimate_prompt_tokens(target.prompt)
        completion = target.max_tokens
        for model in _explicit_models(target.models):
            price = target.price(model, default_pricing)
            rows.append(
                ModelForecast(
                    target.name, model, runs, prompt, completion, cost(price, prompt, completion)
                )
            )
        if WILDCARD in target.models:
            prices = {**default_pricing, **target.pricing}
            dearest = _dearest(prices.items(), prompt, completion)
            rows.append(
                ModelForecast(
                    target.name,
                    WILDCARD,
                    runs,
                    prompt,
                    completion,
                    None if dearest is None else dearest[1],
                    price_model=None if dearest is None else dearest[0],
                    max_models=target.max_models,
                )
            )
    budget = getattr(config, "budget", None)
    return Forecast(
        tuple(rows),
        budget_usd=getattr(budget, "daily_usd", None),
        budget_tokens=getattr(budget, "daily_tokens", None),
    )


def _explicit_models(models: Iterable[str]) -> list[str]:
    """Named models in config order, once each; "*" is handled apart."""
    return list(dict.fromkeys(m for m in models if m != WILDCARD))


def _dearest(
    prices: Iterable[tuple[str, PriceLike]], prompt: int, completion: int
) -> tuple[str, Decimal] | None:
    """(model, cost per run) of the most expensive configured price, or None."""
    costed = [(model, cost(price, prompt, completion)) for model, price in prices]
    known = [(model, c) for model, c in costed if c is not None]
    return max(known, key=lambda mc: mc[1]) if known else None


# -- rendering -------------------------------------------------------------


def money(amount: Decimal | None) -> str:
    """Dollars for people: cents from $1 up, else four significant digits."""
    if amount is None:
        return "unknown"
    if amount >= 1 or amount == 0:
        return f"${amount:,.2f}"
    rounded = amount.quantize(Decimal(1).scaleb(amount.adjusted() - 3))
    text = f"{rounded.normalize():f}"
    if len(text.partition(".")[2]) < 2:
        text = f"{rounded:.2f}"
    return f"${text}"


def _count(value: Decimal) -> str:
    return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.1f}"


def render_forecast(f: Forecast) -> str:
    """A small aligned table, notes for "*" rows, a totals line and budget lines."""
    header = ("target", "model", "runs/day", "tokens/run", "$/run", "$/day", "$/month")
    table = [header]
    for row in f.rows:
        day = row.usd_per_day
        table.append(
            (
                row.target,
                row.model,
                _count(row.runs_per_day),
                f"{row.prompt_tokens}+{row.completion_tokens}",
                money(row.cost_per_run) if not row.wildcard else "unknown",
                money(day) if day is not None else ("unknown" if row.wildcard else "no price"),
                money(day * DAYS_PER_MONTH) if day is not None else "unknown",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {2, 3, 4, 5, 6}
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in table
    ]
    lines.extend(_wildcard_note(row) for row in f.rows if row.wildcard)
    lines.append(_totals_line(f))
    if f.budget_tokens is not None:
        lines.append(_token_budget_line(f))
    return "\n".join(lines)


def _wildcard_note(row: ModelForecast) -> str:
    head = (
        f'{row.target} "*" = every listed model, up to {row.max_models}, unknown until '
        f"/models answers; per model: {_count(row.tokens_per_day)} tokens/day"
    )
    if row.price_model is None:
        return f"{head}, no price configured"
    return (
        f"{head}, {money(row.per_model_usd_per_day)}/day at the dearest configured price "
        f"({row.price_model}); unpriced models: unknown"
    )


def _totals_line(f: Forecast) -> str:
    """Exact, ``at least`` (some rows unknown) or ``unknown`` (none known), naming the gaps."""
    why = "; ".join(f.missing)
    if not f.known_usd and f.rows:
        return f"expected probe spend: unknown ({why}); {_usd_budget_text(f)}"
    bound = "" if f.complete_usd else "at least "
    spend = f"{bound}{money(f.usd_per_day)}/day, {money(f.usd_per_month)}/month (30 d)"
    unknown = sum(1 for row in f.rows if row.usd_per_day is None)
    if unknown:
        spend += f", plus {unknown} row{'s' if unknown > 1 else ''} of unknown cost ({why})"
    return f"expected probe spend: {spend}; {_usd_budget_text(f)}"


def _usd_budget_text(f: Forecast) -> str:
    if f.budget_usd is None:
        return "no daily_usd budget"
    cap = f"budget {format_usd(f.budget_usd)}/day"
    hours = f.hours_until_usd_cap
    if hours is None:
        return f"{cap} never reached" if f.complete_usd else f"{cap} may be reached (cost unknown)"
    when = "after" if f.complete_usd else "within"
    monthly = money(f.budget_usd * DAYS_PER_MONTH)
    return (
        f"{cap} reached {when} {hours:.1f} h each UTC day, chat probes then pause until "
        f"00:00 UTC (spend capped at {monthly}/month)"
    )


def _token_budget_line(f: Forecast) -> str:
    cap = f"token budget {f.budget_tokens:,}/day"
    bound = "" if f.complete_tokens else "at least "
    tokens = f"expected probe tokens: {bound}{_count(f.tokens_per_day)}/day"
    hours = f.hours_until_token_cap
    if hours is None:
        verdict = "never reached" if f.complete_tokens else "may be reached (models unknown)"
        return f"{tokens}; {cap} {verdict}"
    when = "after" if f.complete_tokens else "within"
    return f"{tokens}; {cap} reached {when} {hours:.1f} h each UTC day"
