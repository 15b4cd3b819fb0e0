"""The incremental 24 h window (monitor.store.status_tally) against the query it replaces.

Forty hours of probes are written 20 minutes at a time, the rollup runs 20
minutes past each hour (so the window's start moves before the rollup does),
and after every step ``WindowTally.summary`` must equal
``queries.status_summary`` over the same window: probes, availability, p95
and last result of every job. A job that stops ages out of the window; a
late row inside the window counts, one before it does not; a tally built
late finds the last row of a quiet job by lookup. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import UnboundExecutionError
from sqlalchemy.orm import Session

from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.store import rollup
from monitor.store.batch import write_batch
from monitor.store.queries import StatusRow, status_summary
from monitor.store.status_tally import WindowTally, window_start
from tests.store.factory import chat

BASE = datetime(2025, 11, 20, 0, 0, tzinfo=UTC)
STEP = timedelta(minutes=20)
STEPS = 120  # 40 hours
MODELS = ("a", "b", "c")
C_STOPS = BASE + timedelta(hours=10)  # model c is no longer probed after this


def _result(at: datetime, model: str, n: int) -> ProbeResult:
    outcome = (Outcome.SERVER_ERROR, Outcome.TIMEOUT, Outcome.OK, Outcome.OK, Outcome.OK)[n % 5]
    return chat(
        0,
        started_at=at,
        model=model,
        outcome=outcome,
        duration_s=0.05 * (1 + n % 13) if outcome is Outcome.OK else None,
        request_id=f"{model}-{n}",
    )


def _rows_between(start: datetime, end: datetime, counter: list[int]) -> list[ProbeResult]:
    """Every model but a stopped c, every 5 minutes in [start, end)."""
    out = []
    at = start
    while at < end:
        for model in MODELS:
            if model == "c" and at >= C_STOPS:
                continue
            counter[0] += 1
            out.append(_result(at, model, counter[0]))
        at += timedelta(minutes=5)
    return out


def _write(engine: Engine, results: list[ProbeResult], counter: list[int]) -> None:
    items = []
    for result in results:
        counter[0] += 1
        items.append((f"{counter[0]:032x}", result))
    with engine.begin() as conn:
        write_batch(conn, items)


def _view(rows: list[StatusRow]) -> list[tuple[Any, ...]]:
    return [
        (r.target, r.probe, r.model, r.probes, r.availability_pct, r.p95_s, r.last.request_id)
        for r in rows
    ]


def test_tally_equals_the_full_query_at_every_step(engine: Engine) -> None:
    tally = WindowTally()
    late_tally: WindowTally | None = None
    made, ids = [0], [0]
    seen_c_leave = False
    for step in range(1, STEPS + 1):
        now = BASE + step * STEP
        _write(engine, _rows_between(now - STEP, now, made), ids)
        if step == 61:  # a late row inside the window, and one from before it (x:20: rolled)
            _write(engine, [_result(now - timedelta(hours=3, minutes=1), "a", 10**6)], ids)
            _write(engine, [_result(now - timedelta(hours=30), "b", 10**6 + 1)], ids)
        if now.minute == 20:
            rollup.refresh(engine, now)
        if step == 100:
            late_tally = WindowTally()
        with Session(engine) as session:
            expected = _view(status_summary(session, window_start(now)))
            assert _view(tally.summary(session, now)) == expected, f"step {step}"
            if late_tally is not None:
                assert _view(late_tally.summary(session, now)) == expected, f"late, step {step}"
        models = {row[2] for row in expected}
        if now >= C_STOPS + timedelta(hours=26):
            assert "c" not in models  # aged out
            seen_c_leave = True
        elif now < C_STOPS + timedelta(hours=24):
            assert "c" in models
    assert seen_c_leave


def test_an_empty_database_has_no_rows(engine: Engine) -> None:
    with Session(engine) as session:
        assert WindowTally().summary(session, BASE) == []


def test_a_failed_read_starts_again(engine: Engine) -> None:
    made, ids = [0], [0]
    now = BASE + timedelta(hours=1)
    _write(engine, _rows_between(BASE, now, made), ids)
    tally = WindowTally()
    with Session(engine) as session:
        first = _view(tally.summary(session, now))
    _write(engine, _rows_between(now, now + STEP, made), ids)
    with Session() as unbound, pytest.raises(UnboundExecutionError):  # no engine to read from
        tally.summary(unbound, now + STEP)
    assert tally._sums is None  # half-folded sums are dropped
    with Session(engine) as session:
        again = _view(tally.summary(session, now + STEP))
        assert again == _view(status_summary(session, window_start(now + STEP)))
    assert again != first  # the 20 minutes written meanwhile are in
