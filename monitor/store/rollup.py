"""The hourly rollup: ``probe_rollup_hourly`` kept for 400 days.

``refresh(engine, now)`` rolls up every complete hour not yet rolled up,
re-rolls the last ``LOOKBACK_HOURS`` (rows whose commit lagged) and any hour
that received rows since the last refresh (``probe_results.id`` above the
stored ``last_id``: a spool replayed after an outage), then re-merges the
day row (``span = 'day'``) of every complete UTC day that had an hour
re-rolled, and prunes rollup rows older than ``KEEP_DAYS``. Each hour and
each day is replaced in its own short transaction (delete, insert), so a
refresh can be interrupted and rerun.

Two coarser levels are merged from the day rows, so a report over a year
reads a few rows per model or per target instead of 365 (migration 0005,
benchmarks/history.py): ``span = 'tday'``, one row per UTC day and
location/target/probe with ``model = '*'`` (every model of the target;
``--by day`` and ``--by location`` read it), re-merged with its day; and
``span = 'month'``, one row per complete UTC month and
location/target/probe/model (``hour`` = 00:00 on the 1st), re-merged when a
day of a complete month is. The to-date rows (``span = 'dtd'``: the current
day's hour rows; ``'mtd'``: the current month's day rows; ``roll_to_date``)
are rebuilt by every refresh, so a window ending at the rollup's end reads
one row for each instead of up to 23 and 30 (``monitor.store.levels``). The
running totals (``span = 'atd'``: every day row before the row's midnight)
are kept at every midnight and rebuilt from a day a late row re-rolls on, so
a window's whole days are the difference of two of them.
Run it hourly (the daemon) and before a report (the CLI) if you like; the
report is right either way, only slower while the rollup is behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Hashable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.orm import Session

from monitor.store.aggregate import (
    DAY,
    HOUR,
    RAW_COLUMNS,
    STATE_NAME,
    Aggregate,
    add_raw_row,
    add_rollup_rows,
    by_row,
    floor_day,
    floor_hour,
    fold_rollup,
    rolled_up_to,
)
from monitor.store.histogram import exact_quantile
from monitor.store.levels import ATD, DTD, KEEP_DAYS, MTD, next_month
from monitor.store.models import ProbeResultRow, RollupHourly, RollupState
from monitor.store.rollup_read import to_date_rows

LOOKBACK_HOURS = 2


def refresh(engine: Engine, now: datetime) -> int:
    """Bring the rollup up to the last complete hour before ``now``; returns hours rolled."""
    current = floor_hour(now)
    p = ProbeResultRow
    with Session(engine) as session:
        state = session.get(RollupState, STATE_NAME)
        max_id = session.scalar(select(func.max(p.id))) or 0
        hours: set[datetime] = set()
        if state is None or state.complete_before is None:
            first = session.scalar(select(func.min(p.started_at)))
            start = None if first is None else floor_hour(first)
            last_id = 0
        else:
            start = state.complete_before - LOOKBACK_HOURS * HOUR
            last_id = state.last_id
            late = session.scalars(select(p.started_at).where(p.id > last_id, p.started_at < start))
            hours.update(floor_hour(at) for at in late)
    if start is not None:
        hour = start
        while hour < current:
            hours.add(hour)
            hour += HOUR
    rolled = sorted(h for h in hours if h < current)
    for hour in rolled:
        with engine.begin() as conn:
            roll_hour(conn, hour)
    days = [d for d in sorted({floor_day(h) for h in rolled}) if d + DAY <= current]
    for day in days:
        with engine.begin() as conn:
            roll_day(conn, day)
            roll_target_day(conn, day)
    for month in sorted({month_of(d) for d in days}):
        if next_month(month) <= current:
            with engine.begin() as conn:
                roll_month(conn, month)
    with engine.begin() as conn:
        roll_to_date(conn, current, days)
    with engine.begin() as conn:
        prune_rollup(conn, now - timedelta(KEEP_DAYS))
        conn.execute(delete(RollupState).where(RollupState.name == STATE_NAME))
        conn.execute(
            RollupState.__table__.insert().values(
                name=STATE_NAME, complete_before=current, last_id=max(max_id, last_id)
            )
        )
    return len(rolled)


def raw_columns() -> tuple[Any, ...]:
    """``aggregate.RAW_COLUMNS`` as ``probe_results`` columns (typed: aware datetimes,
    Decimal costs), for ``select``."""
    return tuple(getattr(ProbeResultRow, name) for name in RAW_COLUMNS)


def prune_rollup(conn: Connection, cutoff: datetime) -> None:
    """Delete rollup rows before ``cutoff``; a month row only once its whole month is.

    So a month row never stands for fewer days than its month's day rows do:
    a report whose window holds the whole month reads it (``aggregate``).
    """
    r = RollupHourly
    conn.execute(delete(r).where(r.span != "month", r.hour < cutoff))
    conn.execute(delete(r).where(r.span == "month", r.hour < cutoff - timedelta(days=31)))


def roll_hour(conn: Connection, hour: datetime) -> None:
    """Replace the rollup rows of one hour with fresh aggregates of its raw rows."""
    p = ProbeResultRow
    rows = conn.execute(
        select(*raw_columns()).where(p.started_at >= hour, p.started_at < hour + HOUR)
    )
    groups: dict[Hashable, Aggregate] = {}
    durations: dict[Hashable, list[float]] = {}
    for row in rows:
        key = (row[10], row[1], row[2], row[3])
        agg = groups.get(key)
        if agg is None:
            agg = groups[key] = Aggregate()
            durations[key] = []
        add_raw_row(agg, row)
        if row[4] == "ok" and row[5] is not None:
            durations[key].append(row[5])
    conn.execute(delete(RollupHourly).where(RollupHourly.span == "hour", RollupHourly.hour == hour))
    if not groups:
        return
    values = []
    for key, agg in groups.items():
        ordered = sorted(durations[key])
        # Exact percentiles from the raw durations; the histogram is kept for merging.
        quantiles = tuple(exact_quantile(ordered, q) for q in (0.50, 0.95, 0.99))
        values.append(_row("hour", hour, key, agg, quantiles))  # type: ignore[arg-type]
    conn.execute(RollupHourly.__table__.insert(), values)


def roll_day(conn: Connection, day: datetime) -> None:
    """Replace the day row of ``day`` (a UTC midnight) with its merged hour rows."""
    r = RollupHourly
    groups: dict[Hashable, Aggregate] = {}
    add_rollup_rows(
        conn,
        groups,
        lambda _hour, location, target, probe, model: (location, target, probe, model),
        None,
        "hour",
        day,
        day + DAY,
    )
    conn.execute(delete(r).where(r.span == "day", r.hour == day))
    if not groups:
        return
    values = [
        _row("day", day, key, agg, agg.latency.quantiles((0.50, 0.95, 0.99)))  # type: ignore[arg-type]
        for key, agg in groups.items()
    ]
    conn.execute(r.__table__.insert(), values)


def month_of(moment: datetime) -> datetime:
    """00:00 UTC on the 1st of ``moment``'s UTC month."""
    return floor_day(moment).replace(day=1)


