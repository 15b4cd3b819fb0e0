"""Opening the store for ``nexomon run`` and ``nexomon probe``.

``open_store`` migrates the database, makes the engine and starts the
ResultWriter (its journal and spool beside the data); ``Store.close``
flushes the writer, disposes of the engine and returns the writer's
``CloseSummary`` (rows written, left in the spool, refused), which
``summary_level`` grades for the exit message. A SQLite file (or folder)
that cannot be created is a ConfigError naming ``monitor.database_url``.

The read-only commands' way in is ``monitor.store.reading.open_for_reading``
(apart, so that ``nexomon report`` does not import the writer).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from monitor.config.model import Config
from monitor.errors import ConfigError, StoreError
from monitor.store.db import create_sqlite_file, make_engine, normalize_url, sqlite_file, upgrade
from monitor.store.reading import where as _where
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


def catalog_limits(config: Config) -> dict[str, int]:
    """target -> max_models: how many catalog events of a listing name a model."""
    return {target.name: target.max_models for target in config.targets}


def _server_unreachable(exc: StoreError, url: str) -> bool:
    """Whether a failed upgrade means a database server that is not answering."""
    return normalize_url(url).get_backend_name() != "sqlite" and isinstance(
        exc.__cause__, OUTAGE_ERRORS
    )
