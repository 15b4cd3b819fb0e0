"""Aggregates over a time window: whole past days and hours from the rollup, the rest raw.

``aggregate()`` is shared by ``nexomon report`` and ``/api/v1/status``. Time
before ``rollup_state.complete_before`` comes from ``probe_rollup_hourly``:
whole UTC days from its day rows, the hours around them from its hour rows;
the partial hour at the window's start and everything from
``complete_before`` on (the current hour, or more if the rollup is behind)
come from ``probe_results``, so the numbers are right whether or not the
rollup is current. Latency percentiles are over ``ok`` probes only and are
read from merged fixed-bucket histograms (at most ``histogram.ERROR_BOUND``,
10 %, off the exact value, typically 1-3 %), the same way for rollup and raw
rows. ``by_location`` groups keep each location apart; ``Aggregate.merge``
combines them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from monitor.outcome import DOWN_OUTCOMES, Outcome
from monitor.store.histogram import LatencyHistogram, bucket
from monitor.store.models import ProbeResultRow, RollupHourly, RollupState

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
STATE_NAME = "hourly"


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0)


def ceil_day(moment: datetime) -> datetime:
    floor = floor_day(moment)
    return floor if floor == moment else floor + DAY


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


@dataclass
class Aggregate:
    """Sums for one group; ``unpriced`` counts rows with tokens but no cost."""

    probes: int = 0
    successes: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced: int = 0

    @property
    def down(self) -> int:
        return sum(self.outcomes[o.value] for o in DOWN_OUTCOMES)

    @property
    def availability_pct(self) -> float | None:
        """ok / (ok + server_error + timeout + connection_error + invalid_response)."""
        ok = self.outcomes[Outcome.OK.value]
        counted = ok + self.down
        return None if counted == 0 else 100.0 * ok / counted

    def merge(self, other: Aggregate) -> None:
        """Add ``other``'s sums and histogram to this one (groups of disjoint rows)."""
        self.probes += other.probes
        self.successes += other.successes
        self.outcomes.update(other.outcomes)
        self.latency.merge(other.latency)
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens
        self.cost_usd += other.cost_usd
        self.unpriced += other.unpriced


# A key function maps (hour or started_at, location, target, probe, model) to a group key.
KeyFn = Callable[[datetime, str, str, str, str], Hashable]


def by_model(_at: datetime, _location: str, target: str, probe: str, model: str) -> Hashable:
    return (target, probe, model)


def by_day(at: datetime, _location: str, target: str, _probe: str, _model: str) -> Hashable:
    return (at.date().isoformat(), target)


def by_location(_at: datetime, location: str, target: str, probe: str, _model: str) -> Hashable:
    """(location, target, probe kind): the models and chat probes never share a group."""
    return (location, target, probe)


def complete_before(session: Session) -> datetime | None:
    state = session.get(RollupState, STATE_NAME)
    return None if state is None else state.complete_before


def aggregate(
    session: Session, *, since: datetime, key: KeyFn = by_model, location: str | None = None
) -> dict[Hashable, Aggregate]:
    """Group everything from ``since`` on by ``key``."""
    groups: dict[Hashable, Aggregate] = {}
    rollup_from = ceil_hour(since)
    done = complete_before(session)
    if done is None or done <= rollup_from:
        _add_raw(session, groups, key, location, since, None)
        return groups
    conn = session.connection()
    days_from, days_to = ceil_day(rollup_from), floor_day(done)
    if days_from < days_to:
        add_rollup_rows(conn, groups, key, location, "day", days_from, days_to)
        add_rollup_rows(conn, groups, key, location, "hour", rollup_from, days_from)
        add_rollup_rows(conn, groups, key, location, "hour", days_to, done)
    else:
        add_rollup_rows(conn, groups, key, location, "hour", rollup_from, done)
    if since < rollup_from:
        _add_raw(session, groups, key, location, since, rollup_from)
    _add_raw(session, groups, key, location, done, None)
    return groups


def add_rollup_rows(
    conn: Connection,
    groups: dict[Hashable, Aggregate],
    key: KeyFn,
    location: str | None,
    span: str,
    start: datetime,
    end: datetime,
) -> None:
    """Fold the rollup rows of ``span`` ('hour' or 'day') in [start, end) into ``groups``."""
    if start >= end:
        return
    r = RollupHourly
    query = select(
        r.hour, r.location, r.target, r.probe, r.model, r.probes, r.successes, r.outcomes,
        r.latency_hist, r.prompt_tokens, r.completion_tokens, r.total_tokens, r.cost_usd,
        r.unpriced,
    ).where(r.span == span, r.hour >= start, r.hour < end)  # fmt: skip
    if location is not None:
        query = query.where(r.location == location)
    loads = json.loads
    # Merge with the JSON's string keys and convert once per group at the
    # end: the per-row work is what bounds a 30-day report.
    hists: dict[Hashable, Counter[str]] = {}
    for row in conn.execute(query):
        agg = groups.get(k := key(row[0], row[1], row[2], row[3], row[4]))
        if agg is None:
            agg = groups[k] = Aggregate()
        hist = hists.get(k)
        if hist is None:
            hist = hists[k] = Counter()
        agg.probes += row[5]
        agg.successes += row[6]
        agg.outcomes.update(loads(row[7]))
        hist.update(loads(row[8]))
        agg.prompt_tokens += row[9]
        agg.completion_tokens += row[10]
        agg.total_tokens += row[11]
        agg.cost_usd += row[12]
        agg.unpriced += row[13]
    for k, hist in hists.items():
        counts = groups[k].latency.counts
        for index, count in hist.items():
            counts[int(index)] += count


def raw_columns() -> tuple[Any, ...]:
    p = ProbeResultRow
    return (
        p.started_at, p.target, p.probe, p.model, p.outcome, p.duration_s,
        p.prompt_tokens, p.completion_tokens, p.total_tokens, p.cost_usd, p.location,
    )  # fmt: skip


def add_raw_row(agg: Aggregate, row: Any) -> None:
    """Fold one ``raw_columns()`` row into ``agg``."""
    agg.probes += 1
    agg.outcomes[row[4]] += 1
    if row[4] == "ok":
        agg.successes += 1
        if row[5] is not None:
            agg.latency.counts[bucket(row[5])] += 1
    agg.prompt_tokens += row[6] or 0
    agg.completion_tokens += row[7] or 0
    agg.total_tokens += row[8] or 0
    if row[9] is not None:
        agg.cost_usd += row[9]
    elif row[8]:
        agg.unpriced += 1


def _add_raw(
    session: Session,
    groups: dict[Hashable, Aggregate],
    key: KeyFn,
    location: str | None,
    start: datetime,
    end: datetime | None,
) -> None:
    p = ProbeResultRow
    query = select(*raw_columns()).where(p.started_at >= start)
    if end is not None:
        query = query.where(p.started_at < end)
    if location is not None:
        query = query.where(p.location == location)
    for row in session.execute(query):
        agg = groups.get(k := key(row[0], row[10], row[1], row[2], row[3]))
        if agg is None:
            agg = groups[k] = Aggregate()
        add_raw_row(agg, row)
