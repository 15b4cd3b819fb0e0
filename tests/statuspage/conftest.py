"""Fixtures: the store's databases (SQLite file, PostgreSQL), seeded with kit's history."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from monitor.store.db import make_engine
from tests.statuspage import kit
from tests.store.conftest import backend, db_url, empty_db_url, engine

__all__ = ["backend", "db_url", "empty_db_url", "engine"]


@pytest.fixture
def seeded(db_url: str) -> Iterator[Engine]:
    """An engine on a migrated database (each backend) holding ``kit.history()``, rolled up."""
    eng = make_engine(db_url)
    kit.seed(eng)
    yield eng
    eng.dispose()
