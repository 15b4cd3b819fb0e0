"""Three locations, one PostgreSQL, one gateway, one Prometheus (issue 17 point 3).

Three real daemons (locations us, eu, ap) write to one real PostgreSQL and
probe one simulator whose model ``db-b`` fails (503) for requests from
location eu only: a regional fault, chosen by the User-Agent the daemon
sends (``nexomon/V (location=eu)``, the scenario's ``only_user_agent``).
A real Prometheus scrapes the three with deploy/rules/nexomon.rules.yml.

Asserted: every gateway request is one row, with the location that sent
it; each daemon's budget gauge is its own location's spend, not the sum;
``nexomon report --by location`` and ``--location eu`` show per-location and
combined availability; ``NexomonModelDownRegional`` is pending (or firing)
for eu and db-b, and ``NexomonModelDownEverywhere`` is not.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import PrometheusProcess
from prometheus_client.parser import text_string_to_metric_families
from reldb_helpers import Daemon, daemon_config, wait_until
from sqlalchemy import create_engine, text

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator
from monitor.store.db import normalize_url

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "rules" / "nexomon.rules.yml"
LOCATIONS = ("us", "eu", "ap")
FAULTY = "eu"
SCENARIO = Scenario.from_dict(
    {
        "name": "regional",
        "models": {
            "db-a": {"latency_ms": 5},
            "db-b": {
                "latency_ms": 5,
                "faults": [
                    {
                        "kind": "server_error",
                        "rate": 1.0,
                        "status": 503,
                        "only_user_agent": f"location={FAULTY}",
                    }
                ],
            },
        },
    }
)
TARGET = {"models_interval": "2s", "chat_interval": "2s", "timeout": "1s"}
EXTRA = """
[budget]
daily_usd = 100

[pricing."db-a"]
input = 1000
output = 2000

[pricing."db-b"]
input = 1000
output = 2000
"""


@pytest.fixture
def database_url(pg_cluster: object) -> Any:
    cluster = pg_cluster
    cluster.start()  # type: ignore[attr-defined]
    name = cluster.create_database()  # type: ignore[attr-defined]
    try:
        yield cluster.url(name)  # type: ignore[attr-defined]
    finally:
        cluster.start()  # type: ignore[attr-defined]
        cluster.drop_database(name)  # type: ignore[attr-defined]


def location_config(directory: Path, base_url: str, url: str, location: str) -> Path:
    path = daemon_config(directory, base_url, url, target=TARGET)
    body = path.read_text().replace('location = "test"', f'location = "{location}"')
    path.write_text(body + EXTRA)
    return path


def rows(url: str) -> list[tuple[str, str, str, str | None, Decimal | None]]:
    """(location, probe, model, outcome, request_id, cost_usd) of every row."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT location, probe, model, outcome, request_id, cost_usd"
                    " FROM probe_results"
                )
            )
            return [tuple(r) for r in found]  # type: ignore[misc]
    finally:
        engine.dispose()


