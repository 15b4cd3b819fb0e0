"""The simulator: a fake OpenAI-compatible gateway with scripted faults.

Product code, used by ``nexomon simulate``, ``nexomon demo``, the tests and
the benchmarks. ``Scenario`` describes the models and their misbehaviour,
``Simulator`` is the ASGI app, ``serve`` / ``RunningSimulator`` run it.
"""

from monitor.simulator.app import Simulator
from monitor.simulator.clock import ManualClock
from monitor.simulator.scenario import Fault, Latency, ModelSpec, RateLimit, Scenario, ScenarioError
from monitor.simulator.server import DEFAULT_PORT, RunningSimulator, build_app, load_scenario, serve
from monitor.simulator.stats import SimStats

__all__ = [
    "DEFAULT_PORT",
    "Fault",
    "Latency",
    "ManualClock",
    "ModelSpec",
    "RateLimit",
    "RunningSimulator",
    "Scenario",
    "ScenarioError",
    "SimStats",
    "Simulator",
    "build_app",
    "load_scenario",
    "serve",
]