ALL_MODELS = "*"  # the model of a ``tday`` row: every model of its target


def roll_target_day(conn: Connection, day: datetime) -> None:
    """Replace the ``tday`` rows of ``day`` with its day rows merged per target."""
    merge_rows(
        conn,
        "tday",
        day,
        [("day", day, day + DAY)],
        lambda _h, loc, tgt, probe, _m: (loc, tgt, probe, ALL_MODELS),
    )


def roll_month(conn: Connection, month: datetime) -> None:
    """Replace the ``month`` rows of ``month`` (a complete month) with its merged day rows."""
    merge_rows(conn, "month", month, [("day", month, next_month(month))], by_row)


def roll_to_date(conn: Connection, current: datetime, days: Collection[datetime] = ()) -> None:
    """Build the to-date rows at ``current`` (``complete_before``).

    ``dtd`` from the hour rows since midnight, every refresh (each re-rolls
    hours); ``mtd`` from the day rows since the 1st when missing or when one
    of ``days`` (the days this refresh re-rolled) is one of them; whole, not
    added to the last ones: a late row re-rolled into an earlier hour or day
    would leave those behind. Of the older ``dtd`` and ``mtd`` rows only the
    last is kept (a report that read the previous ``complete_before`` may be
    reading it), older ones go.

    ``atd`` rows are kept at every midnight (retention prunes them): the one
    at today's midnight is built when missing, and every one after a day of
    ``days`` (a late row) is rebuilt up to today (``roll_running``), so each
    matches the day rows it stands for.
    """
    day = floor_day(current)
    month = month_of(current)
    if current != day:  # an hour of the day is complete
        _keep_last(conn, DTD, current)
        merge_rows(conn, DTD, current, [("hour", day, current)], by_row)
    present = to_date_rows(conn, current, [day])
    rolled = any(month <= d < day for d in days)
    if day != month and (rolled or (MTD, day) not in present):
        _keep_last(conn, MTD, day)
        merge_rows(conn, MTD, day, [("day", month, day)], by_row)
    stale = sorted({d + DAY for d in days if d + DAY <= day})
    if (ATD, day) not in present and day not in stale:
        stale.append(day)
    if stale:
        roll_running(conn, stale[0], day)


