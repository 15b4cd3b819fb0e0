"""StateLog: one line per state change, refused is not down, a 10-minute summary per target."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from monitor.daemon.statelog import StateLog, format_age, state_of
from monitor.outcome import DOWN_OUTCOMES, Outcome
from monitor.results import ProbeResult

LOGGER = "nexomon.probe"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def result(
    outcome: Outcome, *, target: str = "gw", probe: str = "chat", model: str = "m"
) -> ProbeResult:
    error = None if outcome in (Outcome.OK, Outcome.SKIPPED) else f"{outcome.value} detail"
    return ProbeResult(
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        location="eu",
        target=target,
        probe=probe,
        model=model if probe == "chat" else "",
        outcome=outcome,
        error=error,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def statelog(clock: Clock) -> StateLog:
    return StateLog(logging.getLogger(LOGGER), clock=clock)


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    out = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    caplog.clear()
    return out


@pytest.fixture(autouse=True)
def _capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)


def test_states_follow_the_availability_rule() -> None:
    assert state_of(Outcome.OK) == "up"
    assert state_of(Outcome.SKIPPED) is None
    for outcome in DOWN_OUTCOMES:
        assert state_of(outcome) == "down"
    for outcome in (Outcome.AUTH_ERROR, Outcome.RATE_LIMITED, Outcome.CLIENT_ERROR):
        assert state_of(outcome) == "refused"


@pytest.mark.parametrize(
    "outcome", [Outcome.AUTH_ERROR, Outcome.RATE_LIMITED, Outcome.CLIENT_ERROR]
)
def test_refused_outcomes_are_never_logged_as_down(
    statelog: StateLog, caplog: pytest.LogCaptureFixture, outcome: Outcome
) -> None:
    statelog(result(Outcome.OK))
    statelog(result(outcome))
    assert lines(caplog) == [
        ("WARNING", f"gw/chat/m is REFUSED ({outcome.value}: {outcome.value} detail)")
    ]


def test_an_outage_logs_the_change_once_then_back_up(
    statelog: StateLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    statelog(result(Outcome.OK))
    assert lines(caplog) == []
    statelog(result(Outcome.TIMEOUT))
    assert lines(caplog) == [("WARNING", "gw/chat/m is DOWN (timeout: timeout detail)")]
    for outcome in (Outcome.TIMEOUT, Outcome.SERVER_ERROR, Outcome.TIMEOUT):
        clock.advance(60)
        statelog(result(outcome))  # same state, another down outcome: no line
    assert lines(caplog) == []
    clock.advance(60)
    statelog(result(Outcome.OK))
    assert lines(caplog) == [("INFO", "gw/chat/m is back UP after 4m")]


def test_a_first_attempt_that_fails_is_a_change(
    statelog: StateLog, caplog: pytest.LogCaptureFixture
) -> None:
    statelog(result(Outcome.CONNECTION_ERROR, probe="models"))
    assert lines(caplog) == [
        ("WARNING", "gw/models is DOWN (connection_error: connection_error detail)")
    ]


def test_down_to_refused_is_a_change(statelog: StateLog, caplog: pytest.LogCaptureFixture) -> None:
    statelog(result(Outcome.SERVER_ERROR))
    statelog(result(Outcome.RATE_LIMITED))
    statelog(result(Outcome.RATE_LIMITED))
    assert [msg for _, msg in lines(caplog)] == [
        "gw/chat/m is DOWN (server_error: server_error detail)",
        "gw/chat/m is REFUSED (rate_limited: rate_limited detail)",
    ]


def test_skipped_is_no_state_change(statelog: StateLog, caplog: pytest.LogCaptureFixture) -> None:
    statelog(result(Outcome.SKIPPED))
    statelog(result(Outcome.TIMEOUT))
    statelog(result(Outcome.SKIPPED))
    statelog(result(Outcome.TIMEOUT))
    statelog(result(Outcome.SKIPPED))
    assert [msg for _, msg in lines(caplog)] == ["gw/chat/m is DOWN (timeout: timeout detail)"]


def test_summary_every_ten_minutes_per_target_while_failing(
    statelog: StateLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    statelog(result(Outcome.TIMEOUT, model="a"))
    clock.advance(30)
    statelog(result(Outcome.SERVER_ERROR, model="b"))
    statelog(result(Outcome.CONNECTION_ERROR, probe="models"))
    statelog(result(Outcome.OK, target="other"))
    lines(caplog)
    warnings = []
    # 40 minutes of probes every 30 s: only the summaries are logged
    for _ in range(80):
        clock.advance(30)
        for model in ("a", "b"):
            statelog(result(Outcome.TIMEOUT, model=model))
        statelog(result(Outcome.CONNECTION_ERROR, probe="models"))
        statelog(result(Outcome.OK, target="other"))
        warnings += lines(caplog)
    assert warnings == [
        (
            "WARNING",
            f"target gw: 3 jobs still failing for {age}: chat/a (timeout), "
            "chat/b (timeout), models (connection_error)",
        )
        for age in ("10m", "20m", "30m", "40m")
    ]


def test_summary_stops_when_the_target_recovers_and_restarts_with_a_new_outage(
    statelog: StateLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    statelog(result(Outcome.TIMEOUT))
    clock.advance(300)
    statelog(result(Outcome.OK))
    clock.advance(600)
    statelog(result(Outcome.OK))
    assert [msg for _, msg in lines(caplog)] == [
        "gw/chat/m is DOWN (timeout: timeout detail)",
        "gw/chat/m is back UP after 5m",
    ]
    statelog(result(Outcome.AUTH_ERROR))
    clock.advance(599)
    statelog(result(Outcome.AUTH_ERROR))
    clock.advance(1)
    statelog(result(Outcome.AUTH_ERROR))
    assert [msg for _, msg in lines(caplog)] == [
        "gw/chat/m is REFUSED (auth_error: auth_error detail)",
        "target gw: 1 job still failing for 10m: chat/m (auth_error)",
    ]


def test_summary_names_at_most_five_jobs(
    statelog: StateLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(8):
        statelog(result(Outcome.TIMEOUT, model=f"m{i}"))
    clock.advance(600)
    statelog(result(Outcome.TIMEOUT, model="m0"))
    summary = lines(caplog)[-1][1]
    assert summary.startswith("target gw: 8 jobs still failing for 10m: chat/m0 (timeout), ")
    assert summary.endswith("chat/m4 (timeout), and 3 more")


def test_a_job_removed_while_failing_leaves_the_summaries(
    statelog: StateLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    statelog(result(Outcome.CLIENT_ERROR, model="retired"))  # then its job is removed
    statelog(result(Outcome.TIMEOUT, model="m"))
    summaries = []
    for _ in range(40):  # 40 minutes of m failing every minute
        clock.advance(60)
        statelog(result(Outcome.TIMEOUT, model="m"))
        summaries += [msg for _, msg in lines(caplog) if msg.startswith("target gw:")]
    assert summaries == [
        "target gw: 2 jobs still failing for 10m: chat/m (timeout), chat/retired (client_error)",
        "target gw: 2 jobs still failing for 20m: chat/m (timeout), chat/retired (client_error)",
        "target gw: 1 job still failing for 30m: chat/m (timeout)",
        "target gw: 1 job still failing for 40m: chat/m (timeout)",
    ]


def test_a_slow_job_stays_in_the_summaries(
    statelog: StateLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # chat every hour, models every minute: the hourly job is not "removed"
    statelog(result(Outcome.TIMEOUT, model="hourly"))
    for minute in range(1, 181):
        clock.advance(60)
        if minute % 60 == 0:
            statelog(result(Outcome.TIMEOUT, model="hourly"))
        statelog(result(Outcome.CONNECTION_ERROR, probe="models"))
    summaries = [msg for _, msg in lines(caplog) if msg.startswith("target gw:")]
    assert len(summaries) == 18
    assert all("chat/hourly (timeout)" in msg for msg in summaries[6:]), summaries


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.9, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h00m"), (90061, "1d01h")],
)
def test_format_age(seconds: float, text: str) -> None:
    assert format_age(seconds) == text
