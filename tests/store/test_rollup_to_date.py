"""The to-date rows (``dtd``, ``mtd``) stand for the current day and month exactly."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from monitor.outcome import Outcome
from monitor.store import levels, rollup
from monitor.store.aggregate import ceil_hour, complete_before, floor_day, floor_hour
from monitor.store.batch import write_batch
from monitor.store.models import RollupHourly
from monitor.store.rollup_read import to_date_rows
from tests.store.factory import chat
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


def test_late_rows_in_an_earlier_hour_and_day_are_in_the_next_to_date_rows(engine: Engine) -> None:
    """A spool replayed after an outage: rows at 03:10 today and on the 1st."""
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
        )
    ]
    with engine.begin() as conn:
        write_batch(conn, [(f"late{i:028x}", r) for i, r in enumerate(late)])
    later = NOW + timedelta(hours=1)
    rollup.refresh(engine, later)
    for window in WINDOWS:
        assert reports(engine, later - window) == reports_raw(engine, later - window)
    # The previous day-to-date row stays (a report may be reading it), older ones go.
    rollup.refresh(engine, NOW + timedelta(hours=2))
    hours = [floor_hour(NOW) + timedelta(hours=h) for h in (1, 2)]
    assert spans_at(engine, levels.DTD) == hours
    assert spans_at(engine, levels.MTD) == [today]


def test_no_to_date_row_before_a_whole_hour_or_day_of_its_unit(engine: Engine) -> None:
    load(engine)
    # At 00:00 on the 1st: nothing of the day or of the month is complete.
    first = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    rollup.refresh(engine, first)
    assert spans_at(engine, levels.DTD) == spans_at(engine, levels.MTD) == []
    since = first - timedelta(days=20)
    assert reports(engine, since) == reports_raw(engine, since)
