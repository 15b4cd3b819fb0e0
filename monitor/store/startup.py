"""Opening the store for ``nexomon run`` and ``nexomon probe``.

``open_store`` migrates the database, makes the engine and starts the
ResultWriter (spooling beside the data while the database is down);
``Store.close`` flushes the writer and disposes of the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from monitor.config.model import Config
from monitor.errors import StoreError
from monitor.store.db import make_engine, normalize_url, upgrade
from monitor.store.writer import OUTAGE_ERRORS, ResultWriter

log = logging.getLogger("nexomon.store")


def spool_dir_for(config: Config) -> Path:
    """Where the writer spills rows while the database is down: beside the data."""
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

    def close(self) -> None:
        self.writer.close()
        self.engine.dispose()


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
    prepare: Callable[[], None] | None = None
    try:
        upgrade(url)
    except StoreError as exc:
        if not (wait_for_database and _server_unreachable(exc, url)):
            raise
        log.warning("%s; probing anyway, rows are spooled until the database answers", exc)
        prepare = lambda: upgrade(url)  # noqa: E731
    engine = make_engine(url)
    writer = ResultWriter(engine, spool_dir=spool_dir_for(config), prepare=prepare)
    if on_catalog_events is not None:
        writer.on_catalog_events = on_catalog_events
    writer.start()
    return Store(engine, writer)


def _server_unreachable(exc: StoreError, url: str) -> bool:
    """Whether a failed upgrade means a database server that is not answering."""
    return normalize_url(url).get_backend_name() != "sqlite" and isinstance(
        exc.__cause__, OUTAGE_ERRORS
    )
