"""The dashboard's latency percentiles agree with ``nexomon report``'s (issue 17, points 4 and 5).

One real run: the simulator serves model ``lat`` with a lognormal latency
(fixed seed, median 200 ms, p99 400 ms, so a 1 s timeout cuts off almost
nothing), ``nexomon run`` probes it every second for :data:`RUN_S` seconds,
and a real Prometheus scrapes the daemon every second. Then the daemon stops
(every row is in SQLite) and the test compares, over the same probes:

- the overview dashboard's "Latency p50 / p95 / p99" targets, taken from the
  JSON and substituted as Grafana would (``$__rate_interval`` at least the
  panel's 5m minimum, which covers the whole run), queried at the last
  scrape, with ``$location`` All and with the one location alone;
- ``nexomon report --since <first scrape of the series> --format json``
  (and ``--location``), the chat row of ``lat``.

Both count the answered (ok) probes only. The window starts at the first
scrape that has the series, because a rate counts only what came after its
first sample; the test checks that both sides saw the same number of probes
(within :data:`COUNT_SLACK`, a probe that straddles that scrape or the
daemon's stop) and that each percentile agrees within :data:`TOLERANCE`.
The measured figures are printed (``-s``) for the closing note.

Why this distribution: ~150 probes is what a 1 s interval gives in the
test's time, and the p99 of 150 probes is their second-largest. A wide tail
(the simulator's default, p99 = 4.8 x median) leaves gaps of 10 % and more
between the top samples, so nearest rank (the report) and interpolation
(``histogram_quantile``) can land a gap apart: a sampling effect, not a
bucket one (a run at median 150 / p99 600 ms measured p99 +10.1 %, p95
+5.3 %). At p99 = 2 x median the top samples sit close together; on the
measured durations of one run, every sub-window of 120 probes or more agreed
within 3 %. With 2,000 samples the wide tail agrees within 7 % (the
exporter's tests/exporter/test_exporter_latency.py).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import PrometheusProcess, listen_url, running_daemon, write_config

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

from .panel_queries import panel_targets
from .tools import DASHBOARDS, load_dashboard

pytestmark = pytest.mark.timeout(330)

RUN_S = 150.0
TOLERANCE = 0.10
COUNT_SLACK = 2
LOCATION = "agree-eu"
MODEL = "lat"
PANEL = "Latency p50 / p95 / p99"
QUANTILES = {"A": ("p50", 0.5), "B": ("p95", 0.95), "C": ("p99", 0.99)}
SCENARIO: dict[str, Any] = {
    "name": "latency-agreement",
    "seed": 17,
    "models": {MODEL: {"latency_ms": {"dist": "lognormal", "median": 200, "p99": 400}}},
}


def dashboard_exprs(location: str, window_s: float) -> dict[str, str]:
    """The latency panel's p50/p95/p99 exprs for ``MODEL``, Grafana's variables substituted."""
    variables = {
        "datasource": "prometheus",
        "location": location,
        "target": ["sim"],
        "model": [MODEL],
        "__rate_interval": f"{math.ceil(window_s)}s",
        "__interval": f"{math.ceil(window_s)}s",
    }
    queries = panel_targets(load_dashboard(DASHBOARDS / "overview.json"), variables)
    chosen = {q.ref_id: q.expr for q in queries if q.title.startswith(f"{PANEL} (")}
    assert set(chosen) == set(QUANTILES), chosen
    return chosen


def _instant(client: httpx.Client, expr: str, at: float) -> list[dict[str, Any]]:
    body = client.get("/api/v1/query", params={"query": expr, "time": at}).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def _dashboard_percentiles(
    client: httpx.Client, location: str, window_s: float, at: float
) -> dict[str, float]:
    """p50/p95/p99 of ``MODEL`` as the panel draws them at ``at`` (one series each)."""
    figures = {}
    for ref, expr in dashboard_exprs(location, window_s).items():
        result = _instant(client, expr, at)
        assert len(result) == 1, f"{expr}: {result}"
        figures[QUANTILES[ref][0]] = float(result[0]["value"][1])
    return figures


def _first_and_last_scrape(client: httpx.Client, at: float) -> tuple[float, float, float]:
    """(first sample time, last sample time, ok probes between them) of MODEL's histogram."""
    selector = f'nexomon_probe_duration_seconds_count{{model="{MODEL}"}}'
    (series,) = _instant(client, f"{selector}[10m]", at)
    values = [(float(t), float(v)) for t, v in series["values"]]
    return values[0][0], values[-1][0], values[-1][1] - values[0][1]


def _report(config: Path, since: float, *extra: str) -> dict[str, Any]:
    moment = datetime.fromtimestamp(since, UTC).isoformat()
    argv = ["report", "-c", str(config), "--since", moment, "--format", "json", *extra]
    ran = subprocess.run(
        [sys.executable, "-m", "monitor.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    (row,) = [r for r in json.loads(ran.stdout) if r["probe"] == "chat" and r["model"] == MODEL]
    return row


def test_dashboard_latency_percentiles_agree_with_the_report(tmp_path: Path) -> None:
    with RunningSimulator(Scenario.from_dict(SCENARIO)) as sim:
        config = write_config(
            tmp_path,
            sim.base_url,
            monitor={"location": LOCATION},
            # one models probe at start, then chat only: the simulator's draws stay in order
            target={"models": [MODEL], "models_interval": "1h", "chat_interval": "1s"},
        )
        prometheus = PrometheusProcess(
            tmp_path / "prometheus", [listen_url(config).removeprefix("http://")]
        )
        with prometheus, running_daemon(config) as daemon:
            started = time.time()
            time.sleep(RUN_S)
            assert daemon.stop() == 0, daemon.log()[-3000:]
            time.sleep(2)  # a failed scrape after the stop: no sample is still in flight
            with httpx.Client(base_url=prometheus.url, timeout=15) as client:
                first, last, prom_count = _first_and_last_scrape(client, time.time())
                # at least the run: the rate starts from the series' first sample
                window = time.time() - started + 60
                prom = {
                    location: _dashboard_percentiles(client, location, window, last)
                    for location in (".*", LOCATION)
                }
    reports = {
        ".*": _report(config, first),
        LOCATION: _report(config, first, "--location", LOCATION),
    }
    lines, off = [], []
    for location, row in reports.items():
        assert row["location"] == ("*" if location == ".*" else LOCATION), row
        ok = row["outcomes"]["ok"]
        lines.append(f"location={location}: {ok} ok probes in the report, {prom_count:g} scraped")
        assert abs(ok - prom_count) <= COUNT_SLACK, lines[-1]
        for name, _q in QUANTILES.values():
            ours, theirs = row[f"{name}_s"], prom[location][name]
            difference = (theirs - ours) / ours
            lines.append(
                f"  {name}: dashboard {theirs * 1000:.1f} ms, report {ours * 1000:.1f} ms, "
                f"difference {100 * difference:+.1f} %"
            )
            if abs(difference) > TOLERANCE:
                off.append(lines[-1])
    print("\n".join(lines))
    assert not off, "dashboard and report disagree by more than 10 %:\n" + "\n".join(lines)
