"""Engines and migrations.

``make_engine(url)``: SQLite (the embedded default: WAL, a busy timeout,
foreign keys, the file created with mode 0600) or PostgreSQL through
psycopg 3 (``postgresql://`` is rewritten to ``postgresql+psycopg://``).

``upgrade(url)``: Alembic ``upgrade head`` from code, with the migrations
shipped inside the package (``monitor/migrations``), so an installed wheel
needs no alembic.ini. Failures raise ``StoreError`` with one line and the
password redacted. A database already at the single head revision (read
from the migration files' ``revision``/``down_revision`` lines) is left as
it is without importing Alembic at all: alembic, mako and pygments are
~11 MB of RSS that a restarted daemon would otherwise keep for its whole
life. Anything unexpected (no version table, several heads, files that do
not parse) goes through Alembic as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from monitor.errors import StoreError
from monitor.store.schema_head import MIGRATIONS_DIR, head_revision, stored_revisions
from monitor.store.sql_reader import reader_of

__all__ = ["MIGRATIONS_DIR", "head_revision"]  # their home is monitor.store.schema_head

if TYPE_CHECKING:
    from alembic.config import Config

DEFAULT_URL = "sqlite:///nexomon.db"
SQLITE_CACHED_STATEMENTS = 16


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` uses the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def redact(url: str | URL) -> str:
    """The URL as text with its password hidden (for errors and logs)."""
    try:
        return normalize_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database url>"


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL, ``:memory:`` and ``file:`` URIs."""
    parsed = normalize_url(url)
    return _sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None


def create_sqlite_file(path: Path) -> None:
    """Create ``path`` (0600) and its missing folders (0700); raises ``OSError``."""
    if not path.exists():
        _create_private_file(path)


def _sqlite_path(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents with mode 0700.

    ``Path.mkdir(parents=True, mode=...)`` applies the mode to the last
    folder only; the parents would get 0777 minus the umask. Folders that
    already exist are left as they are.
    """
    missing = []
    while not directory.exists():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def _create_private_file(path: Path) -> None:
    # SQLite creates its -wal and -shm files with the main file's mode, so
    # creating it 0600 first keeps all three private.
    make_private_dirs(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)


def make_engine(
    url: str | URL, *, busy_timeout_ms: int = 5000, read_only: bool = False, **kwargs: Any
) -> Engine:
    """A sync engine for ``url``; extra ``kwargs`` go to ``create_engine``.

    ``read_only`` (the read-only commands): a missing SQLite file is not
    created and the file's journal mode is not changed (no ``PRAGMA
    journal_mode``, which writes the header); the caller checks the file exists.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_path(parsed)
        if path is not None and not path.exists() and not read_only:
            _create_private_file(path)
        # cached_statements: the sqlite3 module keeps 128 prepared statements
        # per connection by default. When the writer used SQLAlchemy's
        # insertmanyvalues, every batch size was a different multi-row
        # INSERT ... RETURNING and at 1,000 models the cache grew SQLite's heap
        # to ~16 MB (benchmarks/memory_trace.py, sqlite_MB). The writer now
        # sends one fixed statement (store/batch.py); 16 stays as a bound,
        # since the daemon's other queries are few and cheap to prepare again.
        connect_args = {
            "check_same_thread": False,
            "cached_statements": SQLITE_CACHED_STATEMENTS,
            **kwargs.pop("connect_args", {}),
        }
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            if path is not None and not read_only:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(
                    "PRAGMA synchronous=NORMAL"
                )  # durable in WAL up to the last checkpoint
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)  # a restarted server leaves dead pooled connections
    return create_engine(parsed, **kwargs)


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic Config pointing at the packaged migrations (no ini file)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal % must be doubled.
        text = normalize_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", text.replace("%", "%%"))
    return config


def _one_line(exc: BaseException, secret: str | None) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return text[:300]


def upgrade(url: str | URL) -> None:
    """Apply every migration up to head; raise ``StoreError`` (one line) on failure."""
    parsed = normalize_url(url)
    try:
        engine = make_engine(parsed)
        try:
            with engine.begin() as connection:
                if _at_head(connection):
                    return
                from alembic import command

                config = alembic_config(parsed)
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        finally:
            engine.dispose()
    except Exception as exc:
        message = _one_line(exc, parsed.password)
        raise StoreError(f"database upgrade failed for {redact(parsed)}: {message}") from exc


def _at_head(connection: Connection) -> bool:
    """Whether the database's one alembic_version row is the packaged head."""
    head = head_revision()
    return head is not None and stored_revisions(reader_of(connection)) == [head]
