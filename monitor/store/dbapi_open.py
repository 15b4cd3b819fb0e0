"""Opening a database for ``nexomon report`` with the driver alone, no SQLAlchemy.

``open_reader(url)`` handles the plain URL forms
(``monitor.config.database_urls``). It connects the way SQLAlchemy's
dialects would (SQLite: the same busy timeout and pragmas as
``monitor.store.db.make_engine`` gives a read-only engine; PostgreSQL:
``psycopg.connect`` with the keywords SQLAlchemy's psycopg dialect passes)
and gives a ``Reader`` whose ``close`` closes the connection. Any other form
gives None, and the caller opens it through SQLAlchemy. Why: see
``monitor.store.sql_reader``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from monitor.config.database_urls import postgres_options, sqlite_path
from monitor.store.sql_reader import POSTGRESQL, SQLITE, Reader

SQLITE_BUSY_TIMEOUT_MS = 5000  # make_engine's default


def open_reader(url: str) -> Reader | None:
    """A Reader on a new DB-API connection to ``url``; None for a form this does not
    handle. Raises the driver's error when the database does not answer."""
    if path := sqlite_path(url):
        return _sqlite(str(path))
    options = postgres_options(url)
    return None if options is None else _postgres(options)


def _sqlite(path: str) -> Reader:
    import sqlite3

    conn = sqlite3.connect(
        os.path.abspath(path), timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")

    def run(sql: str, params: tuple[Any, ...]) -> Iterable[Sequence[Any]]:
        return conn.execute(sql, params).fetchall()  # () for a statement without rows

    return Reader(SQLITE, run, conn.close)


def _postgres(options: dict[str, Any]) -> Reader:
    import psycopg

    conn = psycopg.connect(**options)

    def run(sql: str, params: tuple[Any, ...]) -> Iterable[Sequence[Any]]:
        cursor = conn.execute(sql, params or None)
        return cursor.fetchall() if cursor.description is not None else ()

    return Reader(POSTGRESQL, run, conn.close)
