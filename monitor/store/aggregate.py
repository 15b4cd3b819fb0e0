"""Aggregates over a time window: whole past days and hours from the rollup, the rest raw.

``aggregate()`` is shared by ``nexomon report`` and ``/api/v1/status``. Time
before ``rollup_state.complete_before`` comes from ``probe_rollup_hourly``:
whole UTC months from its month rows and the other whole UTC days from its
day rows (or, for a key that ignores the model, every whole day from the
per-target ``tday`` rows), the hours around them from its hour rows, the
current month's days and the current day's hours from one to-date row each
when the window ends at ``complete_before``, as ``monitor.store.levels.plan`` says;
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

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from monitor.outcome import DOWN_OUTCOMES, Outcome
from monitor.store.histogram import LatencyHistogram, bucket
from monitor.store.levels import KEEP_DAYS, plan
from monitor.store.rollup_read import fold, minus, read_groups, read_rows, to_date_rows
from monitor.store.sql_reader import Reader, reader_of

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
STATE_NAME = "hourly"
_DOWN = tuple(o.value for o in DOWN_OUTCOMES)  # enum ``.value`` is a property: read it once
_OK = Outcome.OK.value


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
        get = self.outcomes.get
        return sum(get(name, 0) for name in _DOWN)

    @property
    def availability_pct(self) -> float | None:
        """ok / (ok + server_error + timeout + connection_error + invalid_response)."""
        ok = self.outcomes.get(_OK, 0)
        counted = ok + self.down
        return None if counted == 0 else 100.0 * ok / counted

    def subtract(self, other: Aggregate) -> None:
        """Take out ``other``'s sums and histogram (rows ``merge`` added in before)."""
        self.probes -= other.probes
        self.successes -= other.successes
        self.outcomes = minus(self.outcomes, other.outcomes)
        self.latency.counts = minus(self.latency.counts, other.latency.counts)
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


def by_row(_at: datetime, location: str, target: str, probe: str, model: str) -> Hashable:
    """A rollup row's own key: the rows of a span are merged into coarser ones by it."""
    return (location, target, probe, model)


# Keys that never look at the hour: the database sums their rollup rows (fold_rollup).
_TIMELESS: frozenset[KeyFn] = frozenset({by_model, by_location, by_row})


def rolled_up_to(source: Any) -> datetime | None:
    """The rollup's ``complete_before``: None before its first refresh. ``source``: a
    Session, Connection or Reader (``sql_reader.reader_of``)."""
    reader = reader_of(source)
    found = reader.rows("SELECT complete_before FROM rollup_state WHERE name = ?", (STATE_NAME,))
    return reader.when(found[0][0]) if found else None


complete_before = rolled_up_to  # the name the status tally and tests read it by


def aggregate(
    source: Any,
    *,
    since: datetime,
    key: KeyFn = by_model,
    location: str | None = None,
    until: datetime | None = None,
    per_model: bool = True,
) -> dict[Hashable, Aggregate]:
    """Group everything from ``since`` on (before ``until`` when given) by ``key``,
    reading ``source`` (a Session, Connection or ``sql_reader.Reader``).

    ``per_model=False`` says ``key`` ignores the model: whole days then come
    from the per-target ``tday`` rows (model ``'*'``) instead of each model's
    day rows; otherwise whole months inside the window come from the
    ``month`` rows (``monitor.store.rollup``).
    """
    groups: dict[Hashable, Aggregate] = {}
    rollup_from = ceil_hour(since)
    conn = reader_of(source)
    done = rolled_up_to(conn)
    if done is None or done <= rollup_from or (until is not None and until <= rollup_from):
        _add_raw(conn, groups, key, location, since, until)
        return groups
    # The rollup serves [rollup_from, upto); raw rows the rest up to ``until``.
    upto = done if until is None else min(done, floor_hour(until))
    oldest = done - timedelta(days=KEEP_DAYS - 1)
    # The window's whole days: the atd rows at both ends stand for them.
    heads = [ceil_day(rollup_from), floor_day(upto)] if per_model else []
    present = to_date_rows(conn, done, heads)
    parts = plan(rollup_from, upto, per_model=per_model, oldest=oldest, to_date=present)
    # A day's or month's row minus its rows before the window (or atd minus atd).
    plus = [p[1:] for p in parts if p[0] > 0]
    less = [p[1:] for p in parts if p[0] < 0]
    if key in _TIMELESS:  # taken out in the same query and fold
        fold_rollup(conn, groups, key, location, plus, less)
    else:
        fold_rollup(conn, groups, key, location, plus)
        taken: dict[Hashable, Aggregate] = {}
        fold_rollup(conn, taken, key, location, less)
        for k, rows_before in taken.items():
            groups.setdefault(k, Aggregate()).subtract(rows_before)
    for k in [k for k, agg in groups.items() if agg.probes == 0]:
        del groups[k]  # every row of the group was before the window
    if since < rollup_from:
        _add_raw(conn, groups, key, location, since, rollup_from)
    _add_raw(conn, groups, key, location, upto, until)
    return groups


