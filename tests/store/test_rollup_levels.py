"""The coarse rollup levels (per-target days, months) give the raw rows' numbers exactly."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from monitor.cli.report_rows import by_day
from monitor.outcome import Outcome
from monitor.store import levels, rollup
from monitor.store.aggregate import Aggregate, KeyFn, aggregate, by_location, by_model
from monitor.store.batch import write_batch
from monitor.store.models import RollupHourly
from tests.store.factory import T0, chat

# 75 days from 20 Nov: two whole months (December, January) and parts of two more.
DAYS = 75
NOW = T0 + timedelta(days=DAYS, hours=5)
OUTCOMES = [Outcome.OK] * 5 + [Outcome.SERVER_ERROR, Outcome.TIMEOUT]


def results() -> list:  # type: ignore[type-arg]
    """Every 5 hours, 2 targets x 2 models x 2 locations, mixed outcomes, costs and latencies."""
    out = []
    i = 0
    for step in range(DAYS * 24 // 5 + 1):
        at = T0 + timedelta(hours=5 * step, minutes=step % 60)
        for target in ("gw-a", "gw-b"):
            for model in ("m1", "m2"):
                for location in ("eu", "us"):
                    i += 1
                    outcome = OUTCOMES[i % len(OUTCOMES)]
                    ok = outcome is Outcome.OK
                    out.append(
                        chat(
                            i,
                            started_at=at,
                            target=target,
                            model=model,
                            location=location,
                            outcome=outcome,
                            duration_s=0.05 * (1 + i % 40),
                            cost_usd=Decimal("0.000002400") if ok and i % 3 else None,
                            total_tokens=15 if ok else None,
                        )
                    )
    # A model probed only from 1 to 3 December, before 05:00: a window from
    # 3 December 05:10 reads its day and month rows minus all of its rows.
    for step in range(2 * 24 + 5):
        i += 1
        out.append(chat(i, started_at=EARLY + timedelta(hours=step), model="m-old"))
    return out


EARLY = datetime(2025, 12, 1, 0, 7, tzinfo=UTC)
# Starts mid-day in a complete month: a day row minus 6 hour rows, December's
# month row minus 3 day rows (monitor.store.levels).
SUBTRACTING = datetime(2025, 12, 3, 5, 10, tzinfo=UTC)


def load(engine: Engine) -> None:
    with engine.begin() as conn:
        write_batch(conn, [(f"{i:032x}", r) for i, r in enumerate(results())])


def snapshot(groups: dict[Hashable, Aggregate]) -> dict[Hashable, tuple[object, ...]]:
    return {
        k: (
            a.probes,
            a.successes,
            dict(+a.outcomes),
            dict(+a.latency.counts),
            a.total_tokens,
            a.cost_usd,
            a.unpriced,
        )
        for k, a in groups.items()
    }


CASES: list[tuple[KeyFn, bool, str | None]] = [
    (by_model, True, None),
    (by_model, True, "eu"),
    (by_day, False, None),
    (by_location, False, "us"),
]


def reports(engine: Engine, since: datetime) -> list[dict[Hashable, tuple[object, ...]]]:
    with Session(engine) as session:
        return [
            snapshot(aggregate(session, since=since, key=key, location=loc, per_model=per_model))
            for key, per_model, loc in CASES
        ]


def test_month_and_target_day_rows_match_the_raw_rows(engine: Engine) -> None:
    load(engine)
    since = NOW - timedelta(days=DAYS - 3, minutes=17)
    raw = reports(engine, since)  # no rollup yet: every number from the raw rows
    rollup.refresh(engine, NOW)
    with Session(engine) as session:
        spans = dict(
            session.execute(
                select(RollupHourly.span, func.count()).group_by(RollupHourly.span)
            ).all()
        )
        r = RollupHourly
        target_days = session.execute(
            select(func.count()).select_from(
                select(r.hour, r.location, r.target).where(r.span == "day").distinct().subquery()
            )
        ).scalar()
    # Nov (from the 20th), Dec and Jan are over; Feb is not. Per location/target/model,
    # and m-old's December.
    assert spans["month"] == 3 * 2 * 2 * 2 + 1
    assert spans["tday"] == target_days < spans["day"]  # per location/target, not model
    assert reports(engine, since) == raw
    # A window inside one month reads no month rows and still agrees.
    assert reports(engine, NOW - timedelta(days=9)) == reports_raw(engine, NOW - timedelta(days=9))


def test_the_start_of_a_window_read_as_a_whole_row_minus_the_rows_before(engine: Engine) -> None:
    load(engine)
    rollup.refresh(engine, NOW)
    rolled = reports(engine, SUBTRACTING)
    assert rolled == reports_raw(engine, SUBTRACTING)
    assert all(key[2] != "m-old" for key in rolled[0])  # by_model: (target, probe, model)
    plan = levels.plan(
        SUBTRACTING.replace(hour=6, minute=0), NOW.replace(minute=0, second=0, microsecond=0),
        per_model=True, oldest=NOW - timedelta(days=399),
    )  # fmt: skip
    assert [(sign, span) for sign, span, _a, _b in plan][:4] == [
        (1, "day"), (-1, "hour"), (1, "month"), (-1, "day")
    ]  # fmt: skip


def reports_raw(engine: Engine, since: datetime) -> list[dict[Hashable, tuple[object, ...]]]:
    """The same reports with the rollup hidden: ``rollup_state`` removed, then put back."""
    with engine.begin() as conn:
        state = conn.execute(select(rollup.RollupState.__table__)).all()
        conn.execute(delete(rollup.RollupState))
    try:
        return reports(engine, since)
    finally:
        with engine.begin() as conn:
            conn.execute(rollup.RollupState.__table__.insert(), [r._asdict() for r in state])


def test_backfill_builds_the_levels_of_stored_days(engine: Engine) -> None:
    load(engine)
    rollup.refresh(engine, NOW)
    since = NOW - timedelta(days=DAYS - 1)
    expected = reports(engine, since)
    with engine.begin() as conn:
        conn.execute(delete(RollupHourly).where(RollupHourly.span.in_(["tday", "month"])))
        rollup.backfill_levels(conn)
    assert reports(engine, since) == expected == reports_raw(engine, since)


def test_a_month_row_is_pruned_only_once_its_whole_month_is(engine: Engine) -> None:
    load(engine)
    rollup.refresh(engine, NOW)
    with engine.begin() as conn:
        rollup.prune_rollup(conn, datetime(2025, 12, 20, tzinfo=UTC))
    with Session(engine) as session:
        months = session.scalars(
            select(RollupHourly.hour).where(RollupHourly.span == "month").distinct()
        ).all()
        first_day = session.scalar(
            select(func.min(RollupHourly.hour)).where(RollupHourly.span == "day")
        )
    assert sorted(m.month for m in months) == [1, 12]  # November is wholly past the cutoff
    assert first_day == datetime(2025, 12, 20, tzinfo=UTC)
