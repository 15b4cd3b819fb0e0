"""The status page's reads: latest results, 24 h latency, the 90-day uptime bar.

SQLAlchemy Core on the existing tables, the same on SQLite and PostgreSQL,
with the split of ``monitor.store.aggregate``: time before
``rollup_state.complete_before`` comes from ``probe_rollup_hourly`` (day rows
for whole UTC days, hour rows for the rest), time after it from
``probe_results``. The rollup part changes only when the hourly refresh
runs, so ``PageReader`` keeps it parsed, keyed by the rollup state and the
window; a render then reads only the raw rows of the current hour or so and
the latest result per model (``benchmarks/statuspage_render.py``).

Contract: ``PageReader.read(conn, location, now)`` returns a ``PageData``;
it never writes. Only chat rows feed the uptime bar and the latency; the
latest ``models`` row per target is the gateway's ``/models`` state.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, String, select, type_coerce

from monitor.outcome import DOWN_OUTCOMES
from monitor.results import ProbeResult
from monitor.statuspage.latest import catalog_sizes, latest_results
from monitor.store.aggregate import DAY, HOUR, STATE_NAME, floor_day, floor_hour
from monitor.store.histogram import LatencyHistogram, bucket, exact_quantile
from monitor.store.models import ProbeResultRow, RollupHourly, RollupState
from monitor.store.queries import row_to_result

DAYS = 90
SPARK_HOURS = 24
_DOWN = frozenset(o.value for o in DOWN_OUTCOMES)

Key = tuple[str, str]  # (target, model)


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One UTC day of one model: attempts, ok and down counts (availability's terms)."""

    day: date
    probes: int
    ok: int
    down: int

    @property
    def availability_pct(self) -> float | None:
        counted = self.ok + self.down
        return None if counted == 0 else 100.0 * self.ok / counted


@dataclass
class _Series:
    """Mutable sums of one model while reading; ``days`` and ``hours`` are slot arrays."""

    probes: list[int] = field(default_factory=lambda: [0] * DAYS)
    ok: list[int] = field(default_factory=lambda: [0] * DAYS)
    down: list[int] = field(default_factory=lambda: [0] * DAYS)
    hour_p50: list[float | None] = field(default_factory=lambda: [None] * SPARK_HOURS)
    hist: Counter[int] = field(default_factory=Counter)
    newest_id: int = 0  # the newest raw row seen (its id), 0: none

    def copy(self) -> _Series:
        return _Series(
            self.probes[:], self.ok[:], self.down[:], self.hour_p50[:], Counter(self.hist)
        )

    def add_outcomes(self, slot: int, outcomes: dict[str, int]) -> None:
        for outcome, count in outcomes.items():
            self.probes[slot] += count
            if outcome == "ok":
                self.ok[slot] += count
            elif outcome in _DOWN:
                self.down[slot] += count


class Prefix:
    """The days of one model that the rollup settled (before the first raw day).

    Built once per rollup state and shared by every render until the next
    refresh; ``memo`` lets a view keep what it derives from these days (the
    uptime bar's runs) for as long.
    """

    __slots__ = ("days", "memo")

    def __init__(self, days: tuple[DayFigures, ...]) -> None:
        self.days = days
        self.memo: dict[str, object] = {}


@dataclass(frozen=True, slots=True)
class ModelHistory:
    """A model's 90 days (oldest first, today last) and its last 24 hours of latency.

    ``days[: len(prefix.days)]`` is ``prefix.days`` when ``prefix`` is set.
    """

    days: tuple[DayFigures, ...]
    hour_p50: tuple[float | None, ...]  # oldest first; None: no ok answer that hour
    p50_s: float | None
    p95_s: float | None
    prefix: Prefix | None = field(default=None, compare=False)

    @property
    def availability_pct(self) -> float | None:
        ok = sum(d.ok for d in self.days)
        counted = ok + sum(d.down for d in self.days)
        return None if counted == 0 else 100.0 * ok / counted


@dataclass(frozen=True, slots=True)
class PageData:
    """Everything ``/`` shows that comes from the database."""

    now: datetime
    first_day: date
    latest: dict[tuple[str, str, str], ProbeResult]  # (target, probe, model) -> last row
    history: dict[Key, ModelHistory]
    catalog_size: dict[str, int]  # target -> models its last stored listing had


