"""Helpers of the spend tests: a priced simulator, configs, and the daemon in-process.

The daemon runs in the test's own event loop (``Daemon(config).run()`` as a
task) so the tests can inject its clock (``now=``) and read its registry,
budget and store directly, while every chat request still crosses a real
socket to a ``RunningSimulator`` whose ``stats`` count what it received.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from testutil import free_port, toml_table

from monitor.config import model as config_mod
from monitor.daemon.root import Daemon
from monitor.logs import SecretScrubber
from monitor.simulator.scenario import Scenario

KEY = "sk-spend-test-key"
# The simulator counts "Reply with OK. [nx-xxxxxx]" as 16 prompt tokens
# (9 content + 1 role + 3 per message + 3 priming) and its reply "OK." as 2.
REPLY = "OK."
PROMPT_TOKENS = 16
COMPLETION_TOKENS = 2


def scenario(*models: str) -> Scenario:
    """Instant, fault-free models that answer ``REPLY`` (deterministic usage)."""
    return Scenario.from_dict(
        {
            "name": "spend",
            "seed": 1,
            "reply": REPLY,
            "api_keys": [KEY],
            "models": {m: {"latency_ms": 0} for m in models},
        }
    )


def write_config(
    directory: Path,
    base_url: str,
    *,
    target: Mapping[str, Any] | None = None,
    extra: str = "",
    database_url: str | None = None,
) -> Path:
    """nexomon.toml (+ key file) for one target ``sim`` against ``base_url``.

    Intervals are 1 s so a cap is reached within seconds; ``extra`` is
    appended verbatim (``[pricing...]``, ``[budget]``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "api.key").write_text(KEY + "\n")
    monitor = {
        "location": "spend-test",
        "database_url": database_url or f"sqlite:///{directory / 'nexomon.db'}",
        "listen": f"127.0.0.1:{free_port()}",
    }
    target_table = {
        "name": "sim",
        "base_url": base_url,
        "api_key_file": "api.key",
        "timeout": "1s",
        "models_interval": "1s",
        "chat_interval": "1s",
        **(target or {}),
    }
    text = "[monitor]\n" + toml_table(monitor) + "\n[[targets]]\n" + toml_table(target_table)
    path = directory / "nexomon.toml"
    path.write_text(text + "\n" + extra)
    return path


def metric(daemon: Daemon, name: str, **labels: str) -> float | None:
    """One sample of the daemon's registry (None when the series does not exist)."""
    labels = {"location": daemon.config.monitor.location, **labels}
    return daemon.registry.get_sample_value(name, labels)


async def wait_until(
    predicate: Callable[[], bool], what: str, timeout: float = 60.0, step: float = 0.05
) -> None:
    """Poll ``predicate`` on the loop (the daemon keeps running meanwhile)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(step)


@asynccontextmanager
async def running_daemon(
    config_path: Path, *, now: Callable[[], datetime] | None = None
) -> AsyncIterator[Daemon]:
    """``nexomon run`` in this event loop until the block ends; waits for /readyz."""
    config = config_mod.load(config_path)
    kwargs: dict[str, Any] = {} if now is None else {"now": now}
    daemon = Daemon(config, scrubber=SecretScrubber(), config_path=config_path, **kwargs)
    task = asyncio.create_task(daemon.run())
    url = f"http://{config.monitor.listen_host}:{config.monitor.listen_port}"
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            deadline = time.monotonic() + 60
            while True:
                if task.done():
                    task.result()  # raises what made it stop
                    raise AssertionError("daemon returned before it was ready")
                try:
                    if (await client.get(url + "/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("daemon not ready within 60s")
                await asyncio.sleep(0.05)
        yield daemon
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 60) == 0


def run_cli(*argv: str) -> int:
    """``nexomon ARGV`` in this process, the ``nexomon`` logger restored afterwards.

    ``main`` calls ``setup_logging``, which points the logger at this test's
    (captured, soon closed) stderr and turns propagation off; left like that
    it would break every later test's ``caplog`` and log to a closed file.
    """
    from monitor.cli.main import main

    logger = logging.getLogger("nexomon")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        return main(list(argv))
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in saved[0]:
            logger.addHandler(handler)
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


class FakeClock:
    """A settable UTC clock for ``Budget(now=)`` and ``Daemon(now=)``."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


def utc_now() -> datetime:
    return datetime.now(UTC)
