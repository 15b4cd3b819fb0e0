"""Aggregates over a time window: whole past days and hours from the rollup, the rest raw.

``aggregate()`` is shared by ``nexomon report`` and ``/api/v1/status``. Time
before ``rollup_state.complete_before`` comes from ``probe_rollup_hourly``:
whole UTC months from its month rows and the other whole UTC days from its
day rows (or, for a key that ignores the model, every whole day from the
per-target ``tday`` rows), the hours around them from its hour rows, as
``monitor.store.levels.plan`` says;
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
from monitor.store.levels import KEEP_DAYS, plan
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

    def subtract(self, other: Aggregate) -> None:
        """Take out ``other``'s sums and histogram (rows ``merge`` added in before)."""
        self.probes -= other.probes
        self.successes -= other.successes
        self.outcomes.subtract(other.outcomes)
        self.outcomes = +self.outcomes  # no zero counts left behind
        counts = self.latency.counts
        counts.subtract(other.latency.counts)
        self.latency.counts = +counts
        self.prompt_tokens -= other.prompt_tokens
        self.completion_tokens -= other.completion_tokens
        self.total_tokens -= other.total_tokens
        self.cost_usd -= other.cost_usd
        self.unpriced -= other.unpriced

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
    session: Session,
    *,
    since: datetime,
    key: KeyFn = by_model,
    location: str | None = None,
    until: datetime | None = None,
    per_model: bool = True,
) -> dict[Hashable, Aggregate]:
    """Group everything from ``since`` on (before ``until`` when given) by ``key``.

    ``per_model=False`` says ``key`` ignores the model: whole days then come
    from the per-target ``tday`` rows (model ``'*'``) instead of each model's
    day rows; otherwise whole months inside the window come from the
    ``month`` rows (``monitor.store.rollup``).
    """
    groups: dict[Hashable, Aggregate] = {}
    rollup_from = ceil_hour(since)
    done = complete_before(session)
    if done is None or done <= rollup_from or (until is not None and until <= rollup_from):
        _add_raw(session, groups, key, location, since, until)
        return groups
    # The rollup serves [rollup_from, upto); raw rows the rest up to ``until``.
    upto = done if until is None else min(done, floor_hour(until))
    conn = session.connection()
    oldest = done - timedelta(days=KEEP_DAYS - 1)
    minus: dict[Hashable, Aggregate] = {}
    for sign, span, start, end in plan(rollup_from, upto, per_model=per_model, oldest=oldest):
        add_rollup_rows(conn, groups if sign > 0 else minus, key, location, span, start, end)
    for k, less in minus.items():  # a day's or month's row minus its rows before the window
        agg = groups.setdefault(k, Aggregate())
        agg.subtract(less)
        if agg.probes == 0:  # every row of the group was before the window
            del groups[k]
    if since < rollup_from:
        _add_raw(session, groups, key, location, since, rollup_from)
    _add_raw(session, groups, key, location, upto, until)
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
    """Fold the rollup rows of ``span`` (hour, day, tday, month) in [start, end) into ``groups``."""
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
    # The JSON columns are most of the per-row work (a day row's histogram has
    # ~35 buckets): collect each group's texts and parse them _CHUNK at a time
    # as one JSON array, merging into plain dicts keyed by the JSON's strings,
    # converted once per group at the end. Per-row json.loads and
    # Counter.update were 70 % of a 365-day report (benchmarks/history.py).
    texts: dict[Hashable, _Pending] = {}
    for row in conn.execute(query):
        agg = groups.get(k := key(row[0], row[1], row[2], row[3], row[4]))
        if agg is None:
            agg = groups[k] = Aggregate()
        pending = texts.get(k)
        if pending is None:
            pending = texts[k] = _Pending()
        pending.outcome_texts.append(row[7])
        pending.hist_texts.append(row[8])
        if len(pending.hist_texts) >= _CHUNK:
            pending.flush()
        agg.probes += row[5]
        agg.successes += row[6]
        agg.prompt_tokens += row[9]
        agg.completion_tokens += row[10]
        agg.total_tokens += row[11]
        agg.cost_usd += row[12]
        agg.unpriced += row[13]
    for k, pending in texts.items():
        pending.flush()
        agg = groups[k]
        agg.outcomes.update(pending.outcomes)
        counts = agg.latency.counts
        for index, count in pending.hist.items():
            counts[int(index)] += count


_CHUNK = 512


class _Pending:
    """One group's not yet parsed JSON texts and what is merged so far."""

    __slots__ = ("hist", "hist_texts", "outcome_texts", "outcomes")

    def __init__(self) -> None:
        self.outcome_texts: list[str] = []
        self.hist_texts: list[str] = []
        self.outcomes: dict[str, int] = {}
        self.hist: dict[str, int] = {}

    def flush(self) -> None:
        _merge(self.outcomes, self.outcome_texts)
        _merge(self.hist, self.hist_texts)
        self.outcome_texts.clear()
        self.hist_texts.clear()


def _merge(into: dict[str, int], texts: list[str]) -> None:
    """Add the JSON objects ``texts`` ({key: count}) into ``into``: one parse for all."""
    if not texts:
        return
    get = into.get
    for counts in json.loads("[" + ",".join(texts) + "]"):
        for name, count in counts.items():
            into[name] = get(name, 0) + count


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