def add_rollup_rows(
    conn: Any,
    groups: dict[Hashable, Aggregate],
    key: KeyFn,
    location: str | None,
    span: str,
    start: datetime,
    end: datetime,
) -> None:
    """Fold the rollup rows of ``span`` (hour, day, tday, month) in [start, end) into ``groups``."""
    fold_rollup(conn, groups, key, location, [(span, start, end)])


def fold_rollup(
    conn: Any,
    groups: dict[Hashable, Aggregate],
    key: KeyFn,
    location: str | None,
    parts: list[tuple[str, datetime, datetime]],
    less: list[tuple[str, datetime, datetime]] | None = None,
) -> None:
    """Fold the rollup rows of every (span, start, end) of ``parts`` into ``groups``,
    the rows of ``less`` taken out (only for a key in ``_TIMELESS``).

    A key that ignores the hour gets the rows summed per location, target,
    probe and model by the database (``rollup_read.read_groups``); each
    group's rows are then folded at once, column by column. ``conn``: a
    Connection or ``sql_reader.Reader``.
    """
    reader = reader_of(conn)
    if key in _TIMELESS:
        rows = read_groups(reader, parts, location, less or ())
    else:
        if less:
            raise ValueError("rows to take out need a key that ignores the hour")
        rows = read_rows(reader, parts, location)
    pending: dict[Hashable, list[Any]] = {}
    for row in rows:
        found = pending.get(k := key(row[0], row[1], row[2], row[3], row[4]))
        if found is None:
            pending[k] = [row]
        else:
            found.append(row)
    for k, found in pending.items():
        agg = groups.get(k)
        if agg is None:
            agg = groups[k] = Aggregate()
        fold(agg, found)


# The columns of ``probe_results`` that ``add_raw_row`` reads, in its order.
RAW_COLUMNS = (
    "started_at", "target", "probe", "model", "outcome", "duration_s",
    "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "location",
)  # fmt: skip


def add_raw_row(agg: Aggregate, row: Any) -> None:
    """Fold one row of ``RAW_COLUMNS`` into ``agg``."""
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
    reader: Reader,
    groups: dict[Hashable, Aggregate],
    key: KeyFn,
    location: str | None,
    start: datetime,
    end: datetime | None,
) -> None:
    query = f"SELECT {', '.join(RAW_COLUMNS)} FROM probe_results WHERE started_at >= ?"
    params: list[Any] = [start]
    if end is not None:
        query += " AND started_at < ?"
        params.append(end)
    if location is not None:
        query += " AND location = ?"
        params.append(location)
    when, usd = reader.when, reader.usd
    for found in reader.rows(query, params):
        row = (when(found[0]), *found[1:9], usd(found[9]), found[10])
        agg = groups.get(k := key(row[0], row[10], row[1], row[2], row[3]))
        if agg is None:
            agg = groups[k] = Aggregate()
        add_raw_row(agg, row)
