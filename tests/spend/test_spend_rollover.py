"""A new UTC day resumes chat probing: the budget's clock is injected, nothing sleeps.

``ProbeRunner`` (the one probe path of the daemon and ``nexomon probe``)
with a ``Budget`` on a fake clock, against the simulator on a socket whose
request counter tells whether a chat request really left. The fake clock
starts on yesterday's UTC date; the results' own ``started_at`` are real
(today), which the budget counts for its current day or a later one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from spend_helpers import FakeClock, scenario, write_config

from monitor.config import model as config_mod
from monitor.daemon.root import build_runner
from monitor.daemon.runner import ProbeRunner
from monitor.logs import SecretScrubber
from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.simulator.server import RunningSimulator
from monitor.simulator.stats import SimStats
from monitor.spend.budget import Budget

D = Decimal
EXTRA = """
[pricing."sim-a"]
input = 1000
output = 2000

[budget]
daily_usd = 0.04
"""  # $0.02 per probe: two probes a day


class Rig:
    def __init__(self, runner: ProbeRunner, budget: Budget, clock: FakeClock, stats: SimStats):
        self.runner, self.budget, self.clock, self.stats = runner, budget, clock, stats
        self.results: list[ProbeResult] = []

    async def chat(self) -> ProbeResult:
        result = await self.runner.run("sim", "chat", "sim-a")
        assert result is not None
        return result


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    midnight_today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    clock = FakeClock(midnight_today - timedelta(hours=12))  # yesterday, noon UTC
    with RunningSimulator(scenario("sim-a")) as sim:
        config = config_mod.load(write_config(tmp_path, sim.base_url, extra=EXTRA))
        budget = Budget(config.budget.daily_usd, config.budget.daily_tokens, now=clock)
        runner, clients = build_runner(config, SecretScrubber(), budget=budget)
        rig = Rig(runner, budget, clock, sim.simulator.stats)
        runner.sinks.append(rig.results.append)
        try:
            yield rig
        finally:
            for client in clients.values():
                await client.aclose()


async def test_cap_skips_until_utc_midnight_then_probing_resumes(rig: Rig) -> None:
    first, second = await rig.chat(), await rig.chat()
    assert (first.outcome, second.outcome) == (Outcome.OK, Outcome.OK)
    assert rig.stats.chat_requests() == 2
    assert rig.budget.spent_usd == D("0.04") and rig.budget.exhausted

    skipped = await rig.chat()
    assert skipped.outcome is Outcome.SKIPPED
    assert skipped.error == "daily budget of $0.04 reached"
    assert rig.stats.chat_requests() == 2  # no request sent

    # the models probe is free and never capped
    listings = rig.stats.models_requests
    listing = await rig.runner.run("sim", "models")
    assert listing is not None and listing.outcome is Outcome.OK
    assert rig.stats.models_requests == listings + 1

    # the last instant of the old UTC day: still capped
    rig.clock.at = rig.clock.at.replace(hour=23, minute=59, second=59, microsecond=999999)
    assert (await rig.chat()).outcome is Outcome.SKIPPED
    assert rig.stats.chat_requests() == 2

    # 00:00 UTC: a fresh budget, the next chat request reaches the simulator
    rig.clock.advance(timedelta(microseconds=1))
    assert rig.clock().hour == 0 and rig.clock().minute == 0
    resumed = await rig.chat()
    assert resumed.outcome is Outcome.OK
    assert rig.stats.chat_requests() == 3
    assert rig.budget.spent_usd == D("0.02")  # the new day's own spend only

    # and the new day has the same cap
    assert (await rig.chat()).outcome is Outcome.OK
    assert (await rig.chat()).outcome is Outcome.SKIPPED
    assert rig.stats.chat_requests() == 4
    assert [r.outcome.value for r in rig.results if r.probe == "chat"] == [
        "ok",
        "ok",
        "skipped",
        "skipped",
        "ok",
        "ok",
        "skipped",
    ]


async def test_rollover_in_the_middle_of_a_probe_frees_its_reservation(rig: Rig) -> None:
    """A probe admitted before midnight and settled after: the new day starts clean."""
    await rig.chat()  # $0.02 spent yesterday
    held = rig.budget.reserve(D("0.05"), 34)  # a probe in flight at 23:59
    assert held is not None and rig.budget.reserved_usd == D("0.05")
    assert not rig.budget.allows_chat()  # 0.02 + 0.05 >= 0.04
    rig.clock.advance(timedelta(days=1))
    rig.budget.settle(held, None)
    assert rig.budget.reserved_usd == 0 and rig.budget.spent_usd == 0
    assert (await rig.chat()).outcome is Outcome.OK
    assert rig.stats.chat_requests() == 2
