"""Shared fixtures: free ports and the simulator on a real socket."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator

import pytest

IN_CI = bool(os.environ.get("CI"))


def need_binary(name: str) -> str:
    """Path of a required binary; skip locally when absent, fail in CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if IN_CI:
            pytest.fail(f"{message} (CI must install it)")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def simulator() -> Iterator[object]:
    """The built-in simulator (default scenario) on a real socket."""
    from monitor.simulator.server import RunningSimulator

    with RunningSimulator() as sim:
        yield sim
