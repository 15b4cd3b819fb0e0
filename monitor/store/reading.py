"""Opening an existing database read-only, for ``nexomon report``.

``open_for_reading`` never creates a file or migrates; a missing SQLite file
or a schema that is not this release's head is a ConfigError (exit 2) saying
what to run. Kept apart from ``monitor.store.startup`` (the writer, spool and
journal of ``nexomon run``), which a report has no use for: importing them
was ~25 ms of a one-second ``nexomon report`` (benchmarks/history.py).
"""

from __future__ import annotations

import re

from sqlalchemy.engine import Engine

from monitor.config.model import Config
from monitor.errors import ConfigError, StoreError
from monitor.store.db import (
    current_revisions,
    head_revision,
    make_engine,
    normalize_url,
    redact,
    sqlite_file,
)

_MISSING_DATABASE = re.compile(r'database "[^"]*" does not exist')
_NO_SUCH_DATABASE = "3D000"  # PostgreSQL's invalid_catalog_name: the database does not exist


def where(config: Config) -> str:
    """The config key an error about the database names: ``FILE: monitor.database_url``."""
    return f"{config.source}: monitor.database_url"


def open_for_reading(config: Config) -> Engine:
    """An engine on an existing database at this release's schema; creates nothing.

    Raises ConfigError (exit 2) for a missing SQLite file, a database with no
    nexomon schema, or a schema older or newer than this release's; StoreError
    (exit 1) when the database does not answer.
    """
    url = config.monitor.database_url
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise ConfigError(
            f"{where(config)}: no database at {path} (run nexomon db upgrade or nexomon run first)"
        )
    engine = make_engine(url, read_only=True)
    try:
        with engine.connect() as connection:
            found = current_revisions(connection)
    except Exception as exc:
        engine.dispose()
        if _no_such_database(exc):
            raise ConfigError(
                f"{where(config)}: no database at {redact(url)} (create it, then run "
                "nexomon db upgrade or nexomon run)"
            ) from None
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        password = normalize_url(url).password
        if password:
            text = text.replace(password, "***")
        raise StoreError(f"cannot read the database at {redact(url)}: {text}") from exc
    head = head_revision()
    if head is None or found == [head]:
        return engine
    engine.dispose()
    at = ", ".join(found or ())
    if not found:
        problem = "has no nexomon schema: run nexomon db upgrade"
    elif _older(found, head):
        problem = f"schema is at {at}, this nexomon needs {head}: run nexomon db upgrade"
    else:
        problem = f"schema is at {at}, newer than this nexomon ({head}): upgrade nexomon"
    raise ConfigError(f"{where(config)}: {redact(url)} {problem}")


def _no_such_database(exc: Exception) -> bool:
    """Whether PostgreSQL refused the connection because the database does not exist.

    psycopg gives no SQLSTATE for a refused connection, so the server's
    message is read too (``FATAL: database "x" does not exist``).
    """
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) == _NO_SUCH_DATABASE:
        return True
    return orig is not None and _MISSING_DATABASE.search(str(orig)) is not None


def _older(found: list[str], head: str) -> bool:
    """Whether every revision found sorts before ``head`` (ids are 0001, 0002, ...)."""
    return all(revision < head for revision in found)
