"""The simulator: a fake OpenAI-compatible gateway with scripted faults.

Product code, used by ``nexomon simulate``, ``nexomon demo``, the tests and
the benchmarks. ``scenario.Scenario`` describes the models and their misbehaviour,
``app.Simulator`` is the ASGI app, ``server.serve`` /
``server.RunningSimulator`` run it.
"""
