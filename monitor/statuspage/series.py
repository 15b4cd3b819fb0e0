"""One model's sums while the page reads, the page's time window, and the raw-row fold.

``PageReader`` (``monitor.statuspage.queries``) sums the rollup part into a
``Series`` per model and keeps it; each render copies those and folds the
raw rows since the rollup into the copies with ``add_raw``. Only chat rows
count, and only the 90 days and 24 hours of the ``Window``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Float, String, cast, extract, select, type_coerce

from monitor.outcome import DOWN_OUTCOMES
from monitor.store.aggregate import DAY, HOUR, floor_day, floor_hour
from monitor.store.histogram import bucket, exact_quantile
from monitor.store.models import ProbeResultRow

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


@dataclass(slots=True)
class Series:
    """Mutable sums of one model while reading; ``probes``/``ok``/``down`` are day slots."""

    probes: list[int] = field(default_factory=lambda: [0] * DAYS)
    ok: list[int] = field(default_factory=lambda: [0] * DAYS)
    down: list[int] = field(default_factory=lambda: [0] * DAYS)
    hour_p50: list[float | None] = field(default_factory=lambda: [None] * SPARK_HOURS)
    hist: Counter[int] = field(default_factory=Counter)
    newest_id: int = 0  # the newest raw row seen (its id), 0: none

    def copy(self) -> Series:
        hist: Counter[int] = Counter()
        dict.update(hist, self.hist)  # Counter(c) goes through the slow per-key update
        return Series(self.probes[:], self.ok[:], self.down[:], self.hour_p50[:], hist)

    def add_outcomes(self, slot: int, outcomes: dict[str, int]) -> None:
        for outcome, count in outcomes.items():
            self.probes[slot] += count
            if outcome == "ok":
                self.ok[slot] += count
            elif outcome in _DOWN:
                self.down[slot] += count


@dataclass(frozen=True, slots=True)
class Window:
    """The page's time span at one moment: ``DAYS`` UTC days and ``SPARK_HOURS`` hours."""

    first_day: datetime  # midnight, DAYS - 1 days before today
    spark_start: datetime  # SPARK_HOURS - 1 hours before the current hour

    @staticmethod
    def at(now: datetime) -> Window:
        return Window(floor_day(now) - (DAYS - 1) * DAY, floor_hour(now) - (SPARK_HOURS - 1) * HOUR)

    def day_slot(self, moment: datetime) -> int:
        return (floor_day(moment) - self.first_day) // DAY

    def hour_slot(self, moment: datetime) -> int:
        return (floor_hour(moment) - self.spark_start) // HOUR


def as_utc(raw: object) -> datetime:
    """A ``UTCDateTime`` column's driver value (SQLite text, a PostgreSQL datetime) as aware UTC."""
    value = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def add_raw(
    conn: Connection,
    location: str,
    window: Window,
    since: datetime,
    series: dict[Key, Series],
    only: Key | None = None,
) -> None:
    """Fold the chat rows from ``since`` on into ``series`` (days, hours, latency).

    Several thousand rows a render at 1,000 models, so no datetime is made
    per row: slots are worked out once per hour, keyed by what the database
    hands over. PostgreSQL gives ``started_at`` as epoch seconds
    (``EXTRACT(epoch ...)``; a driver datetime per row, converted to UTC,
    made this 38 ms rather than 25 ms, ``benchmarks/statuspage_render.py``).
    SQLite gives its stored text, naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``,
    whose first 13 characters name the hour (its ``strftime('%s')`` rounds
    to the millisecond: 23:59:59.9996 would count for the next day).
    """
    p = ProbeResultRow
    sqlite = conn.dialect.name == "sqlite"
    when = (
        type_coerce(p.started_at, String) if sqlite else cast(extract("epoch", p.started_at), Float)
    )
    query = select(when, p.target, p.model, p.outcome, p.duration_s, p.id).where(
        p.location == location, p.probe == "chat", p.started_at >= since
    )
    if only is not None:
        query = query.where(p.target == only[0], p.model == only[1])
    day0, hour0 = window.first_day.timestamp(), window.spark_start.timestamp()
    by_hour: dict[object, tuple[int, int]] = {}  # hour key -> (day slot, hour slot)
    durations: dict[tuple[Key, int], list[float]] = {}
    for at, target, model, outcome, duration, row_id in conn.execute(query).all():
        key = (target, model)
        s = series.get(key)
        if s is None:
            s = series[key] = Series()
        if row_id > s.newest_id:
            s.newest_id = row_id
        hour_key = at[:13] if sqlite else at // 3600
        slots = by_hour.get(hour_key)
        if slots is None:
            start = as_utc(at).timestamp() if sqlite else hour_key * 3600
            slots = by_hour[hour_key] = (int((start - day0) // 86400), int((start - hour0) // 3600))
        slot, hour = slots
        if not 0 <= slot < DAYS:
            continue  # a clock ahead of ours: not today's cell
        s.probes[slot] += 1
        if outcome == "ok":
            s.ok[slot] += 1
            if duration is not None:
                s.hist[bucket(duration)] += 1
                if 0 <= hour < SPARK_HOURS:
                    durations.setdefault((key, hour), []).append(duration)
        elif outcome in _DOWN:
            s.down[slot] += 1
    for (key, hour), values in durations.items():
        values.sort()
        series[key].hour_p50[hour] = exact_quantile(values, 0.5)
