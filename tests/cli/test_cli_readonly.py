"""Read-only commands never create or migrate a database (issue 16, point 5).

``nexomon report`` against a missing SQLite file, a database with no schema
or an older one, on SQLite and on a real PostgreSQL, is one line naming
``monitor.database_url`` with exit 2, and leaves the database as it found it;
an unreachable PostgreSQL is one line (exit 1) and no migration. ``nexomon
probe`` without ``--record`` does not touch the database at all, while
``nexomon db upgrade`` still creates and migrates.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Ran, nexomon, target, unique_secret, write_config
from sqlalchemy import inspect

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator
from monitor.store.db import alembic_config, head_revision, make_engine
from tests.store.factory import schema_versions
from tests.store.pgcluster import free_port

KEY = unique_secret()
ENV = {"NEXOMON_TEST_KEY": KEY}
HEAD = head_revision()


def key_target() -> dict[str, Any]:
    return target("gw", "http://127.0.0.1:9/v1", api_key_env="NEXOMON_TEST_KEY")


def report(config: Path) -> Ran:
    return nexomon("report", "-c", str(config), env=ENV)


def one_error_line(ran: Ran, rc: int = 2) -> str:
    assert ran.rc == rc, ran
    lines = [line for line in ran.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in ran.err, ran
    return lines[0]


def migrate_to(url: str, revision: str) -> None:
    """Upgrade ``url`` to ``revision`` with Alembic, as an older nexomon would have."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_report_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    db_file = tmp_path / "later" / "nexomon.db"
    config = write_config(
        tmp_path, [key_target()], monitor={"database_url": f"sqlite:///{db_file}"}
    )
    line = one_error_line(report(config))

    assert line == (
        f"nexomon: {config}: monitor.database_url: no database at {db_file} "
        "(run nexomon db upgrade or nexomon run first)"
    )
    assert not db_file.parent.exists()


def test_report_on_an_empty_sqlite_file_does_not_migrate_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, [key_target()])
    db_file = tmp_path / "nexomon.db"
    sqlite3.connect(db_file).close()  # an existing file with no tables (rollback journal)
    before = db_file.read_bytes()

    line = one_error_line(report(config))

    assert line == (
        f"nexomon: {config}: monitor.database_url: sqlite:///{db_file} has no nexomon schema: "
        "run nexomon db upgrade"
    )
    assert db_file.read_bytes() == before  # not even switched to WAL
    assert tables(f"sqlite:///{db_file}") == set()


def test_report_on_an_old_sqlite_schema_says_to_upgrade_and_leaves_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, [key_target()])
    url = f"sqlite:///{tmp_path / 'nexomon.db'}"
    migrate_to(url, "0002")

    line = one_error_line(report(config))

    assert line == (
        f"nexomon: {config}: monitor.database_url: {url} schema is at 0002, "
        f"this nexomon needs {HEAD}: run nexomon db upgrade"
    )
    assert schema_versions(url) == ["0002"]
    upgraded = nexomon("db", "upgrade", "-c", str(config), env=ENV)
    assert upgraded.rc == 0, upgraded
    assert schema_versions(url) == [HEAD]
    ran = report(config)
    assert ran.rc == 0 and ran.err == "", ran


def test_db_upgrade_still_creates_a_missing_sqlite_file(tmp_path: Path) -> None:
    db_file = tmp_path / "new" / "nexomon.db"
    config = write_config(
        tmp_path, [key_target()], monitor={"database_url": f"sqlite:///{db_file}"}
    )
    ran = nexomon("db", "upgrade", "-c", str(config), env=ENV)
    assert ran.rc == 0, ran
    assert schema_versions(f"sqlite:///{db_file}") == [HEAD]


def test_probe_without_record_never_touches_the_database(tmp_path: Path) -> None:
    key = unique_secret()
    scenario = Scenario.from_dict({"name": "ro", "api_keys": [key], "models": {"m-one": {}}})
    db_file = tmp_path / "never" / "nexomon.db"
    with RunningSimulator(scenario) as sim:
        config = write_config(
            tmp_path,
            [target("sim", sim.base_url, api_key_env="K", models=["m-one"])],
            monitor={"database_url": f"sqlite:///{db_file}"},
        )
        ran = nexomon("probe", "-c", str(config), env={"K": key})
    assert ran.rc == 0, ran
    assert not db_file.parent.exists()


@pytest.fixture
def pg_url(pg_cluster: Any) -> Any:
    pg_cluster.start()
    name = pg_cluster.create_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


def test_report_on_an_empty_postgresql_database_does_not_migrate_it(
    tmp_path: Path, pg_url: str
) -> None:
    config = write_config(tmp_path, [key_target()], monitor={"database_url": pg_url})
    line = one_error_line(report(config))

    assert line == (
        f"nexomon: {config}: monitor.database_url: {pg_url} has no nexomon schema: "
        "run nexomon db upgrade"
    )
    assert tables(pg_url) == set()


def test_report_on_an_old_postgresql_schema_says_to_upgrade_and_leaves_it(
    tmp_path: Path, pg_url: str
) -> None:
    config = write_config(tmp_path, [key_target()], monitor={"database_url": pg_url})
    migrate_to(pg_url, "0002")

    line = one_error_line(report(config))

    assert line == (
        f"nexomon: {config}: monitor.database_url: {pg_url} schema is at 0002, "
        f"this nexomon needs {HEAD}: run nexomon db upgrade"
    )
    assert schema_versions(pg_url) == ["0002"]


def test_report_on_a_missing_postgresql_database_is_a_config_error(
    tmp_path: Path, pg_cluster: Any
) -> None:
    pg_cluster.start()
    url = pg_cluster.url("t_never_created")
    config = write_config(tmp_path, [key_target()], monitor={"database_url": url})
    line = one_error_line(report(config))

    assert line == (
        f"nexomon: {config}: monitor.database_url: no database at {url} "
        "(create it, then run nexomon db upgrade or nexomon run)"
    )


def test_report_on_an_unreachable_postgresql_is_one_line_and_no_migration(
    tmp_path: Path,
) -> None:
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nexomon"
    config = write_config(tmp_path, [key_target()], monitor={"database_url": url})
    line = one_error_line(report(config), rc=1)

    assert line.startswith(f"nexomon: cannot read the database at {url}: "), line
    assert "upgrade" not in line
