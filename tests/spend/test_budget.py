"""The daily budget: caps by dollars and tokens, restart seed, UTC rollover, reservations.

The clock is injected; no test sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.spend.budget import Budget, format_usd

D = Decimal


class Clock:
    """A settable clock returning aware datetimes."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def noon() -> Clock:
    return Clock(datetime(2025, 3, 10, 12, 0, tzinfo=UTC))


def spent(
    clock: Clock, usd: str | None, tokens: int | None, *, started_at: datetime | None = None
) -> ProbeResult:
    return ProbeResult(
        started_at=started_at or clock(),
        location="test",
        target="nexorouter",
        probe="chat",
        model="deepseek-v4-flash",
        outcome=Outcome.OK,
        total_tokens=tokens,
        cost_usd=None if usd is None else D(usd),
    )


def test_usd_cap_stops_chat_once_reached() -> None:
    clock = noon()
    budget = Budget(D("0.01"), None, now=clock)
    probes = 0
    while budget.allows_chat():
        budget.record(spent(clock, "0.003", 30))
        probes += 1
    assert probes == 4  # 0.003 x 3 = 0.009 < 0.01, the fourth reaches 0.012
    assert budget.spent_usd == D("0.012")
    assert budget.exhausted
    assert budget.reason() == "daily budget of $0.01 reached"


def test_token_cap_stops_chat_once_reached() -> None:
    clock = noon()
    budget = Budget(None, 100, now=clock)
    budget.record(spent(clock, None, 60))  # unpriced: tokens still count
    assert budget.allows_chat()
    budget.record(spent(clock, None, 40))
    assert not budget.allows_chat()
    assert budget.spent_tokens == 100
    assert budget.spent_usd == 0
    assert budget.reason() == "daily budget of 100 tokens reached"


def test_both_caps_reached_are_both_named() -> None:
    clock = noon()
    budget = Budget(D("1"), 1000, now=clock)
    budget.record(spent(clock, "1.5", 5000))
    assert budget.reason() == "daily budget of $1.00 and 1,000 tokens reached"


def test_no_caps_allow_everything_and_still_count() -> None:
    clock = noon()
    budget = Budget(None, None, now=clock)
    budget.record(spent(clock, "1000", 10**9))
    assert budget.allows_chat()
    assert not budget.exhausted
    assert budget.spent_usd == D("1000")
    assert budget.limit_usd is None


def test_results_without_cost_or_tokens_add_nothing() -> None:
    clock = noon()
    budget = Budget(D("1"), 100, now=clock)
    budget.record(spent(clock, None, None))
    assert (budget.spent_usd, budget.spent_tokens) == (0, 0)


def test_seed_keeps_todays_spend_across_a_restart() -> None:
    clock = noon()
    before = Budget(D("1.00"), None, now=clock)
    before.record(spent(clock, "0.60", 100))
    before.record(spent(clock, "0.45", 100))
    assert before.exhausted

    # the lead seeds from queries.spend_today(); here the old instance stands in for it
    after = Budget(D("1.00"), None, now=clock)
    after.seed(before.spent_usd, before.spent_tokens)
    assert not after.allows_chat()
    assert (after.spent_usd, after.spent_tokens) == (D("1.05"), 200)


def test_seed_replaces_rather_than_adds() -> None:
    budget = Budget(D("1"), None, now=noon())
    budget.seed(D("0.4"), 10)
    budget.seed(D("0.4"), 10)
    assert (budget.spent_usd, budget.spent_tokens) == (D("0.4"), 10)


def test_new_utc_day_resumes_probing() -> None:
    clock = Clock(datetime(2025, 3, 10, 23, 59, 59, tzinfo=UTC))
    budget = Budget(D("0.01"), 1000, now=clock)
    budget.record(spent(clock, "0.02", 2000))
    assert not budget.allows_chat()
    clock.advance(seconds=1)  # 00:00:00 UTC
    assert budget.allows_chat()
    assert not budget.exhausted
    assert (budget.spent_usd, budget.spent_tokens) == (0, 0)


def test_rollover_follows_utc_not_the_clocks_zone() -> None:
    plus_two = timezone(timedelta(hours=2))
    clock = Clock(datetime(2025, 3, 11, 1, 30, tzinfo=plus_two))  # 23:30 UTC on the 10th
    budget = Budget(D("0.01"), None, now=clock)
    budget.record(spent(clock, "0.02", 1))
    clock.advance(minutes=20)  # 23:50 UTC: still the same UTC day
    assert not budget.allows_chat()
    clock.advance(minutes=10)  # 00:00 UTC
    assert budget.allows_chat()


