"""The rows of ``nexomon report``: one frozen ``ReportRow`` per group, built from an ``Aggregate``.

A row's ``location`` says which instances measured it: one location's name,
or ``ALL_LOCATIONS`` (``*``) for every location combined. ``--by location``
groups by (location, target, probe kind) and adds one ``*`` row per (target,
probe kind); ``--by model`` and ``--by day`` rows are ``*`` unless
``--location X`` filtered them, then ``X``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from monitor.outcome import Outcome
from monitor.store.aggregate import Aggregate

BY = ("model", "day", "location")
OUTCOMES = tuple(o.value for o in Outcome)
# Not a valid-looking location name, so it never reads as one instance.
ALL_LOCATIONS = "*"


def by_day(at: datetime, _location: str, target: str, probe: str, _model: str) -> Hashable:
    """The ``--by day`` key: (UTC day, target, probe kind)."""
    return (at.date().isoformat(), target, probe)


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One line of the report: a target/probe/model (by=model), a day/target/probe
    (by=day) or a location/target/probe (by=location)."""

    target: str
    probe: str | None
    model: str | None
    day: str | None
    probes: int
    availability_pct: float | None
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    outcomes: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    unpriced_rows: int
    # one location's name, or ALL_LOCATIONS for every location combined
    location: str = ALL_LOCATIONS
    # --by day only: the target's and probe kind's month-to-date spend (see cli.report)
    mtd_usd: Decimal | None = None
    mtd_unpriced_rows: int = 0
    # --by model chat rows only: substitute model -> answers (cli.report_substitutions)
    substitutions: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "target": self.target,
            "probe": self.probe,
            "model": self.model,
            "day": self.day,
            "probes": self.probes,
            "availability_pct": self.availability_pct,
            "p50_s": self.p50_s,
            "p95_s": self.p95_s,
            "p99_s": self.p99_s,
            "outcomes": self.outcomes,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": json_usd(self.cost_usd, self.unpriced_rows),
            "cost_known": self.unpriced_rows == 0,
            "unpriced_rows": self.unpriced_rows,
            **({} if self.substitutions is None else {"substitutions": self.substitutions}),
            **(
                {}
                if self.day is None or self.mtd_usd is None
                else {
                    "month_to_date_usd": json_usd(self.mtd_usd, self.mtd_unpriced_rows),
                    "month_to_date_known": self.mtd_unpriced_rows == 0,
                }
            ),
        }


def json_usd(usd: Decimal, unpriced: int) -> str | None:
    """Cost as a decimal string; None when unknown (tokens spent, nothing priced)."""
    return None if unpriced and not usd else str(usd)


def make_row(key: Hashable, agg: Aggregate, by: str, location: str | None) -> ReportRow:
    """The row of one group; ``key`` is the group key of ``by``, ``location`` the filter."""
    day = model = None
    where = ALL_LOCATIONS if location is None else location
    if by == "model":
        target, probe, model = key  # type: ignore[misc]
    elif by == "day":
        day, target, probe = key  # type: ignore[misc]
    else:
        where, target, probe = key  # type: ignore[misc]
    p50, p95, p99 = agg.latency.quantiles((0.50, 0.95, 0.99))
    return ReportRow(
        target=target,
        probe=probe,
        model=model,
        day=day,
        location=where,
        probes=agg.probes,
        availability_pct=agg.availability_pct,
        p50_s=p50,
        p95_s=p95,
        p99_s=p99,
        outcomes={o: agg.outcomes.get(o, 0) for o in OUTCOMES},
        prompt_tokens=agg.prompt_tokens,
        completion_tokens=agg.completion_tokens,
        cost_usd=agg.cost_usd,
        unpriced_rows=agg.unpriced,
    )


def with_combined(groups: dict[Hashable, Aggregate]) -> dict[Hashable, Aggregate]:
    """``--by location`` groups plus one ``ALL_LOCATIONS`` group per (target, probe kind)."""
    combined: dict[Hashable, Aggregate] = {}
    for (_location, target, probe), agg in groups.items():  # type: ignore[misc]
        total = combined.get((ALL_LOCATIONS, target, probe))
        if total is None:
            total = combined[(ALL_LOCATIONS, target, probe)] = Aggregate()
        total.merge(agg)
    return {**groups, **combined}
