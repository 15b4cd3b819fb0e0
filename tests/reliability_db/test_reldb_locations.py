"""Three locations, one PostgreSQL, one gateway, one Prometheus (issue 17 point 3).

Three real daemons (locations us, eu, ap) write to one real PostgreSQL and
probe one simulator whose model ``db-b`` fails (503) for requests from
location eu only: a regional fault, chosen by the User-Agent the daemon
sends (``nexomon/V (location=eu)``, the scenario's ``only_user_agent``).
A real Prometheus scrapes the three with deploy/rules/nexomon.rules.yml.
One stack serves the whole module (fixture ``three``).

Target ``sim`` probes ``db-a`` and ``db-b`` only. A second target ``demo``
on the same simulator has what the demo shows, seen from every location:
``sim-unpriced`` (no price), ``sim-down`` (every chat 500: down everywhere),
``sim-ratelimited`` (one bucket of 5 for the shared key, so every location
soon gets 429 with ``retry-after`` and resets), the documented-contract
checks (``contract_interval``) and ``sim-retiring`` (leaves /models when
the fixture moves the simulator's clock: a catalog change, delisted in every
location; the catalog is kept once per target in the shared database, so
only the location that lists the change first counts it).

Asserted: every panel query of every dashboard answers with the location
variable All, each option selected, and each location alone (this test runs
first: the regional one stops the daemons); every gateway request is one
row, with the location that sent it; each daemon's budget gauge is its own
location's spend, not the sum; ``nexomon report --by location`` and
``--location eu`` show per-location and combined availability;
``NexomonModelDownRegional`` is pending (or firing) for eu and db-b,
``NexomonModelDownEverywhere`` for sim-down and not for db-b.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
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
from tests.deploy.panel_eval import empty_panels, selections
from tests.deploy.tools import DASHBOARD_FILES, load_dashboard

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "rules" / "nexomon.rules.yml"
LOCATIONS = ("us", "eu", "ap")
FAULTY = "eu"
RETIRE_AFTER_S = 3600.0  # sim-retiring leaves /models once the clock is moved past this
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
            "sim-unpriced": {"latency_ms": 5},
            "sim-down": {"latency_ms": 5, "error_rate": 1.0},
            # Refills one token in ~3 hours: moving the clock 2 hours does not refill it.
            # The openai header family carries resets too, as in the demo.
            "sim-ratelimited": {
                "latency_ms": 5,
                "ratelimit": {"limit": 5, "per_s": 0.0001},
                "ratelimit_headers": "openai",
            },
            "sim-retiring": {"latency_ms": 5, "disappear_after_s": RETIRE_AFTER_S},
        },
    }
)
TARGET = {
    "models_interval": "2s",
    "chat_interval": "2s",
    "timeout": "1s",
    "models": ["db-a", "db-b"],
}
DEMO_MODELS = ("sim-unpriced", "sim-down", "sim-ratelimited", "sim-retiring")
PRICES = """
[pricing."db-a"]
input = 1000
output = 2000

