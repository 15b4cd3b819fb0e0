"""Storage fixtures: a session-wide throwaway PostgreSQL and a per-test database URL.

``db_url`` is parametrized over ``sqlite`` (a file in tmp_path) and
``postgresql`` (a fresh database in the session cluster). Without PostgreSQL
binaries the postgresql cases skip, unless ``CI`` is set: then they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from monitor.store.db import make_engine, upgrade
from tests.store.pgcluster import PgCluster


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables) on ``backend``."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'nexomon.db'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    cluster.start()  # a no-op unless an earlier test left it stopped
    name = cluster.create_database()
    try:
        yield cluster.url(name)
    finally:
        cluster.start()
        cluster.drop_database(name)


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A database migrated to head."""
    upgrade(empty_db_url)
    return empty_db_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url`` that gives up on a locked SQLite file after 100 ms."""
    engine = make_engine(db_url, busy_timeout_ms=100)
    yield engine
    engine.dispose()
