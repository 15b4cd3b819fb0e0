"""Opening an existing database read-only, for ``nexomon report``.

``open_for_reading`` never creates a file or migrates; a missing SQLite file
or a schema that is not this release's head is a ConfigError (exit 2) saying
what to run. It gives a ``sql_reader.Reader``: on the driver's own connection
for the plain URL forms (``monitor.store.dbapi_open``: no SQLAlchemy import,
over a third of a year's report on PostgreSQL), through a SQLAlchemy engine
for any other. Kept apart from ``monitor.store.startup`` (the writer, spool and
journal of ``nexomon run``), which a report has no use for: importing them
was ~25 ms of a one-second ``nexomon report`` (benchmarks/history.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from monitor.config.database_urls import sqlite_path
from monitor.config.model import Config
from monitor.errors import ConfigError, StoreError
from monitor.store.dbapi_open import open_reader
from monitor.store.schema_head import head_revision, stored_revisions
from monitor.store.sql_reader import Reader, reader_of

_MISSING_DATABASE = re.compile(r'database "[^"]*" does not exist')
_NO_SUCH_DATABASE = "3D000"  # PostgreSQL's invalid_catalog_name: the database does not exist


def where(config: Config) -> str:
    """The config key an error about the database names: ``FILE: monitor.database_url``."""
    return f"{config.source}: monitor.database_url"


def open_for_reading(config: Config) -> Reader:
    """A Reader on an existing database at this release's schema; creates nothing.
    The caller closes it (``Reader.close``).

    Raises ConfigError (exit 2) for a missing SQLite file, a database with no
    nexomon schema, or a schema older or newer than this release's; StoreError
    (exit 1) when the database does not answer.
    """
    url = config.monitor.database_url
    path = _sqlite_file(url)
    if path is not None and not path.is_file():
        raise ConfigError(
            f"{where(config)}: no database at {path} (run nexomon db upgrade or nexomon run first)"
        )
    try:
        reader = open_reader(url) or _through_sqlalchemy(url)
    except Exception as exc:
        raise _unreachable(config, exc) from exc
    try:
        found = stored_revisions(reader)
    except Exception as exc:
        reader.close()
        raise _unreachable(config, exc) from exc
    head = head_revision()
    if head is None or found == [head]:
        return reader
    reader.close()
    at = ", ".join(found or ())
    if not found:
        problem = "has no nexomon schema: run nexomon db upgrade"
    elif _older(found, head):
        problem = f"schema is at {at}, this nexomon needs {head}: run nexomon db upgrade"
    else:
        problem = f"schema is at {at}, newer than this nexomon ({head}): upgrade nexomon"
    raise ConfigError(f"{where(config)}: {_redact(url)} {problem}")


def _sqlite_file(url: str) -> Path | None:
    """The SQLite file of ``url`` (None for PostgreSQL or no file); SQLAlchemy's
    parse only for a form ``dbapi_open`` does not read."""
    if url.startswith("postgres"):
        return None
    path = sqlite_path(url)
    if path is not None:
        return path
    from monitor.store.db import sqlite_file

    return sqlite_file(url)


def _through_sqlalchemy(url: str) -> Reader:
    """A Reader on a SQLAlchemy connection, for the URL forms ``dbapi_open`` leaves."""
    from monitor.store.db import make_engine

    engine = make_engine(url, read_only=True)
    try:
        conn = engine.connect()
    except Exception:
        engine.dispose()
        raise

    def close() -> None:
        conn.close()
        engine.dispose()

    reader = reader_of(conn)
    return Reader(reader.dialect, reader.run, close)


def _redact(url: str) -> str:
    from monitor.store.db import redact

    return redact(url)


def _unreachable(config: Config, exc: Exception) -> ConfigError | StoreError:
    """The error for a database that did not answer: ConfigError when it does not exist."""
    url = config.monitor.database_url
    if _no_such_database(exc):
        return ConfigError(
            f"{where(config)}: no database at {_redact(url)} (create it, then run "
            "nexomon db upgrade or nexomon run)"
        )
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    from monitor.store.db import normalize_url

    password = normalize_url(url).password
    if password:
        text = text.replace(password, "***")
    return StoreError(f"cannot read the database at {_redact(url)}: {text}")


def _no_such_database(exc: Exception) -> bool:
    """Whether PostgreSQL refused the connection because the database does not exist.

    psycopg gives no SQLSTATE for a refused connection, so the server's
    message is read too (``FATAL: database "x" does not exist``).
    """
    orig = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's error
    if getattr(orig, "sqlstate", None) == _NO_SUCH_DATABASE:
        return True
    return _MISSING_DATABASE.search(str(orig)) is not None


def _older(found: list[str], head: str) -> bool:
    """Whether every revision found sorts before ``head`` (ids are 0001, 0002, ...)."""
    return all(revision < head for revision in found)
