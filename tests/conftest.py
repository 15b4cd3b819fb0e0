"""Shared fixtures: free ports and the simulator on a real socket."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ is not a package: make its helper modules (harness, gwfixtures)
# importable from every test folder, however pytest was started.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

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


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[object]:
    """A throwaway PostgreSQL cluster for the whole session (tests/store/pgcluster.py)."""
    from tests.store.pgcluster import PgCluster, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        if IN_CI:
            pytest.fail("PostgreSQL (initdb, pg_ctl) is required in CI but was not found")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found")
    cluster = PgCluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
