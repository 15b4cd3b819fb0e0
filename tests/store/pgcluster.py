"""A throwaway PostgreSQL cluster for tests and benchmarks.

``PgCluster`` runs ``initdb`` and ``pg_ctl`` as the ``postgres`` user (through
``runuser -u postgres`` when we are root), keeps its data directory in a
temporary directory owned by ``postgres``, listens on 127.0.0.1 at a free
port with trust authentication, and is removed by ``destroy()``. It can be
stopped and started again on the same port (to simulate an outage).

``find_bin_dir()`` returns None when PostgreSQL is not installed; callers
decide whether to skip (locally) or fail (with ``CI`` set).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """One private PostgreSQL server; ``start()``, ``stop()``, ``destroy()``."""

    def __init__(self, bin_dir: Path, user: str = "postgres") -> None:
        self.bin_dir = bin_dir
        self.user = user
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="nexomon-pg-"))
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            entry = pwd.getpwnam(user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin_dir / tool), *args]
        if self._as_root:
            argv = ["runuser", "-u", self.user, "--", *argv]
        return subprocess.run(
            argv, check=check, capture_output=True, text=True, timeout=120, cwd=self.root
        )

    def is_running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def start(self) -> None:
        """Start the server (a no-op when it is already running)."""
        if self.is_running():
            return
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100"
        )
        result = self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
            check=False,
        )
        if result.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {result.stderr}{result.stdout}\n{log}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database; returns its name."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