[pricing."db-b"]
input = 1000
output = 2000
""" + "".join(  # a millionth of db-b's: the spend comparison stays db-b's
    f'\n[pricing."{model}"]\ninput = 0.001\noutput = 0.002\n'
    for model in ("sim-down", "sim-ratelimited", "sim-retiring")
)
# "offset 2s": older than a range query's end rounded to the second.
REMOVED = 'nexomon_catalog_changes_total{target="demo", change="removed"} offset 2s > 0'
# Panels this run cannot fill, and why: left out of the emptiness check.
NO_DATA_HERE = {
    "TLS days left": "every gateway here is plain http, as in the demo: no certificate"
    " to read (tests/deploy/test_tls_panel.py evaluates it on two locations' TLS series)",
    "Streams: time to first chunk and per output chunk": "streaming is opt-in"
    " (stream_interval) and off here, as in the demo: NexoRouter's streaming is not a stable"
    " API (tests/deploy/test_stream_panel.py evaluates it on stream series)",
}
FINE_STEP_S = 1.0  # PrometheusProcess scrapes and evaluates every second
DEADLINE_S = 90.0  # per wait; generous for a loaded 2-core machine


@dataclass
class ThreeLocations:
    """The running stack: simulator, one daemon per location, Prometheus, the database."""

    database_url: str
    sim: RunningSimulator
    daemons: dict[str, Daemon]
    prom: PrometheusProcess
    started: float  # when Prometheus began scraping (epoch seconds)


def location_config(directory: Path, base_url: str, url: str, location: str) -> Path:
    path = daemon_config(directory, base_url, url, target=TARGET)
    body = path.read_text().replace('location = "test"', f'location = "{location}"')
    demo = {
        "name": "demo",
        "base_url": base_url,
        "api_key_file": "api.key",
        **{key: TARGET[key] for key in ("models_interval", "chat_interval", "timeout")},
        "models": list(DEMO_MODELS),
        "contract_interval": TARGET["chat_interval"],  # the Contract checks panel
    }
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in demo.items())
    path.write_text(f"{body}\n[[targets]]\n{table}\n[budget]\ndaily_usd = 100\n{PRICES}")
    return path


def _everywhere(prom: PrometheusProcess, expr: str) -> bool:
    """Whether ``expr`` has a series of every location."""
    return {v["metric"].get("location") for v in prom.query(expr)} >= set(LOCATIONS)


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory, pg_cluster: Any) -> Iterator[ThreeLocations]:
    """The stack, once every location has seen each demo condition, and the catalog change."""
    directory = tmp_path_factory.mktemp("locations")
    pg_cluster.start()
    name = pg_cluster.create_database()
    shift = [0.0]  # seconds added to the simulator's clock: moving it retires sim-retiring
    try:
        with ExitStack() as stack:
            sim = stack.enter_context(
                RunningSimulator(SCENARIO, clock=lambda: time.monotonic() + shift[0])
            )
            url = pg_cluster.url(name)
            daemons = {
                loc: Daemon(location_config(directory / loc, sim.base_url, url, loc))
                for loc in LOCATIONS
            }
            # Prometheus first: it sees every counter from 0, as in the compose stack.
            hosts = [d.url.removeprefix("http://") for d in daemons.values()]
            started = time.time()
            prom = stack.enter_context(
                PrometheusProcess(directory / "prometheus", hosts, rule_files=[RULES])
            )
            for daemon in daemons.values():
                stack.callback(daemon.kill)
                daemon.start(wait_ready=False)
            for daemon in daemons.values():
                wait_until(lambda d=daemon: d.get("/readyz").status_code == 200, "daemons ready")
            for expr in (
                'nexomon_model_listed{target="demo", model="sim-retiring"} == 1',
                'nexomon_probes_total{model="sim-ratelimited", outcome="rate_limited"} > 0',
                'nexomon_probes_total{model="sim-down", outcome="server_error"} > 0',
                'nexomon_model_unpriced{model="sim-unpriced"} == 1',
            ):
                wait_until(lambda e=expr: _everywhere(prom, e), f"{expr} everywhere", DEADLINE_S)
            shift[0] = 2 * RETIRE_AFTER_S
            # One location, not each: the catalog is the target's, kept once in the
            # shared database, so only the location that lists the change first
            # counts it (the others' nexomon_catalog_changes_total stays 0).
            wait_until(lambda: prom.query(REMOVED), "the removal", DEADLINE_S)
            yield ThreeLocations(url, sim, daemons, prom, started)
    finally:
        pg_cluster.start()
        pg_cluster.drop_database(name)


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


@pytest.mark.timeout(400)  # the first test also starts the module's stack
@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=[p.stem for p in DASHBOARD_FILES])
def test_no_panel_is_empty_for_any_location(three: ThreeLocations, path: Path) -> None:
    """Issue 17: the location variable, set to one location or to All, empties no panel."""
    assert all(d.alive for d in three.daemons.values()), "runs before the regional test"
    dashboard = _without(load_dashboard(path), NO_DATA_HERE)
    with httpx.Client(base_url=three.prom.url, timeout=15) as client:
        chosen = selections(client, dashboard)
        expected = {"all", "each", *(f"location={loc}" for loc in LOCATIONS)}
        assert set(chosen) == expected, sorted(chosen)
        empty = empty_panels(
            client,
            dashboard,
            chosen,
            started=three.started,
            fine_step=FINE_STEP_S,
            deadline_s=DEADLINE_S,
        )
    assert not empty, "panels without data:\n" + "\n".join(empty)


@pytest.mark.timeout(300)
def test_three_locations_one_database_regional_fault(three: ThreeLocations) -> None:
    url, sim, daemons, prom = three.database_url, three.sim, three.daemons, three.prom

    # -- the regional verdict in Prometheus ------------------------------------
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
    # sim-down fails from every location: the contrast the regional alert draws.
    everywhere = prom.wait_for(
        'ALERTS{alertname="NexomonModelDownEverywhere", model="sim-down"}', timeout=60
    )
    assert {a["metric"]["target"] for a in everywhere} == {"demo"}, everywhere
    assert (
        prom.query(
            'ALERTS{alertname=~"NexomonModelDownEverywhere|NexomonGateway.*", model!="sim-down"}'
        )
        == []
    )
    assert prom.query('ALERTS{alertname="NexomonModelDownRegional", model!="db-b"}') == []

    # -- budgets are per location: each gauge is its own location's spend -----
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

    # -- every request is one row, with the location that sent it ---------------
    stored = rows(url)
    ids = [r[4] for r in stored if r[4] is not None]
    assert len(ids) == len(set(ids)), "a request stored twice"
    # The simulator answers a CORS preflight (OPTIONS) with a request id but
    # leaves it out of its request log: those contract rows have no entry there.
    logged = [r[4] for r in stored if r[4] is not None and r[1:3] != ("contract", "cors_preflight")]
    assert sorted(logged) == sorted(sim_ids), "rows and gateway requests differ"
    assert {r[0] for r in stored} == set(LOCATIONS)
    for loc in LOCATIONS:
        outcomes = {r[3] for r in stored if r[0] == loc and r[1] == "chat" and r[2] == "db-b"}
        assert outcomes == ({"server_error"} if loc == FAULTY else {"ok"}), (loc, outcomes)

    # -- the report, per location and combined (target sim: db-a and db-b) -----
    config = daemons["us"].config_path
    chat = [
        r
        for r in report(config, "--by", "location")
        if r["probe"] == "chat" and r["target"] == "sim"
    ]
    availability = {r["location"]: r["availability_pct"] for r in chat}
    assert len(availability) == len(chat), chat  # one row per location
    assert set(availability) == {*LOCATIONS, "*"}, chat
    assert availability["us"] == availability["ap"] == 100.0
    assert 0 < availability[FAULTY] < 100
    assert availability[FAULTY] < availability["*"] < 100
    eu_models = {
        r["model"]: r["availability_pct"]
        for r in report(config, "--location", FAULTY)
        if r["probe"] == "chat" and r["target"] == "sim"
    }
    assert eu_models == {"db-a": 100.0, "db-b": 0.0}, eu_models
    assert all(r["location"] == FAULTY for r in report(config, "--location", FAULTY))


def _without(dashboard: dict[str, Any], titles: Collection[str]) -> dict[str, Any]:
    """``dashboard`` without the panels titled ``titles`` (rows' nested panels included)."""

    def keep(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**p, "panels": keep(p["panels"])} if "panels" in p else p
            for p in panels
            if p.get("title") not in titles
        ]

    return {**dashboard, "panels": keep(dashboard.get("panels", []))}


def _verdicts(prom: PrometheusProcess) -> dict[str, float]:
    """location -> the recorded chat verdict of db-b (1 down, 0 up)."""
    found = prom.query('location_target_model:nexomon_chat_down:15m{model="db-b"}')
    return {v["metric"]["location"]: float(v["value"][1]) for v in found}


def _spend_matches(url: str, location: str, daemon: Daemon) -> bool:
    """Whether the daemon's budget gauge is its own location's stored spend (not the sum)."""
    stored = sum((r[5] or Decimal(0)) for r in rows(url) if r[0] == location)
    return stored > 0 and abs(budget_spent(daemon) - float(stored)) < 1e-9
