"""``kill -9`` of the real daemon, then a restart: the database opens, nothing is doubled.

On SQLite and PostgreSQL: the killed daemon never leaves a database that
does not open, a row twice, or a report that fails, and loses no answered
probe (its results are journaled before the writer's batch holds them):
after several kills the rows are exactly the requests the gateway answered.
On PostgreSQL a kill during an outage must not lose what was already
spooled: every spooled result lands once the database is back.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reldb_helpers import (
    PROBE_PATHS,
    SCENARIO,
    Daemon,
    assert_no_duplicates,
    daemon_config,
    read_rows,
    row_count,
    sim_request_ids,
    spool_lines,
    status_of,
    wait_until,
)
from sqlalchemy import create_engine, text

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

# Six models probed every second (7 requests a second with the listing): a
# kill almost always finds answered results not yet committed.
MANY = Scenario.from_dict(
    {"name": "reldb-many", "models": {f"db-{i}": {"latency_ms": 5} for i in range(6)}}
)
KILLS = 5
# A request answered this shortly before a kill may still be on its way into
# the daemon (socket buffer, parsing): not yet a result the daemon accepted.
IN_FLIGHT_S = 0.25
STOPPED = re.compile(
    r"(INFO|WARNING) .*nexomon stopped: (\d+) rows written, (\d+) left in the spool, (\d+) refused"
)


def exit_numbers(log_text: str) -> tuple[str, int, int, int]:
    """(level, written, left in the spool, refused) of the daemon's exit message."""
    found = STOPPED.findall(log_text)
    assert found, log_text[-3000:]
    level, written, left, refused = found[-1]
    return level, int(written), int(left), int(refused)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nexomon.db'}"
        return
    cluster = request.getfixturevalue("pg_cluster")
    cluster.start()
    name = cluster.create_database()
    try:
        yield cluster.url(name)
    finally:
        cluster.start()
        cluster.drop_database(name)


def report(config: Path) -> list[dict[str, object]]:
    """``nexomon report --format json`` as a user runs it; must exit 0."""
    argv = [sys.executable, "-m", "monitor.cli.main", "report", "-c", str(config)]
    done = subprocess.run(
        [*argv, "--since", "1h", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.timeout(240)
def test_kill_9_then_restart_opens_the_database_and_duplicates_nothing(
    tmp_path: Path, database_url: str
) -> None:
    daemons: list[Daemon] = []
    try:
        with RunningSimulator(SCENARIO) as sim:
            config = daemon_config(tmp_path, sim.base_url, database_url)
            daemons.append(Daemon(config).start())
            wait_until(lambda: row_count(database_url) >= 6, "rows before the kill")
            assert daemons[0].stop(signal.SIGKILL) == -signal.SIGKILL

            before = read_rows(database_url)
            assert_no_duplicates(before)
            daemons.append(Daemon(config).start())  # ready = the database opened
            wait_until(lambda: row_count(database_url) >= before.count + 6, "rows after restart")
            assert daemons[1].stop(signal.SIGTERM) == 0, daemons[1].log()
            answered = set(sim_request_ids(sim))

        rows = read_rows(database_url)
        assert_no_duplicates(rows)
        assert set(rows.result_ids) >= set(before.result_ids), "committed rows disappeared"
        assert set(rows.request_ids) <= answered, "a row for a request never made"
        if database_url.startswith("sqlite"):
            engine = create_engine(database_url)
            with engine.connect() as conn:
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            engine.dispose()
        lines = report(config)
        assert sum(int(line["probes"]) for line in lines) == rows.count  # type: ignore[call-overload]
    finally:
        for daemon in daemons:
            daemon.kill()


@pytest.mark.timeout(240)
def test_kill_9_during_an_outage_keeps_every_spooled_row(
    tmp_path: Path, pg_cluster: object
) -> None:
    cluster = pg_cluster
    cluster.start()  # type: ignore[attr-defined]
    name = cluster.create_database()  # type: ignore[attr-defined]
    url = cluster.url(name)  # type: ignore[attr-defined]
    spool = tmp_path / "spool"
    daemons: list[Daemon] = []
    try:
        with RunningSimulator(SCENARIO) as sim:
            config = daemon_config(tmp_path, sim.base_url, url)
            daemons.append(Daemon(config).start())
            wait_until(lambda: row_count(url) >= 3, "rows before the outage")
            cluster.stop()  # type: ignore[attr-defined]
            wait_until(lambda: spool_lines(spool) >= 6, "rows spooled during the outage")
            assert daemons[0].stop(signal.SIGKILL) == -signal.SIGKILL
            spooled = {
                json.loads(line)["result_id"]
                for path in spool.glob("*.jsonl")
                for line in path.read_text().splitlines()
                if line.strip()
            }
            assert spooled

            cluster.start()  # type: ignore[attr-defined]
            daemons.append(Daemon(config).start())
            wait_until(lambda: spool_lines(spool) == 0, "the spool replayed")
            assert status_of(daemons[1].url + "/readyz") == 200
            assert daemons[1].stop(signal.SIGTERM) == 0, daemons[1].log()
            answered = set(sim_request_ids(sim))

        rows = read_rows(url)
        assert_no_duplicates(rows)
        assert spooled <= set(rows.result_ids), "spooled rows were lost"
        assert set(rows.request_ids) <= answered
    finally:
        for daemon in daemons:
            daemon.kill()
        cluster.start()  # type: ignore[attr-defined]
        cluster.drop_database(name)  # type: ignore[attr-defined]


@pytest.mark.timeout(300)
def test_kill_9_cycles_store_every_answered_probe_exactly_once(
    tmp_path: Path, database_url: str
) -> None:
    kills: list[float] = []
    daemons: list[Daemon] = []
    try:
        with RunningSimulator(MANY) as sim:
            config = daemon_config(tmp_path, sim.base_url, database_url)
            for _ in range(KILLS):
                daemons.append(Daemon(config).start())
                seen = len(sim_request_ids(sim))
                wait_until(lambda n=seen: len(sim_request_ids(sim)) >= n + 10, "probes answered")
                kills.append(time.time())  # the simulator logs wall-clock arrival times
                assert daemons[-1].stop(signal.SIGKILL) == -signal.SIGKILL
            before = row_count(database_url)
            daemons.append(Daemon(config).start())  # replays what the killed ones journaled
            wait_until(lambda: row_count(database_url) >= before + 10, "rows after the kills")
            assert daemons[-1].stop(signal.SIGTERM) == 0, daemons[-1].log()
            answered = [e for e in sim.simulator.stats.log() if e["path"] in PROBE_PATHS]

        rows = read_rows(database_url)
        assert_no_duplicates(rows)
        answered_ids = {e["request_id"] for e in answered}
        assert set(rows.request_ids) <= answered_ids, "a row for a request never made"
        in_flight = {
            e["request_id"]
            for e in answered
            if any(kill - IN_FLIGHT_S <= e["t"] <= kill + 0.5 for kill in kills)
        }
        missing = answered_ids - set(rows.request_ids) - in_flight
        late = sorted(
            min(kill - e["t"] for kill in kills if kill >= e["t"])
            for e in answered
            if e["request_id"] in missing
        )
        assert not missing, f"{len(missing)} answered probes lost; answered s before a kill: {late}"
        assert len(answered_ids) > KILLS * 10
        level, written, left, refused = exit_numbers(daemons[-1].log())
        assert (level, written, left, refused) == ("INFO", rows.count - before, 0, 0)
    finally:
        for daemon in daemons:
            daemon.kill()
