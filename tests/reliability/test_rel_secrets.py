"""The API key never leaves the Authorization header; the daemon's files are private.

One daemon at ``--log-level debug`` with a unique key probes a gateway that
echoes the key back everywhere it can (a 401 body, an HTML 500, an error
object in a 200, the ``x-request-id`` header) and a port that refuses. The
test holds the SQLite write lock long enough for the writer to spill to its
spool, so the spool file exists to be read. Then the key is searched for in
the log, the database files (main, -wal, -shm), the spool, ``/metrics``,
``/api/v1/status`` and every stored error; and the modes of everything the
daemon created are checked (files 0600, directories 0700).
"""

from __future__ import annotations

import socket
import sqlite3
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gwfixtures import RawRequest, RawServer, closed_port, reply
from rel_helpers import (
    DaemonProcess,
    completion,
    db_rows,
    extra_target,
    listing_body,
    scrape,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(240)

KEY = f"sk-rel-secret-{uuid.uuid4().hex}"
REDACTED = "[REDACTED]"


def _echo(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
    """A gateway that repeats whatever key it was sent, in body and headers."""
    sent = req.headers.get("authorization", "").removeprefix("Bearer ")
    headers = {"x-request-id": f"req-{sent}"}
    if req.method == "GET":
        return reply(200, listing_body(["unauthorized", "html-500", "error-200", "ok"]))(
            req, conn, stop
        )
    model = req.json().get("model")
    if model == "unauthorized":
        body = {"error": {"message": f"Incorrect API key provided: {sent}", "code": sent}}
        return reply(401, body, headers=headers)(req, conn, stop)
    if model == "html-500":
        page = f"<html><body>key {sent} rejected</body></html>"
        return reply(500, page, headers=headers, content_type="text/html")(req, conn, stop)
    if model == "error-200":
        return reply(200, {"error": {"message": f"bad key {sent}"}}, headers=headers)(
            req, conn, stop
        )
    return reply(200, completion(model), headers=headers)(req, conn, stop)


@dataclass
class Run:
    daemon: DaemonProcess
    data_dir: Path
    created_dirs: list[Path]
    spool_bytes: bytes
    spool_modes: tuple[int, int]
    live_files: dict[str, bytes]
    live_modes: dict[str, int]  # every path under the data dir while the daemon ran
    metrics: str
    status: str
    server: RawServer


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("secrets")
    # The database lives in folders that do not exist yet: the daemon makes them.
    created_dirs = [directory / "data", directory / "data" / "db"]
    data_dir = created_dirs[-1]
    db = data_dir / "nexomon.db"
    server = RawServer(responder=_echo)
    extra = extra_target("down", f"http://127.0.0.1:{closed_port()}/v1", models=["ok"])
    config = write_config(
        directory,
        server.base_url,
        key=KEY,
        target={"name": "echo", "timeout": "2s"},
        monitor={"database_url": f"sqlite:///{db}"},
        extra=extra,
    )
    daemon = DaemonProcess(config)
    try:
        daemon.start("--log-level", "debug")
        wait_until(
            lambda: (
                {r[0] for r in db_rows(db, "SELECT model FROM probe_results")}
                >= {"unauthorized", "html-500", "error-200", "ok"}
            ),
            "a stored row for every echoing model",
            daemon,
        )
        spool = data_dir / "nexomon.db.spool" / "nexomon-spool.jsonl"
        # Hold SQLite's write lock: the writer's inserts fail after their busy
        # timeout and the rows go to the spool, as in a database outage.
        locker = sqlite3.connect(db, isolation_level=None, timeout=30)
        try:
            locker.execute("BEGIN IMMEDIATE")
            wait_until(lambda: spool.exists() and spool.stat().st_size, "the spool", daemon)
            spool_bytes = spool.read_bytes()
            spool_modes = (_mode(spool), _mode(spool.parent))
        finally:
            locker.rollback()
            locker.close()
        wait_until(lambda: not spool.exists(), "the spool to be replayed", daemon)
        live = {p.name: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
        modes = {p.name: _mode(p) for p in [*created_dirs, *data_dir.rglob("*")]}
        metrics = scrape(daemon)
        status = daemon.get("/api/v1/status").text
        yield Run(
            daemon,
            data_dir,
            created_dirs,
            spool_bytes,
            spool_modes,
            live,
            modes,
            metrics,
            status,
            server,
        )
    finally:
        code = daemon.stop()
        server.close()
    assert code == 0, daemon.log()


def test_the_gateway_really_echoed_the_key(run: Run) -> None:
    # Without this the other tests could pass because the key never went out.
    assert any(r.headers.get("authorization") == f"Bearer {KEY}" for r in run.server.requests)
    errors = [
        r[0]
        for r in db_rows(
            run.data_dir / "nexomon.db", "SELECT error FROM probe_results WHERE error IS NOT NULL"
        )
    ]
    assert any(REDACTED in e for e in errors), errors


def test_key_not_in_the_log(run: Run) -> None:
    text = run.daemon.log()
    assert KEY not in text
    # The echo reached the log line, redacted: the scrubbing path really ran.
    assert (
        "echo/chat/unauthorized is REFUSED (auth_error: "
        f"HTTP 401: Incorrect API key provided: {REDACTED}" in text
    )


def test_key_not_in_database_files_while_running(run: Run) -> None:
    assert {"nexomon.db", "nexomon.db-wal"} <= set(run.live_files)
    for name, data in run.live_files.items():
        assert KEY.encode() not in data, name


def test_key_not_in_database_files_after_stop(run: Run) -> None:
    run.daemon.stop()
    for path in run.data_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in run.daemon.log()


def test_key_not_in_spool(run: Run) -> None:
    assert b'"result_id"' in run.spool_bytes
    assert KEY.encode() not in run.spool_bytes


def test_key_not_in_metrics_or_status(run: Run) -> None:
    assert KEY not in run.metrics
    assert KEY not in run.status
    assert '"outcome": "auth_error"' in run.status or '"outcome":"auth_error"' in run.status


def test_key_not_in_stored_errors_or_request_ids(run: Run) -> None:
    rows = db_rows(
        run.data_dir / "nexomon.db",
        "SELECT model, outcome, error, request_id FROM probe_results WHERE target = 'echo'",
    )
    outcomes = {model: outcome for model, outcome, _, _ in rows}
    assert outcomes["unauthorized"] == "auth_error"
    assert outcomes["html-500"] == "server_error"
    assert outcomes["error-200"] == "invalid_response"
    for row in rows:
        assert all(KEY not in (v or "") for v in row), row
    down = db_rows(
        run.data_dir / "nexomon.db",
        "SELECT DISTINCT outcome FROM probe_results WHERE target='down'",
    )
    assert {"connection_error"} == {r[0] for r in down}


def test_files_are_private(run: Run) -> None:
    modes = {name: oct(mode) for name, mode in run.live_modes.items()}
    files = {"nexomon.db", "nexomon.db-wal", "nexomon.db-shm"}
    assert {n: m for n, m in modes.items() if n in files} == dict.fromkeys(files, "0o600")
    assert run.spool_modes == (0o600, 0o700), [oct(m) for m in run.spool_modes]
    dirs = {p.name for p in run.created_dirs} | {"nexomon.db.spool"}
    assert {n: m for n, m in modes.items() if n in dirs} == dict.fromkeys(dirs, "0o700")
    # Nothing else the daemon left there is readable by others either.
    assert all(int(m, 8) & 0o077 == 0 for m in modes.values()), modes
