"""The to-date rows (``dtd``, ``mtd``) stand for the current day and month exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.orm import Session

from monitor.outcome import Outcome
from monitor.store import levels, rollup
from monitor.store.aggregate import ceil_day, ceil_hour, complete_before, floor_day, floor_hour
from monitor.store.batch import write_batch
from monitor.store.models import RollupHourly
from monitor.store.rollup_read import to_date_rows
from tests.store.factory import T0, chat
from tests.store.test_rollup_levels import DAYS, NOW, load, reports, reports_raw

# NOW is 3 February 17:00 (and a bit): two whole days of February, 17 hours of the 3rd.
WINDOWS = (timedelta(days=DAYS - 3, minutes=17), timedelta(hours=24), timedelta(days=30))


def spans_at(engine: Engine, span: str) -> list[object]:
    with Session(engine) as session:
        r = RollupHourly
        return sorted(session.scalars(select(r.hour).where(r.span == span).distinct()))


def test_a_window_to_the_rollup_end_reads_one_to_date_row_of_each(engine: Engine) -> None:
    load(engine)
    rollup.refresh(engine, NOW)
    with Session(engine) as session:
        done = complete_before(session)
        assert done is not None
        present = to_date_rows(session.connection(), done)
    assert present == {(levels.DTD, done), (levels.MTD, floor_day(done))}
    since = ceil_hour(NOW - WINDOWS[0])
    parts = levels.plan(
        since, done, per_model=True, oldest=done - timedelta(days=399), to_date=present
    )
    # February's two days and the 3rd's 17 hours: one row each, not 2 + 17.
    assert [(sign, span) for sign, span, _a, _b in parts][-2:] == [(1, "mtd"), (1, "dtd")]
    # The 24 h window: yesterday's last hours, then today's in one row.
    day = levels.plan(
        ceil_hour(NOW - WINDOWS[1]), done, per_model=True, oldest=since, to_date=present
    )
    assert [span for _s, span, _a, _b in day] == ["hour", "dtd"]
    for window in WINDOWS:
        assert reports(engine, NOW - window) == reports_raw(engine, NOW - window)


def midnights(engine: Engine, until: datetime) -> list[datetime]:
    """Every midnight after the first day with rows, up to ``until``: where the
    refreshes leave an ``atd`` row."""
    day = floor_day(T0) + timedelta(days=1)
    out = []
    while day <= until:
        out.append(day)
        day += timedelta(days=1)
    return out


def test_late_rows_in_an_earlier_hour_and_day_are_in_the_next_to_date_rows(engine: Engine) -> None:
    """A spool replayed after an outage: rows at 03:10 today, on the 1st, and on
    5 January, before the first whole day of a window from 10 January."""
    load(engine)
    rollup.refresh(engine, NOW)
    today = floor_day(NOW)
    late = [
        chat(
            10**6 + k,
            started_at=at,
            target="gw-a",
            model="m1",
            location="eu",
            outcome=Outcome.OK if k % 2 else Outcome.TIMEOUT,
            duration_s=0.3 + k / 100,
            total_tokens=15,
            cost_usd=Decimal("0.000001000"),
        )
        for k, at in enumerate(
            [today + timedelta(hours=3, minutes=10 + m) for m in range(3)]
            + [today - timedelta(days=2) + timedelta(hours=9)]
            + [JAN_5]
        )
    ]
    with engine.begin() as conn:
        write_batch(conn, [(f"late{i:028x}", r) for i, r in enumerate(late)])
    later = NOW + timedelta(hours=1)
    rollup.refresh(engine, later)
    for window in WINDOWS:
        assert reports(engine, later - window) == reports_raw(engine, later - window)
    # The atd row of the 11th holds the 5th's late row, as the later ones do.
    assert (-1, levels.ATD) in head_parts(engine, FROM_JAN_10)
    assert reports(engine, FROM_JAN_10) == reports_raw(engine, FROM_JAN_10)
    # The previous day-to-date row stays (a report may be reading it), older ones go;
    # an atd row stays at every midnight.
    rollup.refresh(engine, NOW + timedelta(hours=2))
    hours = [floor_hour(NOW) + timedelta(hours=h) for h in (1, 2)]
    assert spans_at(engine, levels.DTD) == hours
    assert spans_at(engine, levels.MTD) == [today]
    assert spans_at(engine, levels.ATD) == midnights(engine, today)


JAN_5 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
FROM_JAN_10 = datetime(2026, 1, 10, 5, 10, tzinfo=UTC)


def head_parts(engine: Engine, since: datetime) -> list[tuple[int, str]]:
    """The (sign, span) of the rows a by-model report from ``since`` reads."""
    with Session(engine) as session:
        done = complete_before(session)
        assert done is not None
        start = ceil_hour(since)
        heads = [ceil_day(start), floor_day(done)]
        present = to_date_rows(session.connection(), done, heads)
        parts = levels.plan(
            start, done, per_model=True, oldest=done - timedelta(days=399), to_date=present
        )
    return [(sign, span) for sign, span, _a, _b in parts]


def test_a_window_s_whole_days_are_two_running_totals(engine: Engine) -> None:
    load(engine)
    rollup.refresh(engine, NOW)
    # From 10 December 05:10: the 10th's hours (its day row minus 6 hour rows), then
    # 11 December to 3 February as the atd row of the 3rd minus that of the 11th
    # (not 21 day rows, January's row and February's mtd row), then today's hours.
    since = datetime(2025, 12, 10, 5, 10, tzinfo=UTC)
    assert head_parts(engine, since) == [
        (1, "day"),
        (-1, "hour"),
        (1, levels.ATD),
        (-1, levels.ATD),
        (1, levels.DTD),
    ]
    assert reports(engine, since) == reports_raw(engine, since)
    # Ten days later the refresh has added an atd row a day: a window inside
    # February is two of them too (then the hours of the 13th, which has no rows).
    later = NOW + timedelta(days=10)
    rollup.refresh(engine, later)
    inside = datetime(2026, 2, 1, 5, 10, tzinfo=UTC)
    assert head_parts(engine, inside) == [
        (1, "day"),
        (-1, "hour"),
        (1, levels.ATD),
        (-1, levels.ATD),
        (1, "hour"),
    ]
    assert reports(engine, inside) == reports_raw(engine, inside)
    assert spans_at(engine, levels.ATD) == midnights(engine, floor_day(later))
    # Retention takes the day rows before a window; its two atd rows still hold them.
    with engine.begin() as conn:
        r = RollupHourly
        conn.execute(delete(r).where(r.span == "day", r.hour < floor_day(inside)))
    assert reports(engine, inside) == reports_raw(engine, inside)


def test_backfill_builds_the_atd_row_of_every_midnight(engine: Engine) -> None:
    load(engine)
    rollup.refresh(engine, NOW)
    r = RollupHourly

    def atd_rows(conn: Connection) -> list[tuple[object, ...]]:
        rows = conn.execute(select(r.__table__).where(r.span == levels.ATD)).mappings()
        # The JSON objects compared as objects: a chained row lists its keys in another order.
        return sorted(
            tuple(json.loads(v) if k in ("outcomes", "latency_hist") else v for k, v in row.items())
            for row in rows
        )

    with engine.begin() as conn:
        kept = atd_rows(conn)
        conn.execute(delete(r).where(r.span == levels.ATD, r.hour < floor_day(NOW)))
        assert rollup.backfill_running(conn) == len(midnights(engine, floor_day(NOW)))
        assert atd_rows(conn) == kept


def test_no_to_date_row_before_a_whole_hour_or_day_of_its_unit(engine: Engine) -> None:
    load(engine)
    # At 00:00 on the 1st: nothing of the day or of the month is complete.
    first = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    rollup.refresh(engine, first)
    # An atd row at every midnight, the 1st's included.
    assert spans_at(engine, levels.DTD) == spans_at(engine, levels.MTD) == []
    assert spans_at(engine, levels.ATD) == midnights(engine, first)
    since = first - timedelta(days=20)
    assert reports(engine, since) == reports_raw(engine, since)


def test_running_totals_after_missing_ones_chain_from_the_last(engine: Engine) -> None:
    """A rebuild whose midnight before has no atd row adds to the last one before it,
    not to the day rows left: retention may have pruned days the older rows hold."""
    load(engine)
    rollup.refresh(engine, NOW)
    r = RollupHourly
    gap = [datetime(2026, 1, 20, tzinfo=UTC) + timedelta(days=k) for k in range(3)]
    with engine.begin() as conn:
        conn.execute(delete(r).where(r.span == levels.ATD, r.hour.in_(gap)))
        conn.execute(delete(r).where(r.span == "day", r.hour < datetime(2026, 1, 5, tzinfo=UTC)))
        built = rollup.roll_running(conn, gap[1], floor_day(NOW))
    assert built == len(midnights(engine, floor_day(NOW))) - len(
        midnights(engine, gap[0])
    )  # from gap[1] to today
    assert head_parts(engine, FROM_JAN_10) == [
        (1, "day"),
        (-1, "hour"),
        (1, levels.ATD),
        (-1, levels.ATD),
        (1, levels.DTD),
    ]
    assert reports(engine, FROM_JAN_10) == reports_raw(engine, FROM_JAN_10)
