"""The budget logs once when it is reached and once when it resets, never per skipped probe."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.spend.budget import Budget

D = Decimal
LOGGER = "nexomon.budget"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def spend(budget: Budget, at: datetime, usd: str, tokens: int) -> None:
    held = budget.reserve(D(usd), tokens)
    assert held is not None
    budget.settle(
        held,
        ProbeResult(
            started_at=at,
            location="eu",
            target="gw",
            probe="chat",
            model="m",
            outcome=Outcome.OK,
            total_tokens=tokens,
            cost_usd=D(usd),
        ),
    )


def messages(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    out = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    caplog.clear()
    return out


def test_reached_once_and_reset_once_at_midnight(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = Clock(datetime(2026, 3, 10, 23, 0, tzinfo=UTC))
    budget = Budget(D("0.01"), None, now=clock)
    spend(budget, clock(), "0.006", 30)
    spend(budget, clock(), "0.006", 30)
    assert messages(caplog) == []
    for _ in range(50):  # every skipped probe until midnight
        assert budget.reserve(D("0.006"), 30) is None
        clock.at += timedelta(seconds=60)
    assert messages(caplog) == [
        (
            "WARNING",
            "daily budget of $0.01 reached: chat probes skipped until 00:00 UTC "
            "(spent $0.012 and 60 tokens today)",
        )
    ]
    clock.at = datetime(2026, 3, 11, 0, 0, 5, tzinfo=UTC)
    assert budget.reserve(D("0.006"), 30) is not None
    assert budget.reserve(D("0.006"), 30) is not None
    assert messages(caplog) == [
        ("INFO", "daily budget reset for 2026-03-11 (UTC): chat probes resume")
    ]


def test_no_reset_line_on_a_day_the_budget_was_not_reached(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = Clock(datetime(2026, 3, 10, 23, 0, tzinfo=UTC))
    budget = Budget(D("1"), None, now=clock)
    spend(budget, clock(), "0.5", 10)
    clock.at += timedelta(hours=2)
    assert budget.reserve(D("0.5"), 10) is not None
    assert messages(caplog) == []


def test_a_reload_that_raises_the_cap_says_probes_resume(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = Clock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    budget = Budget(None, 100, now=clock)
    spend(budget, clock(), "0", 100)
    assert budget.reserve(None, 10) is None
    assert budget.reserve(None, 10) is None
    budget.reconfigure(None, 1000)
    assert budget.reserve(None, 10) is not None
    assert [level for level, _ in messages(caplog)] == ["WARNING", "INFO"]
