"""Which URLs ``nexomon report`` opens with the driver alone, and that it opens them as
SQLAlchemy would (monitor.config.database_urls, monitor.store.dbapi_open,
monitor.config.rules._database_url).

The connection keywords are held to SQLAlchemy's psycopg dialect, the config's
checked URL to the SQLAlchemy parse it skips, on the same URLs; every other
form goes through SQLAlchemy and still reads (``reading.open_for_reading``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import make_url

from monitor.cli.report import build_report
from monitor.config import model as config_mod
from monitor.config.database_urls import plain_url, postgres_options, sqlite_path
from monitor.config.rules import _sqlalchemy_database_url
from monitor.store.dbapi_open import open_reader
from monitor.store.reading import open_for_reading
from tests.store.factory import T0

PLAIN_POSTGRES = [
    "postgresql://u:p%40ss@db.example:5433/nexomon?sslmode=require&connect_timeout=3",
    "postgresql+psycopg://postgres@127.0.0.1:55741/history",
    "postgres://u:pa:ss@h/db",
    "postgresql://u@/db?host=/var/run/postgresql",
    "postgresql:///nexomon",
    "postgresql://h/d%20b?application_name=nexo%20mon",
]
NOT_PLAIN = [
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite:///file:x.db?mode=ro&uri=true",
    "sqlite:///x.db?timeout=5",
    "postgresql://h1:5432,h2:5433/db",
    "postgresql://[::1]:5432/db",
    "postgresql+psycopg2://h/db",
    "postgresql://h/db?options=a&options=b",
    "mysql://h/db",
]


@pytest.mark.parametrize("url", PLAIN_POSTGRES)
def test_connection_keywords_are_the_psycopg_dialects(url: str) -> None:
    _args, expected = PGDialect_psycopg().create_connect_args(make_url(url))
    expected.pop("context", None)  # SQLAlchemy's own adapters map, not the URL's
    assert postgres_options(url) == expected


@pytest.mark.parametrize("url", NOT_PLAIN)
def test_other_forms_are_left_to_sqlalchemy(url: str) -> None:
    assert open_reader(url) is None


@pytest.mark.parametrize(
    "value",
    [
        "sqlite:///nexomon.db",
        "sqlite:///data/nexomon.db",
        "sqlite:////var/lib/nexomon/n.db",
        "sqlite:///a%20b.db",
        "sqlite:///x%2Fy.db",
        "sqlite:///ü.db",
        *PLAIN_POSTGRES,
        *NOT_PLAIN,
    ],
)
@pytest.mark.parametrize("base", [None, Path("/srv/nexomon"), Path("/srv/a b")])
def test_the_checked_url_is_the_one_sqlalchemys_parse_gives(value: str, base: Path | None) -> None:
    plain = plain_url(value, base)
    if plain is not None:  # None: the SQLAlchemy way decides, as it always did
        assert plain == _sqlalchemy_database_url(value, base, None)
    # A relative SQLite path joins the base: plain while the joined path needs no quoting.
    relative = value in ("sqlite:///nexomon.db", "sqlite:///data/nexomon.db", "sqlite:///x%2Fy.db")
    expect_plain = (
        value in PLAIN_POSTGRES
        or value.startswith("sqlite:////")
        or (relative and base != Path("/srv/a b"))
    )
    assert (plain is not None) == expect_plain


def test_sqlite_paths() -> None:
    assert sqlite_path("sqlite:///rel/n.db") == Path("rel/n.db")
    assert sqlite_path("sqlite:////abs/n.db") == Path("/abs/n.db")
    assert sqlite_path("sqlite:///a%20b.db") == Path("a b.db")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql://h/db") is None


def test_a_url_the_driver_path_leaves_is_read_through_sqlalchemy(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    from sqlalchemy.orm import Session

    from tests.store.test_rollup_levels import load

    load(engine)
    # Query options the plain forms do not take: SQLite's timeout, PostgreSQL's twice-given one.
    sqlite = db_url.startswith("sqlite")
    url = f"{db_url}?timeout=5" if sqlite else f"{db_url}?application_name=a&application_name=b"
    assert open_reader(url) is None
    path = tmp_path / "nexomon.toml"
    path.write_text(
        f'[monitor]\nlocation = "eu"\ndatabase_url = "{url}"\n\n'
        '[[targets]]\nname = "gw"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "NEXOMON_TEST_KEY"\nmodels = ["m"]\n'
    )
    reader = open_for_reading(config_mod.load(path))
    try:
        rows = build_report(reader, since=T0, by="model")
    finally:
        reader.close()
    with Session(engine) as session:
        assert rows == build_report(session, since=T0, by="model") and rows
