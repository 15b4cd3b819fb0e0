"""The real daemon tells the truth about its writer: ``/readyz`` and the exit message.

- ``/readyz`` answers 503 with a reason once the writer thread is dead. After
  issue 14 nothing a gateway or a database can send kills it (rows are
  isolated, bugs are caught), so the test ends it the one way left: an
  exception that is not an ``Exception`` (``SystemExit``) out of its flush.
- At SIGTERM during a PostgreSQL outage the exit message counts the rows
  written, the rows left in the spool and the rows refused, and they match
  the database and the spool file.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from reldb_helpers import (
    LOCATION,
    SCENARIO,
    Daemon,
    daemon_config,
    read_rows,
    row_count,
    spool_lines,
    wait_until,
)
from test_reldb_kill import exit_numbers

from monitor.config import model as config_mod
from monitor.daemon.root import Daemon as RootDaemon
from monitor.logs import SecretScrubber
from monitor.simulator.server import RunningSimulator


def _sample_line(name: str, value: float) -> str:
    """A process-wide series' exposition line: its only label is the location."""
    return f'\n{name}{{location="{LOCATION}"}} {value}\n'


async def _poll(client: httpx.AsyncClient, url: str, want: int, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = await client.get(url)
            if response.status_code == want:
                return response
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer {want} within {timeout}s")
        await asyncio.sleep(0.1)


@pytest.mark.timeout(180)
async def test_readyz_is_503_with_a_reason_when_the_writer_thread_is_dead(
    tmp_path: Path,
) -> None:
    with RunningSimulator(SCENARIO) as sim:
        path = daemon_config(tmp_path, sim.base_url, f"sqlite:///{tmp_path / 'nexomon.db'}")
        config = config_mod.load(path)
        daemon = RootDaemon(config, scrubber=SecretScrubber(), config_path=path)
        task = asyncio.create_task(daemon.run())
        base = f"http://{config.monitor.listen_host}:{config.monitor.listen_port}"
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                await _poll(client, base + "/readyz", 200)
                assert (
                    _sample_line("nexomon_store_writer_up", 1.0)
                    in (await client.get(base + "/metrics")).text
                )
                assert daemon.store is not None
                writer = daemon.store.writer

                def stop_thread() -> bool:
                    raise SystemExit  # the writer's next flush ends its thread

                writer._flush = stop_thread  # type: ignore[method-assign]
                while writer.alive:
                    await asyncio.sleep(0.05)
                response = await _poll(client, base + "/readyz", 503)
                assert response.json() == {
                    "status": "not ready",
                    "reason": "store writer thread is dead",
                }
                assert (await client.get(base + "/healthz")).status_code == 200
                metrics = await client.get(base + "/metrics")
                assert metrics.status_code == 200
                assert _sample_line("nexomon_store_writer_up", 0.0) in metrics.text
                assert _sample_line("nexomon_store_writer_errors_total", 0.0) in metrics.text
                del writer._flush  # the final flush at shutdown runs for real
        finally:
            daemon.request_stop()
            assert await asyncio.wait_for(task, 60) == 0


@pytest.mark.timeout(240)
def test_exit_message_counts_rows_written_and_left_in_the_spool(
    tmp_path: Path, pg_cluster: Any
) -> None:
    cluster = pg_cluster
    cluster.start()
    name = cluster.create_database()
    url = cluster.url(name)
    spool = tmp_path / "spool"
    daemon: Daemon | None = None
    try:
        with RunningSimulator(SCENARIO) as sim:
            config = daemon_config(tmp_path, sim.base_url, url)
            daemon = Daemon(config).start()
            wait_until(lambda: row_count(url) >= 4, "rows before the outage")
            cluster.stop()
            wait_until(lambda: spool_lines(spool) >= 3, "rows spooled during the outage")
            assert daemon.stop(signal.SIGTERM) == 0, daemon.log()
        cluster.start()
        level, written, left, refused = exit_numbers(daemon.log())
        assert written == read_rows(url).count  # a fresh database: every row is this daemon's
        assert left == spool_lines(spool) >= 3
        assert (level, refused) == ("WARNING", 0)
    finally:
        if daemon is not None:
            daemon.kill()
        cluster.start()
        cluster.drop_database(name)