def _keep_last(conn: Connection, span: str, at: datetime) -> None:
    """Delete the ``span`` rows before the last one before ``at``."""
    r = RollupHourly
    older = conn.scalar(select(func.max(r.hour)).where(r.span == span, r.hour < at))
    if older is not None:
        conn.execute(delete(r).where(r.span == span, r.hour < older))


def roll_running(conn: Connection, first: datetime, last: datetime) -> int:
    """Rebuild the ``atd`` rows (every day row before the row's midnight) at every
    midnight from ``first`` to ``last``; returns how many midnights were built.

    Each is the row at the midnight before plus that day's rows (2 rows a
    model, not up to 400); after midnights without one (no rows those days),
    the last row before plus the day rows since; with no row before it at
    all, every day row before it. Chaining from the last row keeps every
    ``atd`` row on one chain, so any two differ by exactly the day rows
    between them even once retention has pruned the days the first one holds.
    """
    r = RollupHourly
    built = 0
    at = first
    while at <= last:
        before = conn.scalar(select(func.max(r.hour)).where(r.span == ATD, r.hour < at))
        if before is not None:
            sources = [(ATD, before, before + HOUR), ("day", before, at)]
        else:
            sources = [("day", datetime.min.replace(tzinfo=at.tzinfo), at)]
        merge_rows(conn, ATD, at, sources, by_row)
        built += 1
        at += DAY
    return built


def merge_rows(
    conn: Connection,
    span: str,
    at: datetime,
    sources: Sequence[tuple[str, datetime, datetime]],
    key: Callable[[datetime, str, str, str, str], Hashable],
) -> None:
    """Replace the ``span`` rows at ``at``: the rows of ``sources`` (span, start, end)
    merged by ``key`` (the (location, target, probe, model) of the new row)."""
    r = RollupHourly
    groups: dict[Hashable, Aggregate] = {}
    fold_rollup(conn, groups, key, None, list(sources))
    conn.execute(delete(r).where(r.span == span, r.hour == at))
    if not groups:
        return
    values = [
        _row(span, at, k, agg, agg.latency.quantiles((0.50, 0.95, 0.99)))  # type: ignore[arg-type]
        for k, agg in groups.items()
    ]
    conn.execute(r.__table__.insert(), values)


def backfill_levels(conn: Connection) -> None:
    """Build the ``tday`` and ``month`` rows of every day row already stored (migration 0005)."""
    r = RollupHourly
    state = rolled_up_to(conn)
    if state is None:
        return
    current = floor_hour(state)
    days = [floor_day(d) for d in conn.scalars(select(r.hour).where(r.span == "day").distinct())]
    for day in sorted(set(days)):
        roll_target_day(conn, day)
    for month in sorted({month_of(d) for d in days}):
        if next_month(month) <= current:
            roll_month(conn, month)


def backfill_running(conn: Connection) -> int:
    """Build the ``atd`` row of every midnight after the first day row, up to the
    rollup's end: what daily refreshes leave behind (a database that ran an older
    nexomon gets them from its next refresh on; until then reports read the month,
    day and ``mtd`` rows). Returns how many midnights were built."""
    r = RollupHourly
    state = rolled_up_to(conn)
    first = conn.scalar(select(func.min(r.hour)).where(r.span == "day"))
    if state is None or first is None:
        return 0
    return roll_running(conn, floor_day(first) + DAY, floor_day(state))


def _row(
    span: str,
    moment: datetime,
    key: tuple[str, str, str, str],
    agg: Aggregate,
    quantiles: tuple[float | None, float | None, float | None],
) -> dict[str, object]:
    """One ``probe_rollup_hourly`` row of ``span`` ("hour" or "day") for a group."""
    location, target, probe, model = key
    p50, p95, p99 = quantiles
    return {
        "span": span,
        "hour": moment,
        "location": location,
        "target": target,
        "probe": probe,
        "model": model,
        "probes": agg.probes,
        "successes": agg.successes,
        "outcomes": json.dumps(dict(agg.outcomes), separators=(",", ":")),
        "p50_s": p50,
        "p95_s": p95,
        "p99_s": p99,
        "latency_hist": agg.latency.to_json(),
        "prompt_tokens": agg.prompt_tokens,
        "completion_tokens": agg.completion_tokens,
        "total_tokens": agg.total_tokens,
        "cost_usd": agg.cost_usd,
        "unpriced": agg.unpriced,
    }
