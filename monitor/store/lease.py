"""One active prober per location: the database-side locks.

``FileLock`` is SQLite's: an exclusive ``flock`` on a sidecar file beside
the database (``nexomon.db.lock``) that holds the holder's pid. Readers
(``nexomon report``) never take it, so they keep working; the kernel drops
it when the holder exits, ``kill -9`` included. The sidecar is never
unlinked: a second process could otherwise lock a file that is no longer
the one the next process opens.

``LocationLock`` is PostgreSQL's: a session advisory lock
(``pg_try_advisory_lock``) keyed by ``lock_key(location)``, held on a
dedicated autocommit connection with TCP keepalives and a user timeout,
so a dead holder's session (and its lock) goes away within seconds and a
dead server is noticed by the holder as quickly. Different locations have
different keys and never wait on each other.

Neither class decides anything: monitor.daemon.standby does.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import logging
import os
from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from monitor.store.commit import OUTAGE_ERRORS
from monitor.store.db import make_private_dirs, normalize_url

log = logging.getLogger("nexomon.store.lease")

# libpq settings of the lock connection: a peer that vanishes is noticed in
# about 5 + 2 * 3 = 11 s when idle, and a write nobody acknowledges fails in
# 10 s, instead of the kernel defaults of two hours and fifteen minutes.
LOCK_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


def lock_key(location: str) -> int:
    """The signed 64-bit advisory-lock key of ``location`` (from "nexomon:" + location)."""
    digest = hashlib.sha256(f"nexomon:{location}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class FileLockHeld(Exception):
    """Another process holds the database's lock file; ``pid`` is what it wrote (or None)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(f"{path} is locked by pid {pid}")
        self.path = path
        self.pid = pid


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path``; the holder's pid inside."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @classmethod
    def beside(cls, database: Path) -> FileLock:
        """The lock of a SQLite file: ``<database>.lock`` in the same folder."""
        return cls(database.with_name(database.name + ".lock"))

    def acquire(self) -> None:
        """Take the lock or raise ``FileLockHeld``; ``OSError`` when the file cannot be made."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise FileLockHeld(self.path, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    @classmethod
    def for_database(cls, database: Path) -> FileLock | None:
        """The taken lock of a SQLite file, its folder created (0700) if missing.

        None when the lock file cannot be made (a read-only or uncreatable
        folder): opening the store then reports that as the config error.
        Raises ``FileLockHeld`` when another process holds it.
        """
        lock = cls.beside(database)
        try:
            make_private_dirs(database.parent)
            lock.acquire()
        except OSError:
            return None
        return lock

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode("ascii", "replace").strip())
    except ValueError:
        return None


class Attempt(enum.Enum):
    """What one try for the location lock found."""

    HELD = "held"  # this process holds it
    TAKEN = "taken"  # another session holds it
    UNREACHABLE = "unreachable"  # the database did not answer


class LocationLock:
    """The advisory lock of one location on one PostgreSQL database.

    Methods block (network I/O): call them off the event loop. None raises
    for an outage; an outage is ``Attempt.UNREACHABLE`` or ``check() is
    False``. Any other database error (a wrong password) propagates.
    """

    def __init__(self, url: str, location: str) -> None:
        self.location = location
        self.key = lock_key(location)
        app = f"nexomon {location} pid {os.getpid()}"[:63]
        self._engine = create_engine(
            normalize_url(url),
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",  # no transaction left open on the session
            connect_args={**LOCK_CONNECT_ARGS, "application_name": app},
        )
        self._conn: Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> Attempt:
        """One ``pg_try_advisory_lock``; never waits for another holder."""
        if self._conn is not None:
            return Attempt.HELD if self.check() else Attempt.UNREACHABLE
        try:
            conn = self._engine.connect()
        except OUTAGE_ERRORS:
            return Attempt.UNREACHABLE
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
            held = bool(got.scalar())
        except OUTAGE_ERRORS:
            _close_quietly(conn)
            return Attempt.UNREACHABLE
        if not held:
            conn.close()
            return Attempt.TAKEN
        self._conn = conn
        return Attempt.HELD

    def check(self) -> bool:
        """Whether the session holding the lock is still alive (so the lock still held).

        A lost session is closed and forgotten: the lock went with it.
        """
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:  # whatever broke the session, the lock went with it
            _close_quietly(self._conn)
            self._conn = None
            return False

    def release(self) -> None:
        """Close the session (the server drops the lock with it) and the engine."""
        if self._conn is not None:
            _close_quietly(self._conn)
            self._conn = None
        self._engine.dispose()


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except Exception as exc:  # a broken connection may fail to close; it is gone anyway
        log.debug("closing the lock connection: %s", type(exc).__name__)
