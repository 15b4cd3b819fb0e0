"""The per-model page's reads: 7 days of one model's chat rows, folded by hour and day.

One indexed range query (``ix_probe_results_target_model_started_at``) for
the rows and one for the recent errors; at a 5-minute chat interval 7 days
are about 2,000 rows. Latency by phase is the hourly mean of each measured
phase over ``ok`` answers (a phase not measured apart, None, adds nothing);
cost is None for a day whose rows spent tokens without a price, never 0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, select

from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.store.aggregate import HOUR, floor_day, floor_hour
from monitor.store.models import ProbeResultRow
from monitor.store.queries import row_to_result

WINDOW_DAYS = 7
PHASES = ("resolve", "connect", "tls", "processing", "transfer")
RECENT_ERRORS = 20


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One UTC day: outcome counts, tokens and cost (None: some spend was unpriced)."""

    day: date
    outcomes: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal | None

    @property
    def probes(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True, slots=True)
class Headroom:
    """Rate-limit headers: the last seen values, and the least remaining over the window."""

    limit: int | None
    remaining: int | None
    min_remaining: int | None
    rate_limited: int  # 429 answers in the window
    last_retry_after_s: float | None


@dataclass(frozen=True, slots=True)
class ModelDetail:
    hours: tuple[datetime, ...]  # WINDOW_DAYS * 24 hour starts, oldest first
    phase_means: dict[str, tuple[float | None, ...]]  # phase -> per hour mean seconds
    days: tuple[DayUsage, ...]  # oldest first
    headroom: Headroom
    errors: tuple[ProbeResult, ...]  # newest first


@dataclass
class _Day:
    outcomes: Counter[str] = field(default_factory=Counter)
    prompt: int = 0
    completion: int = 0
    cost: Decimal = Decimal(0)
    unpriced: bool = False


def read_model(
    conn: Connection, location: str, target: str, model: str, now: datetime
) -> ModelDetail:
    """The per-model page's figures for the last ``WINDOW_DAYS`` days up to ``now``."""
    p = ProbeResultRow
    first_hour = floor_hour(now) - (WINDOW_DAYS * 24 - 1) * HOUR
    hours = tuple(first_hour + i * HOUR for i in range(WINDOW_DAYS * 24))
    sums = {name: [0.0] * len(hours) for name in PHASES}
    counts = {name: [0] * len(hours) for name in PHASES}
    first_day = floor_day(now) - timedelta(days=WINDOW_DAYS - 1)
    days = {(first_day + timedelta(days=i)).date(): _Day() for i in range(WINDOW_DAYS)}
    limit = remaining = min_remaining = None
    retry_after = None
    rate_limited = 0
    query = (
        select(
            p.started_at, p.outcome, p.resolve_s, p.connect_s, p.tls_s, p.processing_s,
            p.transfer_s, p.prompt_tokens, p.completion_tokens, p.total_tokens, p.cost_usd,
            p.ratelimit_limit, p.ratelimit_remaining, p.retry_after_s,
        )
        .where(p.target == target, p.model == model, p.location == location, p.probe == "chat")
        .where(p.started_at >= min(first_hour, first_day))
        .order_by(p.started_at)
    )  # fmt: skip
    for row in conn.execute(query):
        day = days.get(row.started_at.date())
        if day is not None:
            day.outcomes[row.outcome] += 1
            day.prompt += row.prompt_tokens or 0
            day.completion += row.completion_tokens or 0
            if row.cost_usd is not None:
                day.cost += row.cost_usd
            elif row.total_tokens:
                day.unpriced = True
        slot = (floor_hour(row.started_at) - first_hour) // HOUR
        if row.outcome == Outcome.OK.value and 0 <= slot < len(hours):
            for name in PHASES:
                value = getattr(row, f"{name}_s")
                if value is not None:
                    sums[name][slot] += value
                    counts[name][slot] += 1
        if row.outcome == Outcome.RATE_LIMITED.value:
            rate_limited += 1
        if row.retry_after_s is not None:
            retry_after = row.retry_after_s
        if row.ratelimit_remaining is not None:
            limit, remaining = row.ratelimit_limit, row.ratelimit_remaining
            min_remaining = remaining if min_remaining is None else min(min_remaining, remaining)
    means = {
        name: tuple(
            None if n == 0 else s / n for s, n in zip(sums[name], counts[name], strict=True)
        )
        for name in PHASES
    }
    usage = tuple(
        DayUsage(d, dict(v.outcomes), v.prompt, v.completion, None if v.unpriced else v.cost)
        for d, v in days.items()
    )
    return ModelDetail(
        hours=hours,
        phase_means={k: v for k, v in means.items() if any(x is not None for x in v)},
        days=usage,
        headroom=Headroom(limit, remaining, min_remaining, rate_limited, retry_after),
        errors=recent_errors(conn, location, target, model),
    )


def recent_errors(
    conn: Connection, location: str, target: str, model: str, limit: int = RECENT_ERRORS
) -> tuple[ProbeResult, ...]:
    """The last ``limit`` results that were not ``ok`` nor ``skipped``, newest first."""
    p = ProbeResultRow
    query = (
        select(p.__table__)
        .where(p.target == target, p.model == model, p.location == location, p.probe == "chat")
        .where(p.outcome.not_in([Outcome.OK.value, Outcome.SKIPPED.value]))
        .order_by(p.started_at.desc())
        .limit(limit)
    )
    return tuple(row_to_result(row) for row in conn.execute(query))  # type: ignore[arg-type]