def report(config: Path, *args: str) -> list[dict[str, Any]]:
    argv = ["report", "-c", str(config), "--since", "1d", "--format", "json", *args]
    ran = subprocess.run(
        [sys.executable, "-m", "monitor.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


def budget_spent(daemon: Daemon) -> float:
    """The daemon's ``nexomon_budget_spent_usd`` as its /metrics serves it."""
    body = httpx.get(daemon.url + "/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "nexomon_budget_spent_usd"
    )


@pytest.mark.timeout(300)
def test_three_locations_one_database_regional_fault(tmp_path: Path, database_url: str) -> None:
    url = database_url
    with ExitStack() as stack:
        sim = stack.enter_context(RunningSimulator(SCENARIO))
        daemons = {
            loc: Daemon(location_config(tmp_path / loc, sim.base_url, url, loc))
            for loc in LOCATIONS
        }
        for daemon in daemons.values():
            stack.callback(daemon.kill)
            daemon.start(wait_ready=False)
        for daemon in daemons.values():
            wait_until(lambda d=daemon: d.get("/readyz").status_code == 200, "every daemon ready")
        hosts = [d.url.removeprefix("http://") for d in daemons.values()]
        prom = stack.enter_context(
            PrometheusProcess(tmp_path / "prometheus", hosts, rule_files=[RULES])
        )

        # -- the regional verdict in Prometheus --------------------------------
        expected = {"us": 0.0, FAULTY: 1.0, "ap": 0.0}  # 1 down, 0 up, per location
        wait_until(lambda: _verdicts(prom) == expected, "a verdict from every location", 90)
        regional = prom.wait_for(
            'ALERTS{alertname="NexomonModelDownRegional", model="db-b"}', timeout=60
        )
        assert {(a["metric"]["location"], a["metric"]["alertstate"]) for a in regional} <= {
            (FAULTY, "pending"),
            (FAULTY, "firing"),
        }, regional
        assert _verdicts(prom) == expected
        assert prom.query('ALERTS{alertname=~"NexomonModelDownEverywhere|NexomonGateway.*"}') == []

        # -- budgets are per location: each gauge is its own location's spend ---
        # Quiesce first (a reload to hourly probes keeps the budget), so the
        # gauge and the committed rows can be compared at rest.
        for daemon in daemons.values():
            daemon.config_path.write_text(daemon.config_path.read_text().replace('"2s"', '"3600s"'))
            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGHUP)
        for loc, daemon in daemons.items():
            wait_until(lambda d=daemon: "config reloaded" in d.log(), f"{loc} reloaded")
            wait_until(lambda loc=loc, d=daemon: _spend_matches(url, loc, d), f"{loc}'s spend")
        spent = {loc: budget_spent(d) for loc, d in daemons.items()}
        assert spent[FAULTY] < min(spent["us"], spent["ap"]), spent  # its db-b spends nothing

        for daemon in daemons.values():
            assert daemon.stop(signal.SIGTERM) == 0, daemon.log()
            assert "Traceback" not in daemon.log(), daemon.log()
        sim_ids = [e["request_id"] for e in sim.simulator.stats.log()]

    # -- every request is one row, with the location that sent it -------------
    stored = rows(url)
    ids = [r[4] for r in stored if r[4] is not None]
    assert len(ids) == len(set(ids)), "a request stored twice"
    assert sorted(ids) == sorted(sim_ids), "rows and gateway requests differ"
    assert {r[0] for r in stored} == set(LOCATIONS)
    for loc in LOCATIONS:
        outcomes = {r[3] for r in stored if r[0] == loc and r[1] == "chat" and r[2] == "db-b"}
        assert outcomes == ({"server_error"} if loc == FAULTY else {"ok"}), (loc, outcomes)

    # -- the report, per location and combined --------------------------------
    config = tmp_path / "us" / "nexomon.toml"
    chat = [r for r in report(config, "--by", "location") if r["probe"] == "chat"]
    availability = {r["location"]: r["availability_pct"] for r in chat}
    assert set(availability) == {*LOCATIONS, "*"}, chat
    assert availability["us"] == availability["ap"] == 100.0
    assert 0 < availability[FAULTY] < 100
    assert availability[FAULTY] < availability["*"] < 100
    eu_models = {
        r["model"]: r["availability_pct"]
        for r in report(config, "--location", FAULTY)
        if r["probe"] == "chat"
    }
    assert eu_models == {"db-a": 100.0, "db-b": 0.0}, eu_models
    assert all(r["location"] == FAULTY for r in report(config, "--location", FAULTY))


def _verdicts(prom: PrometheusProcess) -> dict[str, float]:
    """location -> the recorded chat verdict of db-b (1 down, 0 up)."""
    found = prom.query('location_target_model:nexomon_chat_down:15m{model="db-b"}')
    return {v["metric"]["location"]: float(v["value"][1]) for v in found}


def _spend_matches(url: str, location: str, daemon: Daemon) -> bool:
    """Whether the daemon's budget gauge is its own location's stored spend (not the sum)."""
    stored = sum((r[5] or Decimal(0)) for r in rows(url) if r[0] == location)
    return stored > 0 and abs(budget_spent(daemon) - float(stored)) < 1e-9
