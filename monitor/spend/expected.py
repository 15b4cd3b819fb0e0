"""The forecast's expected figure: the worst case corrected by measured history.

``monitor.spend.forecast`` prices every run at its worst case (all of
``max_tokens`` answered, every probe billed). When the configured database
holds chat rows for a (target, model) (``monitor.store.usage_history``: this
location, the last 24 h, at least ``MIN_PROBES`` rows), ``nexomon config
check`` also prints what those rows predict:

* tokens per run = the measured mean ``prompt_tokens`` + mean
  ``completion_tokens`` of the probes that reported usage;
* billed share = probes that reported usage / probes (failed probes cost
  nothing; rows skipped for the daily budget are not counted);
* $/run = billed share × (prompt × ``input`` + completion × ``output``) / 10⁶,
  at the price the config has now (not the price the rows were stored at);
* $/day = $/run × the forecast's runs/day (from the config's intervals), and
  $/month = $/day × 30.

A (target, model) without enough history keeps its worst-case figure, and
its row says ``worst case``. A ``"*"`` target stands for the models it
probed in the window (each priced as the config prices it); with none there,
it stays unknown as in the worst case. Unknown is printed as unknown, never
summed as $0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol

from monitor.spend.forecast import DAYS_PER_MONTH, Forecast, ModelForecast, money
from monitor.spend.pricing import PER_MILLION, PriceLike

WORST_CASE = "worst case"
MEASURED = "measured"


# Protocols, not imports: spend and store are sibling layers (docs/architecture.md);
# monitor.store.usage_history's ProbeUsage and UsageHistory fit them.
class ProbeUsage(Protocol):
    """What one (target, model) measured."""

    @property
    def probes(self) -> int: ...
    @property
    def billed(self) -> int: ...
    @property
    def billed_share(self) -> Decimal: ...
    @property
    def mean_prompt_tokens(self) -> Decimal | None: ...
    @property
    def mean_completion_tokens(self) -> Decimal | None: ...


class UsageHistory(Protocol):
    """The measured rows of one location over a window."""

    @property
    def source(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def window(self) -> timedelta: ...
    @property
    def min_probes(self) -> int: ...
    @property
    def usage(self) -> Mapping[tuple[str, str], Any]: ...
    def measured(self, target: str, model: str) -> ProbeUsage | None: ...


@dataclass(frozen=True, slots=True)
class ExpectedRow:
    """One (target, model): measured when ``usage`` is set, else the worst case."""

    target: str
    model: str
    runs_per_day: Decimal
    prompt_tokens: Decimal  # per billed run: the measured mean, or the worst-case estimate
    completion_tokens: Decimal
    billed_share: Decimal  # 0..1; 1 for the worst case
    cost_per_run: Decimal | None  # per scheduled run (billed share applied); None: no price
    usage: ProbeUsage | None = None
    wildcard: bool = False  # a "*" target with no measured model: cost unknown

    @property
    def measured(self) -> bool:
        return self.usage is not None

    @property
    def usd_per_day(self) -> Decimal | None:
        if self.cost_per_run is None or self.wildcard:
            return None
        return self.cost_per_run * self.runs_per_day


@dataclass(frozen=True, slots=True)
class Expected:
    """Every row of the expected figure and the history it came from."""

    rows: tuple[ExpectedRow, ...]
    history: UsageHistory
    budget_usd: Decimal | None = None  # the forecast's daily dollar budget

    @property
    def usd_per_day(self) -> Decimal:
        """Sum of the rows with a known cost: exact when every row has one."""
        return sum((r.usd_per_day for r in self.rows if r.usd_per_day is not None), Decimal(0))

    @property
    def unknown(self) -> tuple[ExpectedRow, ...]:
        return tuple(r for r in self.rows if r.usd_per_day is None)

    @property
    def measured_rows(self) -> int:
        return sum(1 for r in self.rows if r.measured)


def answer_cost(price: PriceLike | None, prompt: Decimal, completion: Decimal) -> Decimal | None:
    """Dollars of one answer with these (possibly fractional, mean) token counts."""
    if price is None:
        return None
    return (prompt * Decimal(price.input) + completion * Decimal(price.output)) / PER_MILLION


def expected(f: Forecast, config: Any, history: UsageHistory) -> Expected:
    """The expected figure for the rows of ``f`` (``forecast(config)``)."""
    targets = {t.name: t for t in config.targets}
    pricing: Mapping[str, PriceLike] = config.pricing
    rows: list[ExpectedRow] = []
    for row in f.rows:
        target = targets[row.target]
        if not row.wildcard:
            rows.append(_row(row, row.model, target.price(row.model, pricing), history))
            continue
        named = {r.model for r in f.rows if r.target == row.target}
        probed = sorted(
            m
            for (t, m) in history.usage
            if t == row.target and m not in named and history.measured(t, m) is not None
        )
        if not probed:
            rows.append(_worst(row, row.model, row.cost_per_run, wildcard=True))
        rows.extend(_row(row, m, target.price(m, pricing), history) for m in probed)
    return Expected(tuple(rows), history, budget_usd=f.budget_usd)


def _row(
    row: ModelForecast, model: str, price: PriceLike | None, history: UsageHistory
) -> ExpectedRow:
    usage = history.measured(row.target, model)
    if usage is None:  # only explicit models get here: "*" expands to measured ones
        return _worst(row, model, row.cost_per_run)
    prompt = usage.mean_prompt_tokens
    completion = usage.mean_completion_tokens
    if prompt is None or completion is None:  # nothing billed: the share (0) decides
        prompt, completion = _worst_tokens(row)
    answer = answer_cost(price, prompt, completion)
    return ExpectedRow(
        row.target,
        model,
        row.runs_per_day,
        prompt,
        completion,
        usage.billed_share,
        None if answer is None else answer * usage.billed_share,
        usage=usage,
    )


def _worst_tokens(row: ModelForecast) -> tuple[Decimal, Decimal]:
    return Decimal(row.prompt_tokens), Decimal(row.completion_tokens)


def _worst(
    row: ModelForecast, model: str, cost_per_run: Decimal | None, *, wildcard: bool = False
) -> ExpectedRow:
    prompt, completion = _worst_tokens(row)
    return ExpectedRow(
        row.target,
        model,
        row.runs_per_day,
        prompt,
        completion,
        Decimal(1),
        cost_per_run,
        wildcard=wildcard,
    )


# -- rendering -------------------------------------------------------------


def _hours(window_s: float) -> str:
    hours = window_s / 3600
    return f"{hours:.0f} h" if hours == int(hours) else f"{hours:.1f} h"


def render_expected(e: Expected) -> str:
    """A heading, an aligned table like the forecast's, and a totals line."""
    h = e.history
    lines = [
        f"expected from history (chat probes of location {h.location} over the last "
        f"{_hours(h.window.total_seconds())} in {h.source}; at least {h.min_probes} probes "
        f"per model, else the worst case above):"
    ]
    header = (
        "target",
        "model",
        "probes",
        "billed",
        "tokens/run",
        "$/run",
        "$/day",
        "$/month",
        "basis",
    )
    table = [header]
    for row in e.rows:
        day = row.usd_per_day
        usage = row.usage
        table.append(
            (
                row.target,
                row.model,
                "-" if usage is None else f"{usage.probes:,}",
                "-" if usage is None else f"{row.billed_share * 100:.1f}%",
                _tokens(row),
                "unknown" if row.wildcard else money(row.cost_per_run),
                "no price" if day is None and not row.wildcard else money(day),
                money(None if day is None else day * DAYS_PER_MONTH),
                MEASURED if row.measured else WORST_CASE,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {2, 3, 4, 5, 6, 7}
    lines.extend(
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in table
    )
    lines.append(_totals_line(e))
    return "\n".join(lines)


def _tokens(row: ExpectedRow) -> str:
    if row.usage is None or row.usage.billed == 0:
        return f"{row.prompt_tokens:.0f}+{row.completion_tokens:.0f}"
    return f"{row.prompt_tokens:.1f}+{row.completion_tokens:.1f}"


def _totals_line(e: Expected) -> str:
    worst = len(e.rows) - e.measured_rows
    basis = f"{e.measured_rows} measured, {worst} worst case"
    unknown = e.unknown
    if unknown and len(unknown) == len(e.rows):
        return f"expected probe spend from history: unknown ({basis})"
    bound = "at least " if unknown else ""
    spend = (
        f"{bound}{money(e.usd_per_day)}/day, {money(e.usd_per_day * DAYS_PER_MONTH)}/month (30 d)"
    )
    if unknown:
        named = ", ".join(f"{r.target}/{r.model}" for r in unknown)
        spend += f", plus {len(unknown)} row{'s' if len(unknown) > 1 else ''} of unknown cost"
        spend += f" ({named})"
    return f"expected probe spend from history: {spend}; {basis}{_budget_text(e, bool(unknown))}"


def _budget_text(e: Expected, bound: bool) -> str:
    """When the daily dollar budget is reached at the expected rate ("" without one)."""
    cap = e.budget_usd
    if cap is None:
        return ""
    per_day = e.usd_per_day
    if per_day <= 0 or per_day < cap:
        return f"; budget {money(cap)}/day never reached at this rate" + (
            " (cost partly unknown)" if bound else ""
        )
    hours = Decimal(24) * cap / per_day
    return f"; budget {money(cap)}/day reached {'within' if bound else 'after'} {hours:.1f} h"
