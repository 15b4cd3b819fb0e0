"""Retention prunes only old rows; the rollup matches the raw rows it replaces."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from monitor.store import retention, rollup
from monitor.store.batch import write_batch
from monitor.store.db import make_engine
from monitor.store.models import ProbeResultRow, RollupHourly
from monitor.store.queries import spend_today
from tests.store.factory import T0, chat


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def insert(engine: Engine, results: list) -> None:  # type: ignore[type-arg]
    with engine.begin() as conn:
        write_batch(conn, [(f"{i:032x}", r) for i, r in enumerate(results)])


def count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(ProbeResultRow)) or 0)


def test_prune_deletes_only_rows_older_than_retention(engine: Engine) -> None:
    now = T0 + timedelta(days=40)
    old = [chat(i, started_at=now - timedelta(days=31, minutes=i)) for i in range(12)]
    young = [chat(100 + i, started_at=now - timedelta(days=29, minutes=i)) for i in range(5)]
    insert(engine, old + young)
    assert retention.prune(engine, 30, batch=5, now=now) == 12
    assert count(engine) == 5
    assert retention.prune(engine, 30, batch=5, now=now) == 0


def test_rollup_counts_hours_once_and_rerolls_late_rows(engine: Engine) -> None:
    hour = T0.replace(minute=0, second=0, microsecond=0)
    insert(engine, [chat(i, started_at=hour + timedelta(minutes=i)) for i in range(60)])
    now = hour + timedelta(hours=1, minutes=5)
    assert rollup.refresh(engine, now) == 1
    late = [chat(0, started_at=hour + timedelta(minutes=30), request_id="late")]
    with engine.begin() as conn:
        write_batch(conn, [("f" * 32, late[0])])
    rollup.refresh(engine, now + timedelta(hours=5))  # the late row is > lookback away
    with Session(engine) as session:
        probes = session.scalar(
            select(RollupHourly.probes).where(
                RollupHourly.span == "hour", RollupHourly.hour == hour
            )
        )
        day = session.scalar(select(RollupHourly.probes).where(RollupHourly.span == "day"))
    assert probes == 61
    assert day is None  # the day is not complete yet
    rollup.refresh(engine, now + timedelta(days=2))
    with Session(engine) as session:
        day = session.scalar(select(RollupHourly.probes).where(RollupHourly.span == "day"))
    assert day == 61


def test_spend_today_sums_chat_rows_since_utc_midnight(engine: Engine) -> None:
    midnight = T0.replace(hour=0, minute=0, second=0, microsecond=0)
    insert(
        engine,
        [
            chat(0, started_at=midnight - timedelta(minutes=1)),
            chat(1, started_at=midnight + timedelta(minutes=1)),
            chat(2, started_at=midnight + timedelta(hours=3)),
            chat(3, started_at=midnight + timedelta(hours=3), location="us-east-1"),
        ],
    )
    with Session(engine) as session:
        cost, tokens = spend_today(session, "eu-west-1", midnight + timedelta(hours=5))
    assert str(cost.normalize()) == "0.0000048" and tokens == 30