@dataclass(frozen=True, slots=True)
class _Window:
    first_day: datetime  # midnight, DAYS - 1 days before today
    spark_start: datetime  # SPARK_HOURS - 1 hours before the current hour

    @staticmethod
    def at(now: datetime) -> _Window:
        return _Window(
            floor_day(now) - (DAYS - 1) * DAY, floor_hour(now) - (SPARK_HOURS - 1) * HOUR
        )

    def day_slot(self, moment: datetime) -> int:
        return (floor_day(moment) - self.first_day) // DAY

    def hour_slot(self, moment: datetime) -> int:
        return (floor_hour(moment) - self.spark_start) // HOUR


class PageReader:
    """Reads ``PageData``; keeps the parsed rollup part until the rollup or window moves.

    Thread-safe: Starlette runs page reads in its thread pool.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[object, dict[Key, _Series], dict[Key, Prefix]] | None = None

    def read(self, conn: Connection, location: str, now: datetime) -> PageData:
        window = _Window.at(now)
        state = conn.execute(
            select(RollupState.complete_before, RollupState.last_id).where(
                RollupState.name == STATE_NAME
            )
        ).first()
        done = None if state is None else state[0]
        if done is not None and done <= window.first_day:
            done = None  # the rollup ends before the window: read everything raw
        cache_key = (location, window, tuple(state) if state else None)
        first_day = window.first_day.date()
        # Raw rows start at ``done``: the days before its day are the rollup's alone.
        tail_from = 0 if done is None else window.day_slot(done)
        with self._lock:
            cached = self._cached
        if cached is not None and cached[0] == cache_key:
            rolled, prefixes = cached[1], cached[2]
        else:
            rolled = {} if done is None else _read_rollup(conn, location, window, done)
            prefixes = {key: Prefix(_days(s, first_day, 0, tail_from)) for key, s in rolled.items()}
            with self._lock:
                self._cached = (cache_key, rolled, prefixes)
        series = {key: s.copy() for key, s in rolled.items()}
        _add_raw(conn, location, window, window.first_day if done is None else done, series)
        history = {
            key: _history(s, first_day, prefixes.get(key), tail_from) for key, s in series.items()
        }
        newest = [s.newest_id for s in series.values() if s.newest_id]
        return PageData(
            now=now,
            first_day=first_day,
            latest=latest_results(conn, location, now, set(history), newest),
            history=history,
            catalog_size=catalog_sizes(conn),
        )


def read_one(
    conn: Connection, location: str, now: datetime, target: str, model: str
) -> tuple[ModelHistory | None, ProbeResult | None]:
    """One model's history and latest chat result (the per-model page, the badges); no cache."""
    window = _Window.at(now)
    done = conn.scalar(select(RollupState.complete_before).where(RollupState.name == STATE_NAME))
    if done is not None and done <= window.first_day:
        done = None
    key = (target, model)
    series = {} if done is None else _read_rollup(conn, location, window, done, key)
    since = window.first_day if done is None else done
    _add_raw(conn, location, window, since, series, key)
    p = ProbeResultRow
    row = conn.execute(
        select(p.__table__)
        .where(p.target == target, p.model == model, p.location == location)
        .where(p.probe == "chat")
        .order_by(p.started_at.desc())
        .limit(1)
    ).first()
    history = _history(series[key], window.first_day.date()) if key in series else None
    return history, None if row is None else row_to_result(row)  # type: ignore[arg-type]


