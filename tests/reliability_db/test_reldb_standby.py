"""One active prober per location on PostgreSQL: hot standby and takeover (issue 16 point 4).

Real daemons (``nexomon run`` subprocesses) on one real PostgreSQL. Each
daemon probes its own simulator, so a simulator's request log says exactly
which daemon probed. Two daemons of one location: the second is a hot
standby (``/healthz`` 200, ``/readyz`` 503 "standby", its own ``/metrics``,
no probe, no row). ``kill -9`` of the active one: the standby takes over
within 2 probe intervals and its rows land. A daemon of another location on
the same database is active at once. When the active one's lock session is
terminated by the server, exactly one daemon ends up probing.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from reldb_helpers import SCENARIO, Daemon, daemon_config, read_rows, status_of, wait_until
from sqlalchemy import create_engine, text

from monitor.simulator.server import RunningSimulator
from monitor.store.db import normalize_url

INTERVAL_S = 5.0  # probe interval of every daemon here; the lock is polled every 2.5 s
TARGET = {"models_interval": "5s", "chat_interval": "5s", "timeout": "2s"}


@pytest.fixture
def database_url(pg_cluster: object) -> Iterator[str]:
    cluster = pg_cluster
    cluster.start()  # type: ignore[attr-defined]
    name = cluster.create_database()  # type: ignore[attr-defined]
    try:
        yield cluster.url(name)  # type: ignore[attr-defined]
    finally:
        cluster.start()  # type: ignore[attr-defined]
        cluster.drop_database(name)  # type: ignore[attr-defined]


def config_for(directory: Path, sim: RunningSimulator, url: str, location: str) -> Path:
    path = daemon_config(directory, sim.base_url, url, target=TARGET)
    path.write_text(path.read_text().replace('location = "test"', f'location = "{location}"'))
    return path


def requests_of(sim: RunningSimulator) -> int:
    return len(sim.simulator.stats.log())


def rows_from(url: str, sim: RunningSimulator) -> int:
    """Rows whose gateway request id came from ``sim``."""
    ids = {e["request_id"] for e in sim.simulator.stats.log()}
    return sum(1 for rid in read_rows(url).request_ids if rid in ids)


def terminate_lock_sessions(url: str, location: str) -> int:
    """Ends the server sessions holding ``location``'s lock (by application_name)."""
    engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name LIKE :name"
                ),
                {"name": f"nexomon {location} pid %"},
            )
            return int(ended.scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.timeout(300)
def test_standby_takes_over_after_kill_and_locations_are_independent(
    tmp_path: Path, database_url: str
) -> None:
    url = database_url
    with ExitStack() as stack:
        sims = [stack.enter_context(RunningSimulator(SCENARIO)) for _ in range(3)]
        sim_a, sim_b, sim_c = sims
        daemon_a = Daemon(config_for(tmp_path / "a", sim_a, url, "eu"))
        daemon_b = Daemon(config_for(tmp_path / "b", sim_b, url, "eu"))
        daemon_c = Daemon(config_for(tmp_path / "c", sim_c, url, "us"))
        for daemon in (daemon_a, daemon_b, daemon_c):
            stack.callback(daemon.kill)

        daemon_a.start()
        wait_until(lambda: rows_from(url, sim_a) > 0, "rows from the active daemon")

        # -- the second daemon of location eu is a hot standby ------------------
        daemon_b.start(wait_ready=False)
        wait_until(lambda: "standing by" in daemon_b.log(), "the standby's log line")
        ready = daemon_b.get("/readyz")
        assert ready.status_code == 503 and "standby" in ready.text, ready.text
        assert daemon_b.get("/healthz").status_code == 200
        metrics = daemon_b.get("/metrics")
        assert metrics.status_code == 200 and "nexomon_build_info" in metrics.text
        assert "nexomon_probes_total{" not in metrics.text, "a standby has probed"
        assert 'nexomon_prober_active{location="eu"} 0.0' in metrics.text
        assert not (tmp_path / "b" / "nexomon-spool").exists(), "a standby opened the spool"

        # -- another location on the same database is active at once -----------
        daemon_c.start()
        wait_until(lambda: rows_from(url, sim_c) > 0, "rows from location us")
        seen = requests_of(sim_a)
        wait_until(lambda: requests_of(sim_a) >= seen + 2, "eu's active daemon probing on")
        assert requests_of(sim_b) == 0, "the standby sent a probe"
        assert rows_from(url, sim_b) == 0

        # -- kill -9 of the active one: the standby takes over -------------------
        assert daemon_a.proc is not None
        daemon_a.proc.send_signal(signal.SIGKILL)
        daemon_a.proc.wait()
        killed_at = time.monotonic()
        wait_until(lambda: requests_of(sim_b) > 0, "the standby's first probe", 60)
        took_s = time.monotonic() - killed_at
        print(f"standby's first probe {took_s:.2f}s after kill -9 (interval {INTERVAL_S:g}s)")
        assert took_s <= 2 * INTERVAL_S, f"the standby took {took_s:.1f}s to probe"
        assert "taking over as the active nexomon for location eu" in daemon_b.log()
        wait_until(lambda: status_of(daemon_b.url + "/readyz") == 200, "the new active ready")
        assert 'nexomon_prober_active{location="eu"} 1.0' in daemon_b.get("/metrics").text
        wait_until(lambda: rows_from(url, sim_b) >= 3, "rows from the new active daemon")

        # -- the killed one comes back as the standby ---------------------------
        daemon_a.start(wait_ready=False)
        wait_until(lambda: daemon_a.log().count("standing by") >= 1, "the restarted standby")
        probed = requests_of(sim_a)

        # -- the server ends the active one's lock session: one prober remains --
        assert terminate_lock_sessions(url, "eu") >= 1
        wait_until(
            lambda: "lost the database session holding the lock" in daemon_b.log(),
            "the holder noticing its lost session",
            30,
        )
        wait_until(lambda: _one_ready(daemon_a, daemon_b), "exactly one active eu daemon", 30)
        time.sleep(1)  # let a probe begun before the switch finish
        before = (requests_of(sim_a), requests_of(sim_b))
        wait_until(
            lambda: sum(n - b for n, b in zip(_counts(sim_a, sim_b), before, strict=True)) >= 3,
            "probes after the switch",
            60,
        )
        grew = [n > b for n, b in zip(_counts(sim_a, sim_b), before, strict=True)]
        assert grew.count(True) == 1, f"both eu daemons probed: {before} -> {_counts(sim_a, sim_b)}"
        assert requests_of(sim_a) >= probed

        for daemon in (daemon_a, daemon_b, daemon_c):
            assert daemon.stop(signal.SIGTERM) == 0, daemon.log()
            assert "Traceback" not in daemon.log(), daemon.log()

    rows = read_rows(url)
    assert len(set(rows.request_ids)) == len(rows.request_ids), "a request stored twice"


def _counts(sim_a: RunningSimulator, sim_b: RunningSimulator) -> tuple[int, int]:
    return requests_of(sim_a), requests_of(sim_b)


def _one_ready(*daemons: Daemon) -> bool:
    return [status_of(d.url + "/readyz") for d in daemons].count(200) == 1
