"""Fixtures for the simulator tests: simulators on real sockets, stopped after use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sim_helpers import AUTH, SHARED_SCENARIO

from monitor.simulator.clock import ManualClock
from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[RunningSimulator]:
    """One simulator for read-only tests of a module (stats are reset per test)."""
    with RunningSimulator(Scenario.from_dict(SHARED_SCENARIO)) as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: RunningSimulator) -> RunningSimulator:
    shared_sim.simulator.reset()
    return shared_sim


@pytest.fixture
def client(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, headers=AUTH, timeout=10.0) as c:
        yield c


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def start_sim() -> Iterator[Callable[..., RunningSimulator]]:
    """Start a simulator for one test: ``start_sim(scenario_dict, clock=...)``."""
    running: list[RunningSimulator] = []

    def start(data: dict[str, Any], **kwargs: Any) -> RunningSimulator:
        sim = RunningSimulator(Scenario.from_dict(data), **kwargs).start()
        running.append(sim)
        return sim

    yield start
    for sim in running:
        sim.stop()
