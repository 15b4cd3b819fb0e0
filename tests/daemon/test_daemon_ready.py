"""``/readyz``: 503 with a JSON reason until the scheduler runs and while the database is away."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
from daemon_kit import eventually
from harness import DaemonProcess, write_config
from prometheus_client import CollectorRegistry

from monitor.config import model as config_mod
from monitor.daemon.root import Daemon
from monitor.daemon.web import build_app
from monitor.logs import SecretScrubber


async def test_readyz_is_503_with_a_reason_before_the_daemon_runs(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9/v1")
    daemon = Daemon(config_mod.load(path), scrubber=SecretScrubber(), config_path=path)
    app = build_app(
        registry=CollectorRegistry(), ready=daemon._ready, status=daemon._status, metrics_token=None
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nexomon") as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "not ready", "reason": "scheduler not running"}
        assert (await client.get("/healthz")).status_code == 200


def test_readyz_is_503_while_postgresql_is_down_and_200_when_it_is_back(
    tmp_path: Path, pg_cluster: Any, simulator: Any
) -> None:
    database = pg_cluster.create_database()
    config = write_config(tmp_path, simulator.base_url, database_url=pg_cluster.url(database))
    daemon = DaemonProcess(config).start(timeout=60)
    try:
        assert daemon.get("/readyz").json() == {"status": "ready"}
        pg_cluster.stop()
        try:

            def not_ready() -> None:
                response = daemon.get("/readyz")
                assert response.status_code == 503
                body = response.json()
                assert body["status"] == "not ready"
                assert body["reason"].startswith("database unreachable"), body

            eventually(not_ready, timeout=60)
            assert daemon.get("/healthz").status_code == 200  # alive all the same
        finally:
            pg_cluster.start()
        eventually(lambda: _ready(daemon), timeout=60)
        assert daemon.stop(signal.SIGTERM, timeout=60) == 0
    finally:
        daemon.stop(signal.SIGKILL)


def _ready(daemon: DaemonProcess) -> None:
    assert daemon.get("/readyz").status_code == 200
