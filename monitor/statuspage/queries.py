"""The status page's reads: latest results, 24 h latency, the 90-day uptime bar.

SQLAlchemy Core on the existing tables, the same on SQLite and PostgreSQL,
with the split of ``monitor.store.aggregate``: time before
``rollup_state.complete_before`` comes from ``probe_rollup_hourly`` (day rows
for whole UTC days, hour rows for the rest), time after it from
``probe_results``. The rollup part changes only when the hourly refresh
runs, so ``PageReader`` keeps it parsed, keyed by the rollup state and the
window; a render then reads only the raw rows of the current hour or so
(``series.add_raw``) and the latest result per model, of which only those
written since the last render are fetched whole (``latest.ResultCache``;
``benchmarks/statuspage_render.py``).

Contract: ``PageReader.read(conn, location, now)`` returns a ``PageData``;
it never writes. Only chat rows feed the uptime bar and the latency; the
latest ``models`` row per target is the gateway's ``/models`` state.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, String, case, select, type_coerce

from monitor.results import ProbeResult
from monitor.statuspage.latest import ResultCache, catalog_sizes, latest_results
from monitor.statuspage.series import (
    DAYS,
    SPARK_HOURS,
    DayFigures,
    Key,
    Series,
    Window,
    add_raw,
    as_utc,
)
from monitor.store.aggregate import STATE_NAME, floor_day
from monitor.store.histogram import LatencyHistogram
from monitor.store.models import ProbeResultRow, RollupHourly, RollupState
from monitor.store.queries import row_to_result

__all__ = [
    "DAYS", "SPARK_HOURS", "DayFigures", "ModelHistory", "PageData", "PageReader", "Prefix",
    "read_one",
]  # fmt: skip


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


class PageReader:
    """Reads ``PageData``; keeps the parsed rollup part until the rollup or window moves,
    and the latest results by row id (a stored row never changes) until a newer one replaces
    them.

    Thread-safe: Starlette runs page reads in its thread pool.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[object, dict[Key, Series], dict[Key, Prefix]] | None = None
        self._results = ResultCache()

    def read(self, conn: Connection, location: str, now: datetime) -> PageData:
        window = Window.at(now)
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
            shared: dict[tuple[int, int, int, int], DayFigures] = {}
            prefixes = {
                key: Prefix(_days(s, first_day, 0, tail_from, shared)) for key, s in rolled.items()
            }
            with self._lock:
                self._cached = (cache_key, rolled, prefixes)
        series = {key: s.copy() for key, s in rolled.items()}
        add_raw(conn, location, window, window.first_day if done is None else done, series)
        history = {
            key: _history(s, first_day, prefixes.get(key), tail_from) for key, s in series.items()
        }
        newest = [s.newest_id for s in series.values() if s.newest_id]
        return PageData(
            now=now,
            first_day=first_day,
            latest=latest_results(conn, location, now, set(history), newest, self._results),
            history=history,
            catalog_size=catalog_sizes(conn),
        )


def read_one(
    conn: Connection, location: str, now: datetime, target: str, model: str
) -> tuple[ModelHistory | None, ProbeResult | None]:
    """One model's history and latest chat result (the per-model page, the badges); no cache."""
    window = Window.at(now)
    done = conn.scalar(select(RollupState.complete_before).where(RollupState.name == STATE_NAME))
    if done is not None and done <= window.first_day:
        done = None
    key = (target, model)
    series = {} if done is None else _read_rollup(conn, location, window, done, key)
    since = window.first_day if done is None else done
    add_raw(conn, location, window, since, series, key)
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
    conn: Connection, location: str, window: Window, done: datetime, only: Key | None = None
) -> dict[Key, Series]:
    """The rollup part: day rows before ``floor_day(done)``, hour rows up to ``done``.

    Built for 100,000 rows (1,000 models): rows fetched at once, the ``hour``
    column read without its per-row type conversion (90 + 24 distinct values,
    each converted once), and a day's ``outcomes`` JSON fetched and parsed
    only when some probe was not ``ok`` (``successes`` counts the ``ok`` ones).
    """
    r = RollupHourly
    one = () if only is None else (r.target == only[0], r.model == only[1])
    series: dict[Key, Series] = {}
    loads = json.loads
    whole_days_end = floor_day(done)
    slots: dict[object, tuple[datetime, int, int]] = {}

    def slot_of(raw: object) -> tuple[datetime, int, int]:
        """(moment, day slot, hour slot) of a raw ``hour`` value, converted once per value."""
        found = slots.get(raw)
        if found is None:
            at = as_utc(raw)
            found = slots[raw] = (at, window.day_slot(at), window.hour_slot(at))
        return found

    hour_raw = type_coerce(r.hour, String)  # no UTCDateTime processing per row
    not_all_ok = case((r.probes == r.successes, None), else_=r.outcomes)
    days = select(hour_raw, r.target, r.model, r.probes, not_all_ok).where(
        r.span == "day",
        r.probe == "chat",
        r.location == location,
        r.hour >= window.first_day,
        r.hour < whole_days_end,
        *one,
    )
    for raw, target, model, probes, outcomes in conn.execute(days).all():
        s = series.get((target, model))
        if s is None:
            s = series[(target, model)] = Series()
        slot = slot_of(raw)[1]
        if outcomes is None:  # all ok
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
    for raw, target, model, outcomes, p50, hist in conn.execute(hours).all():
        s = series.get((target, model))
        if s is None:
            s = series[(target, model)] = Series()
        at, day_slot, hour_slot = slot_of(raw)
        if at >= whole_days_end:  # not in a day row yet
            s.add_outcomes(day_slot, loads(outcomes))
        if at >= window.spark_start:
            s.hour_p50[hour_slot] = p50
            for index, count in loads(hist).items():
                s.hist[int(index)] += count
    return series


def _days(
    s: Series,
    first_day: date,
    start: int,
    end: int,
    shared: dict[tuple[int, int, int, int], DayFigures] | None = None,
) -> tuple[DayFigures, ...]:
    """Slots ``start`` to ``end`` as days; equal days of different models share one
    (frozen) ``DayFigures`` through ``shared``.

    Most models have the same figures on most days (every probe ok at one
    interval): sharing turns the ~90,000 cached days of 1,000 models into a
    few hundred objects (memory, the cold read, and less for each full
    garbage collection to walk).
    """
    one_day = timedelta(days=1)
    if shared is None:
        return tuple(
            DayFigures(first_day + i * one_day, s.probes[i], s.ok[i], s.down[i])
            for i in range(start, end)
        )
    days = []
    for i in range(start, end):
        figures = (i, s.probes[i], s.ok[i], s.down[i])
        day = shared.get(figures)
        if day is None:
            day = shared[figures] = DayFigures(first_day + i * one_day, *figures[1:])
        days.append(day)
    return tuple(days)


def _history(
    s: Series, first_day: date, prefix: Prefix | None = None, tail_from: int = 0
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
