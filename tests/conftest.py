"""Shared fixtures: free ports and the simulator on a real socket."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ is not a package: make its helper modules (harness, gwfixtures)
# importable from every test folder, however pytest was started.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from testutil import IN_CI, free_port, need_binary  # noqa: E402

__all__ = ["IN_CI", "free_port", "need_binary"]


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