def test_result_started_yesterday_does_not_count_today() -> None:
    clock = Clock(datetime(2025, 3, 10, 23, 59, 59, tzinfo=UTC))
    budget = Budget(D("0.01"), None, now=clock)
    started = clock()
    clock.advance(seconds=5)  # the probe finished after midnight
    budget.record(spent(clock, "0.05", 10, started_at=started))
    assert budget.spent_usd == 0
    assert budget.allows_chat()


def test_clock_stepped_back_keeps_the_spend() -> None:
    clock = Clock(datetime(2025, 3, 11, 0, 0, 5, tzinfo=UTC))
    budget = Budget(D("0.01"), None, now=clock)
    budget.record(spent(clock, "0.02", 1))
    clock.advance(seconds=-10)  # back into the 10th
    assert not budget.allows_chat()


def test_reservation_bounds_overshoot_to_one_probe() -> None:
    """Ten concurrent probes at a $0.01 cap: only those that fit are admitted."""
    clock = noon()
    budget = Budget(D("0.01"), None, now=clock)
    expected = D("0.003")
    held = [r for r in (budget.reserve(expected, 30) for _ in range(10)) if r is not None]
    assert len(held) == 4  # 0, 0.003, 0.006, 0.009 are below the cap when admitted
    assert budget.reserved_usd == D("0.012")
    assert budget.reason() == "daily budget of $0.01 reached"
    for reservation in held:
        budget.settle(reservation, spent(clock, "0.003", 30))
    assert budget.reserved_usd == 0
    assert budget.spent_usd == D("0.012")
    assert budget.spent_usd < budget.limit_usd + expected  # overshoot under one probe
    assert budget.exhausted
    assert budget.reserve(expected, 30) is None


def test_without_reservation_concurrent_probes_overshoot() -> None:
    """The simple allows_chat/record path admits every probe started before any finishes."""
    clock = noon()
    budget = Budget(D("0.01"), None, now=clock)
    admitted = sum(1 for _ in range(10) if budget.allows_chat())
    assert admitted == 10


def test_settle_releases_a_failed_probes_reservation() -> None:
    clock = noon()
    budget = Budget(D("0.01"), 100, now=clock)
    reservation = budget.reserve(D("0.009"), 90)
    assert reservation is not None
    budget.settle(reservation, None)  # the probe raised: nothing was spent
    assert (budget.reserved_usd, budget.reserved_tokens) == (0, 0)
    assert (budget.spent_usd, budget.spent_tokens) == (0, 0)
    assert budget.allows_chat()


def test_reservation_cheaper_than_expected_reopens_the_budget() -> None:
    clock = noon()
    budget = Budget(D("0.01"), None, now=clock)
    first = budget.reserve(D("0.006"), 10)
    second = budget.reserve(D("0.006"), 10)
    assert first is not None and second is not None
    assert budget.reserve(D("0.006"), 10) is None
    budget.settle(first, spent(clock, "0.001", 10))  # stopped early: cheaper than worst case
    budget.settle(second, spent(clock, "0.001", 10))
    assert budget.allows_chat()


def test_unpriced_reservation_holds_tokens_only() -> None:
    clock = noon()
    budget = Budget(D("0.01"), 100, now=clock)
    assert budget.reserve(None, 60) is not None
    assert budget.reserved_usd == 0
    assert budget.reserve(None, 60) is not None
    assert budget.reserve(None, 1) is None  # 120 tokens held, cap 100


def test_reservation_from_yesterday_is_dropped_at_rollover() -> None:
    clock = Clock(datetime(2025, 3, 10, 23, 59, 59, tzinfo=UTC))
    budget = Budget(D("0.01"), None, now=clock)
    reservation = budget.reserve(D("0.02"), 10)
    assert reservation is not None
    assert not budget.allows_chat()
    clock.advance(seconds=2)
    assert budget.allows_chat()
    budget.settle(reservation, None)
    assert budget.reserved_usd == 0  # not driven negative by the old reservation


def test_reconfigure_changes_caps_and_keeps_spend() -> None:
    clock = noon()
    budget = Budget(D("0.01"), None, now=clock)
    budget.record(spent(clock, "0.02", 10))
    assert budget.exhausted
    budget.reconfigure(D("5"), None)
    assert budget.allows_chat()
    assert budget.spent_usd == D("0.02")
    assert budget.limit_usd == D("5")


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (D("1"), "$1.00"),
        (D("1.00"), "$1.00"),
        (D("0.5"), "$0.50"),
        (D("0.005"), "$0.005"),
        (D("10"), "$10.00"),
        (D("1E+1"), "$10.00"),
        (D("0.12345"), "$0.12345"),
    ],
)
def test_format_usd(amount: Decimal, text: str) -> None:
    assert format_usd(amount) == text
