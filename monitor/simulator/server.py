"""Running the simulator: ``serve`` for ``nexomon simulate``, ``RunningSimulator`` for
tests, ``nexomon demo`` and benchmarks.

Both bind the listening socket themselves (so port 0 yields a free port
that is known before the server starts) and run uvicorn with
``lifespan="off"``, warnings only, and a short graceful-shutdown timeout so
a request stuck in a ``hang`` fault never holds up shutdown for long.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from monitor.errors import NexomonError
from monitor.simulator.app import Simulator
from monitor.simulator.faults import SimulatedReset
from monitor.simulator.scenario import Scenario

DEFAULT_PORT = 8080
GRACEFUL_SHUTDOWN_S = 1


def build_app(scenario: Scenario, clock: Callable[[], float] = time.monotonic) -> Simulator:
    """The ASGI app for ``scenario``; ``clock`` drives buckets and disappearing models."""
    return Simulator(scenario, clock=clock)


def load_scenario(path: str | None) -> Scenario:
    """The scenario at ``path``, or the packaged default when None (ScenarioError if bad)."""
    return Scenario.load(path) if path else Scenario.packaged("default")


def with_api_key(scenario: Scenario, api_key: str | None) -> Scenario:
    """``scenario`` admitting only ``api_key`` (others get 401); unchanged when None."""
    return scenario if api_key is None else dataclasses.replace(scenario, api_keys=(api_key,))


def serve(host: str, port: int, scenario_path: str | None, *, api_key: str | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM (blocking). Raises ScenarioError / NexomonError.

    ``api_key`` replaces the scenario's ``api_keys``: only ``Bearer api_key`` passes.
    """
    scenario = with_api_key(load_scenario(scenario_path), api_key)
    sock = _listen(host, port)
    try:
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        print(
            f"nexomon simulator on http://{shown}:{bound}/v1 (scenario: {scenario.name})",
            flush=True,
        )
        _quiet_resets()
        server = uvicorn.Server(
            _config(build_app(scenario), log_config=uvicorn.config.LOGGING_CONFIG)
        )
        # uvicorn shuts down gracefully on SIGINT, then re-raises it: that is a clean exit.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        sock.close()


class RunningSimulator:
    """The simulator on 127.0.0.1 in a background thread, as a context manager.

    ``with RunningSimulator(scenario) as sim:`` starts it on a free port
    (or ``port``), returns once it accepts connections, and stops it on
    exit. ``sim.base_url`` is ``http://127.0.0.1:PORT/v1``; ``sim.simulator``
    is the app (``.stats``, ``.reset()``). Give a ``scenario`` or a
    ``scenario_path`` (TOML, ScenarioError if bad); neither means the
    packaged default.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        scenario_path: str | Path | None = None,
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        start_timeout_s: float = 10.0,
    ) -> None:
        if scenario is not None and scenario_path is not None:
            raise ValueError("give scenario or scenario_path, not both")
        if scenario is None:
            scenario = load_scenario(str(scenario_path) if scenario_path else None)
        self.simulator = build_app(scenario, clock=clock)
        self._requested_port = port
        self._start_timeout_s = start_timeout_s
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> RunningSimulator:
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        _quiet_resets()
        self._sock = _listen("127.0.0.1", self._requested_port)
        self.port = self._sock.getsockname()[1]
        # log_config=None: leave the embedding process's logging configuration alone.
        self._server = uvicorn.Server(_config(self.simulator, log_config=None))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"nexomon-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise NexomonError(f"simulator did not start on 127.0.0.1:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server and join its thread; idempotent."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=GRACEFUL_SHUTDOWN_S + 5)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> RunningSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _config(app: Simulator, log_config: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        log_config=log_config,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


def _listen(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket; a clear NexomonError when that fails."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise NexomonError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise NexomonError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


class _DropSimulatedResets(logging.Filter):
    """Hides uvicorn's traceback for a scripted ``reset`` fault (it is not a bug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SimulatedReset))


def _quiet_resets() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropSimulatedResets) for f in logger.filters):
        logger.addFilter(_DropSimulatedResets())
