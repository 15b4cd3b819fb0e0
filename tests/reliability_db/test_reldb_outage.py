"""A PostgreSQL outage under the real daemon: nothing lost, nothing twice.

``nexomon run`` (a subprocess) probes a fault-free simulator every second
into a real PostgreSQL. The server is stopped for ``OUTAGE_S`` seconds
(env ``NEXOMON_OUTAGE_S``, default 60: the issue's minute; shorter runs
cover the same paths once the writer's backoff reaches its 5 s cap). During
the outage the daemon is restarted: the first one must
leave its rows in the spool on SIGTERM, and the second must start, keep
probing and spool while the database is still down. Once PostgreSQL is
back every request the simulator answered is exactly one row.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from reldb_helpers import (
    SCENARIO,
    Daemon,
    assert_no_duplicates,
    daemon_config,
    read_rows,
    row_count,
    sim_request_ids,
    sim_requests,
    spool_lines,
    status_of,
    wait_until,
)

from monitor.simulator.server import RunningSimulator

OUTAGE_S = float(os.environ.get("NEXOMON_OUTAGE_S", "60"))


@pytest.mark.timeout(int(OUTAGE_S) + 240)
def test_outage_and_restart_during_it_lose_nothing_and_duplicate_nothing(
    tmp_path: Path, pg_cluster: object
) -> None:
    cluster = pg_cluster
    cluster.start()  # type: ignore[attr-defined]
    name = cluster.create_database()  # type: ignore[attr-defined]
    url = cluster.url(name)  # type: ignore[attr-defined]
    spool = tmp_path / "spool"
    first = second = None
    try:
        with RunningSimulator(SCENARIO) as sim:
            config = daemon_config(tmp_path, sim.base_url, url)
            first = Daemon(config).start()
            wait_until(lambda: row_count(url) >= 3, "rows before the outage")

            cluster.stop()  # type: ignore[attr-defined]
            down_at = time.monotonic()
            wait_until(lambda: status_of(first.url + "/readyz") == 503, "/readyz 503 (first)")
            reason = first.get("/readyz").json()
            assert "database" in str(reason), reason
            seen = sim_requests(sim)
            wait_until(lambda: sim_requests(sim) >= seen + 5, "probes during the outage (first)")

            # SIGTERM while the database is down: the final flush goes to the spool.
            assert first.stop(signal.SIGTERM) == 0, first.log()
            assert spool_lines(spool) > 0, "the first daemon left no spool"
            spooled = spool_lines(spool)

            second = Daemon(config).start(wait_ready=False)
            wait_until(lambda: status_of(second.url + "/healthz") == 200, "second daemon alive")
            assert status_of(second.url + "/readyz") == 503
            seen = sim_requests(sim)
            wait_until(lambda: sim_requests(sim) >= seen + 5, "probes during the outage (second)")
            wait_until(lambda: spool_lines(spool) > spooled, "second daemon spooling")
            left = OUTAGE_S - (time.monotonic() - down_at)
            if left > 0:
                time.sleep(left)  # the outage itself: keep probing into the spool
            assert row_count(url) == 0  # the server is really down
            assert second.alive, second.log()

            cluster.start()  # type: ignore[attr-defined]
            wait_until(lambda: status_of(second.url + "/readyz") == 200, "/readyz 200 again")
            wait_until(lambda: spool_lines(spool) == 0, "the spool replayed")
            after = sim_requests(sim)
            wait_until(lambda: row_count(url) > after, "rows written after the outage")
            assert second.stop(signal.SIGTERM) == 0, second.log()

            rows = read_rows(url)
            stats = sim.simulator.stats
            expected = stats.models_requests + stats.chat_requests() + rows.skipped
            sim_ids = sim_request_ids(sim)
        assert_no_duplicates(rows)
        assert spool_lines(spool) == 0
        assert rows.count == expected, (rows.count, expected)
        assert sorted(rows.request_ids) == sorted(sim_ids), "rows and requests differ"
        assert "Traceback" not in first.log() + second.log()
    finally:
        for daemon in (first, second):
            if daemon is not None:
                daemon.kill()
        cluster.start()  # type: ignore[attr-defined]
        cluster.drop_database(name)  # type: ignore[attr-defined]
