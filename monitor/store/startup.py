"""Opening the store for ``nexomon run`` and ``nexomon probe``, and for reading.

``open_store`` migrates the database, makes the engine and starts the
ResultWriter (its journal and spool beside the data); ``Store.close``
flushes the writer, disposes of the engine and returns the writer's
``CloseSummary`` (rows written, left in the spool, refused), which
``summary_level`` grades for the exit message. A SQLite file (or folder)
that cannot be created is a ConfigError naming ``monitor.database_url``.

``open_for_reading`` is the read-only commands' way in (``nexomon report``):
it never creates a file or migrates; a missing SQLite file or a schema that
is not this release's head is a ConfigError (exit 2) saying what to run.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from monitor.config.model import Config
from monitor.errors import ConfigError, StoreError
from monitor.store.db import (
    create_sqlite_file,
    current_revisions,
    head_revision,
    make_engine,
    normalize_url,
    redact,
    sqlite_file,
    upgrade,
)
from monitor.store.spool import SpoolLock, hold_spool
from monitor.store.writer import OUTAGE_ERRORS, CloseSummary, ResultWriter

log = logging.getLogger("nexomon.store")


def spool_dir_for(config: Config) -> Path:
    """Where the writer keeps its journal, and spills rows while the database is
    down: beside the data."""
    if config.monitor.spool_dir:
        return Path(config.monitor.spool_dir)
    url = config.monitor.database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        db_file = Path(url.removeprefix("sqlite:///"))
        return db_file.with_name(db_file.name + ".spool")
    return Path("nexomon-spool")


@dataclass
class Store:
    engine: Engine
    writer: ResultWriter
    spool_lock: SpoolLock | None = None

    def close(self) -> CloseSummary:
        """Flush and stop the writer, dispose of the engine, free the spool; what the
        writer left."""
        summary = self.writer.close()
        self.engine.dispose()
        if self.spool_lock is not None:
            self.spool_lock.release()
        return summary


def summary_level(summary: CloseSummary) -> int:
    """The log level of the exit message: WARNING when anything was not written."""
    return logging.INFO if summary.clean else logging.WARNING


def open_store(
    config: Config,
    on_catalog_events: Callable[[list[Any]], None] | None = None,
    *,
    wait_for_database: bool = False,
) -> Store:
    """Migrate the database and start the writer.

    With ``wait_for_database`` (the daemon) a database server that does not
    answer at startup is not fatal: the migration is deferred to the
    writer's first write and rows are spooled until then, so a restart
    during an outage keeps probing. A local SQLite file that cannot be
    opened is always an error (nothing will fix it by waiting).
    """
    url = config.monitor.database_url
    _create_sqlite(config)
    spool_dir = spool_dir_for(config)
    # The daemon owns its spool (issue 17): a second instance on the folder is exit 2
    # before its writer replays (and clears) rows the first is still appending.
    lock = hold_spool(spool_dir, config.source) if wait_for_database else None
    try:
        return _open(config, url, spool_dir, lock, on_catalog_events, wait_for_database)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _open(
    config: Config,
    url: str,
    spool_dir: Path,
    lock: SpoolLock | None,
    on_catalog_events: Callable[[list[Any]], None] | None,
    wait_for_database: bool,
) -> Store:
    prepare: Callable[[], None] | None = None
    try:
        upgrade(url)
    except StoreError as exc:
        if not (wait_for_database and _server_unreachable(exc, url)):
            raise
        log.warning("%s; probing anyway, rows are spooled until the database answers", exc)
        prepare = lambda: upgrade(url)  # noqa: E731
    engine = make_engine(url)
    writer = ResultWriter(engine, spool_dir=spool_dir, prepare=prepare)
    writer.catalog_limits = catalog_limits(config)
    if on_catalog_events is not None:
        writer.on_catalog_events = on_catalog_events
    writer.start()
    return Store(engine, writer, lock)


_MISSING_DATABASE = re.compile(r'database "[^"]*" does not exist')
_NO_SUCH_DATABASE = "3D000"  # PostgreSQL's invalid_catalog_name: the database does not exist


def _where(config: Config) -> str:
    return f"{config.source}: monitor.database_url"


def _create_sqlite(config: Config) -> None:
    """Create the SQLite file and its folders now, as a config error if impossible."""
    path = sqlite_file(config.monitor.database_url)
    if path is None:
        return
    try:
        create_sqlite_file(path)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(f"{_where(config)}: cannot create {path} ({reason})") from None
    # SQLite opens a file it may not write read-only without a word, and every
    # insert would then fail into the spool: say so now. The folder must be
    # writable too, for the journal SQLite writes beside the file.
    for needed in (path, path.parent):
        if not os.access(needed, os.W_OK):
            raise ConfigError(
                f"{_where(config)}: {needed} is read-only for this user (uid {os.getuid()});"
                " nexomon run needs to write the database and its journal beside it"
            )


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
            f"{_where(config)}: no database at {path} (run nexomon db upgrade or nexomon run first)"
        )
    engine = make_engine(url, read_only=True)
    try:
        with engine.connect() as connection:
            found = current_revisions(connection)
    except Exception as exc:
        engine.dispose()
        if _no_such_database(exc):
            raise ConfigError(
                f"{_where(config)}: no database at {redact(url)} (create it, then run "
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
    raise ConfigError(f"{_where(config)}: {redact(url)} {problem}")


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


def catalog_limits(config: Config) -> dict[str, int]:
    """target -> max_models: how many catalog events of a listing name a model."""
    return {target.name: target.max_models for target in config.targets}


def _server_unreachable(exc: StoreError, url: str) -> bool:
    """Whether a failed upgrade means a database server that is not answering."""
    return normalize_url(url).get_backend_name() != "sqlite" and isinstance(
        exc.__cause__, OUTAGE_ERRORS
    )