def _read_rollup(
    conn: Connection, location: str, window: _Window, done: datetime, only: Key | None = None
) -> dict[Key, _Series]:
    """The rollup part: day rows before ``floor_day(done)``, hour rows up to ``done``.

    Built for 100,000 rows (1,000 models): rows fetched at once, the ``hour``
    column read without its per-row type conversion (90 + 24 distinct values,
    each converted once), and a day's ``outcomes`` JSON parsed only when some
    probe was not ``ok`` (``successes`` counts the ``ok`` ones).
    """
    r = RollupHourly
    one = () if only is None else (r.target == only[0], r.model == only[1])
    series: dict[Key, _Series] = {}
    loads = json.loads
    whole_days_end = floor_day(done)
    slots: dict[object, tuple[datetime, int, int]] = {}

    def slot_of(raw: object) -> tuple[datetime, int, int]:
        """(moment, day slot, hour slot) of a raw ``hour`` value, converted once per value."""
        found = slots.get(raw)
        if found is None:
            at = _as_utc(raw)
            found = slots[raw] = (at, window.day_slot(at), window.hour_slot(at))
        return found

    hour_raw = type_coerce(r.hour, String)  # no UTCDateTime processing per row
    days = select(hour_raw, r.target, r.model, r.probes, r.successes, r.outcomes).where(
        r.span == "day",
        r.probe == "chat",
        r.location == location,
        r.hour >= window.first_day,
        r.hour < whole_days_end,
        *one,
    )
    for raw_hour, target, model, probes, successes, outcomes in conn.execute(days).all():
        s = series.get((target, model))
        if s is None:
            s = series[(target, model)] = _Series()
        slot = slot_of(raw_hour)[1]
        if probes == successes:  # all ok: no JSON to read
            s.probes[slot] += probes
            s.ok[slot] += probes
        else:
            s.add_outcomes(slot, loads(outcomes))
    hours = select(hour_raw, r.target, r.model, r.outcomes, r.p50_s, r.latency_hist).where(
        r.span == "hour",
        r.probe == "chat",
        r.location == location,
        r.hour >= max(window.first_day, min(whole_days_end, window.spark_start)),
        r.hour < done,
        *one,
    )
    for raw_hour, target, model, outcomes, p50, hist in conn.execute(hours).all():
        s = series.get((target, model))
        if s is None:
            s = series[(target, model)] = _Series()
        hour, day_slot, hour_slot = slot_of(raw_hour)
        if hour >= whole_days_end:  # not in a day row yet
            s.add_outcomes(day_slot, loads(outcomes))
        if hour >= window.spark_start:
            s.hour_p50[hour_slot] = p50
            for index, count in loads(hist).items():
                s.hist[int(index)] += count
    return series


def _as_utc(raw: object) -> datetime:
    """A ``UTCDateTime`` column's driver value (SQLite text, a PostgreSQL datetime) as aware UTC."""
    value = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _add_raw(
    conn: Connection,
    location: str,
    window: _Window,
    since: datetime,
    series: dict[Key, _Series],
    only: Key | None = None,
) -> None:
    """Fold the chat rows from ``since`` on into ``series`` (days, hours, latency)."""
    p = ProbeResultRow
    started = type_coerce(p.started_at, String)  # slots from the driver value, memoised by hour
    query = select(started, p.target, p.model, p.outcome, p.duration_s, p.id).where(
        p.location == location, p.probe == "chat", p.started_at >= since
    )
    if only is not None:
        query = query.where(p.target == only[0], p.model == only[1])
    durations: dict[tuple[Key, int], list[float]] = {}
    by_hour: dict[object, tuple[int, int]] = {}
    for raw, target, model, outcome, duration, row_id in conn.execute(query).all():
        s = series.get((target, model))
        if s is None:
            s = series[(target, model)] = _Series()
        if row_id > s.newest_id:
            s.newest_id = row_id
        # SQLite's text "YYYY-MM-DD HH:MM:SS..." shares its first 13 characters
        # within an hour; a PostgreSQL datetime (in the session's time zone) is
        # converted row by row.
        hour_key = raw[:13] if isinstance(raw, str) else raw
        slots = by_hour.get(hour_key)
        if slots is None:
            at = _as_utc(raw)
            slots = by_hour[hour_key] = (window.day_slot(at), window.hour_slot(at))
        slot, hour = slots
        if not 0 <= slot < DAYS:
            continue  # a clock ahead of ours: not today's cell
        s.probes[slot] += 1
        if outcome == "ok":
            s.ok[slot] += 1
            if duration is not None:
                s.hist[bucket(duration)] += 1
                if 0 <= hour < SPARK_HOURS:
                    durations.setdefault(((target, model), hour), []).append(duration)
        elif outcome in _DOWN:
            s.down[slot] += 1
    for (key, hour), values in durations.items():
        values.sort()
        series[key].hour_p50[hour] = exact_quantile(values, 0.5)


def _days(s: _Series, first_day: date, start: int, end: int) -> tuple[DayFigures, ...]:
    one_day = timedelta(days=1)
    return tuple(
        DayFigures(first_day + i * one_day, s.probes[i], s.ok[i], s.down[i])
        for i in range(start, end)
    )


def _history(
    s: _Series, first_day: date, prefix: Prefix | None = None, tail_from: int = 0
) -> ModelHistory:
    """The finished history; with a ``prefix``, only the days from ``tail_from`` are built."""
    hist = LatencyHistogram(s.hist)
    if prefix is None:
        days = _days(s, first_day, 0, DAYS)
    else:
        days = prefix.days + _days(s, first_day, tail_from, DAYS)
    return ModelHistory(
        days=days,
        hour_p50=tuple(s.hour_p50),
        p50_s=hist.quantile(0.50),
        p95_s=hist.quantile(0.95),
        prefix=prefix,
    )
