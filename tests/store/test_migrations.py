"""Migrations: an empty database upgrades to head and matches the models."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from monitor.errors import StoreError
from monitor.store.db import alembic_config, make_engine, upgrade
from monitor.store.models import Base


def test_upgrade_empty_database_to_head_without_drift(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    upgrade(empty_db_url)  # idempotent
    command.check(alembic_config(empty_db_url))  # raises on any drift
    engine = make_engine(empty_db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert context.get_current_revision() == "0005"
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert {"probe_results", "catalog_models", "catalog_events", "probe_rollup_hourly"} <= tables


def test_upgrade_failure_is_one_line_without_the_password() -> None:
    url = "postgresql://nexomon:s3cret-pw@127.0.0.1:1/nexomon?connect_timeout=2"
    with pytest.raises(StoreError) as caught:
        upgrade(url)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "\n" not in message
    assert message.startswith("database upgrade failed for postgresql+psycopg://nexomon:***@")
