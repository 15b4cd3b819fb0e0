"""End to end: the simulator on a socket, ``nexomon run`` as a subprocess, a real Prometheus.

One daemon run is shared by the whole module. It probes a scenario with a
healthy, an always failing and a rate-limited model every second while
Prometheus scrapes it every second; once the rate-limited model has been
refused and skipped, a SIGHUP reload stretches every interval to an hour
(a good reload taking effect), so the counters stop moving and every value
can be compared exactly: Prometheus' answer against the simulator's request
log and its token arithmetic, and against the daemon's database rows.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from daemon_kit import (
    CHAT_PATH,
    MODELS_PATH,
    Row,
    db_rows,
    eventually,
    json_lines,
    prom_value,
    sample,
    scrape,
    sim_requests,
    usage_per_answer,
)
from harness import DaemonProcess, PrometheusProcess, write_config
from testutil import need_binary

from monitor.daemon.scheduler import job_id, spread_offset
from monitor.daemon.statelog import state_of
from monitor.outcome import Outcome
from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

PROMPT = "Reply with OK."
REPLY = "OK, all good here."
MAX_TOKENS = 16
QUIET_INTERVAL_S = 3600

SCENARIO: dict[str, Any] = {
    "name": "e2e",
    "seed": 11,
    "reply": REPLY,
    "models": {
        # 25-60 ms: every healthy probe lands above the 0.02 s bucket.
        "m-ok": {
            "latency_ms": {"dist": "uniform", "min": 25, "max": 60},
            "ratelimit": {"limit": 1000, "per_s": 1000.0},
        },
        "m-fail": {"latency_ms": 10, "error_rate": 1.0},
        # A burst of 2, one more every 4 s: probed every second it is refused
        # within seconds, with retry-after 2-3 s.
        # Its headers are OpenAI style (both kinds, with resets), and its answers
        # name another model: a silent substitution (issue 18).
        "m-limited": {
            "latency_ms": 10,
            "ratelimit": {"limit": 2, "per_s": 0.25},
            "ratelimit_headers": "openai",
            "answer_as": "m-cheap",
        },
    },
}
MODELS = list(SCENARIO["models"])


@dataclass
class Run:
    sim: RunningSimulator
    daemon: DaemonProcess
    prom: PrometheusProcess
    db: Path
    reloaded_at: float

    def rows(self) -> list[Row]:
        return db_rows(self.db)

    def prom_value(self, expr: str) -> float:
        return prom_value(self.prom.query(expr))


def _target(interval: str) -> dict[str, Any]:
    return {
        "models_interval": interval,
        "chat_interval": interval,
        "prompt": PROMPT,
        "max_tokens": MAX_TOKENS,
    }


def _enough_data(db: Path) -> None:
    rows = [r for r in db_rows(db) if r.probe == "chat"]
    outcomes = Counter((r.model, r.outcome) for r in rows)
    assert outcomes["m-ok", "ok"] >= 3, outcomes
    assert outcomes["m-fail", "server_error"] >= 3, outcomes
    assert outcomes["m-limited", "rate_limited"] >= 2, outcomes
    assert outcomes["m-limited", "skipped"] >= 1, outcomes
    limited = [r.outcome for r in rows if r.model == "m-limited" and r.outcome != "skipped"]
    assert "ok" in limited[limited.index("rate_limited") :], limited  # it came back once


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    need_binary("prometheus")
    for model in MODELS:  # the quiet reload must really be quiet
        assert spread_offset(job_id("sim", "chat", model), QUIET_INTERVAL_S) > 600
    directory = tmp_path_factory.mktemp("e2e")
    with RunningSimulator(Scenario.from_dict(SCENARIO)) as sim:
        config = write_config(directory, sim.base_url, target=_target("1s"))
        daemon = DaemonProcess(config).start("--log-format", "json", wait_ready=False)
        try:
            host = daemon.url.removeprefix("http://")
            with PrometheusProcess(directory / "prometheus", [host]) as prom:
                daemon.wait_ready(60)
                db = directory / "nexomon.db"
                eventually(lambda: _enough_data(db), timeout=90)
                # Quiesce with a good reload: every interval becomes an hour.
                write_config(
                    directory,
                    sim.base_url,
                    port=int(host.rsplit(":", 1)[1]),
                    target=_target(f"{QUIET_INTERVAL_S}s"),
                )
                reloaded_at = time.time()
                daemon.signal(signal.SIGHUP)
                result = Run(sim, daemon, prom, db, reloaded_at)
                eventually(lambda: _quiet(result), timeout=60)
                yield result
        finally:
            if daemon.proc is not None and daemon.proc.poll() is None:
                daemon.proc.kill()
                daemon.proc.wait()


def _quiet(run: Run) -> None:
    """The reload took effect, its one listing is done, and every row is written."""
    samples = scrape(run.daemon.url)
    for model in MODELS:
        labels = {"target": "sim", "probe": "chat", "model": model}
        assert sample(samples, "nexomon_probe_interval_seconds", **labels) == QUIET_INTERVAL_S
    after = [e for e in sim_requests(run.sim, MODELS_PATH) if e["t"] > run.reloaded_at]
    assert after, "no listing since the reload yet"
    sent = {e["request_id"] for e in sim_requests(run.sim)}
    written = {r.request_id for r in run.rows() if r.outcome != "skipped"}
    assert written == sent


def _answered(run: Run, model: str, status: int = 200) -> int:
    return sum(1 for e in sim_requests(run.sim, CHAT_PATH, model) if e["status"] == status)


def _chat_rows(run: Run, model: str) -> list[Row]:
    return [r for r in run.rows() if r.probe == "chat" and r.model == model]


# -- through Prometheus ----------------------------------------------------------


def test_success_gauge_matches_the_last_probe_of_each_model(run: Run) -> None:
    def check() -> None:
        assert run.prom_value('nexomon_probe_success{probe="models",model=""}') == 1
        assert run.prom_value('nexomon_probe_success{model="m-ok"}') == 1
        assert run.prom_value('nexomon_probe_success{model="m-fail"}') == 0
        last = [r for r in _chat_rows(run, "m-limited") if r.outcome != "skipped"][-1]
        expected = 1 if last.outcome == "ok" else 0
        assert run.prom_value('nexomon_probe_success{model="m-limited"}') == expected

    eventually(check)


def test_latency_histogram_counts_every_ok_answer_in_the_right_buckets(run: Run) -> None:
    def check() -> None:
        answered = _answered(run, "m-ok")
        assert answered >= 3
        count = run.prom_value('nexomon_probe_duration_seconds_count{model="m-ok"}')
        assert count == answered
        buckets = {
            r["metric"]["le"]: float(r["value"][1])
            for r in run.prom.query('nexomon_probe_duration_seconds_bucket{model="m-ok"}')
        }
        bounds = sorted((float(le), v) for le, v in buckets.items())
        assert [v for _, v in bounds] == sorted(v for _, v in bounds)  # cumulative
        assert buckets["+Inf"] == count
        assert buckets["0.01"] == buckets["0.02"] == 0  # the simulator waits 25 ms at least
        total = run.prom_value('nexomon_probe_duration_seconds_sum{model="m-ok"}')
        assert total >= 0.025 * count
        # Failures are no latency samples (the report's population: ok only);
        # nexomon_probes_total counts them.
        failed = len(sim_requests(run.sim, CHAT_PATH, "m-fail"))
        assert failed >= 1
        assert run.prom.query('nexomon_probe_duration_seconds_count{model="m-fail"}') == []

    eventually(check)


def test_tokens_total_is_the_usage_the_simulator_answered(run: Run) -> None:
    per_prompt, per_completion = usage_per_answer(PROMPT, REPLY, MAX_TOKENS)

    def check() -> None:
        for model in ("m-ok", "m-limited"):
            answered = _answered(run, model)
            assert answered >= 1
            tokens = {
                r["metric"]["type"]: float(r["value"][1])
                for r in run.prom.query(f'nexomon_tokens_total{{model="{model}"}}')
            }
            assert tokens == {
                "input": answered * per_prompt,
                "output": answered * per_completion,
            }, model
        # A 5xx answer carries no usage: no token series at all.
        assert run.prom.query('nexomon_tokens_total{model="m-fail"}') == []

    eventually(check)
    # The stored rows agree, row by row.
    for row in _chat_rows(run, "m-ok"):
        assert (row.prompt_tokens, row.completion_tokens) == (per_prompt, per_completion)


def test_ratelimit_series_carry_the_simulators_headers(run: Run) -> None:
    def check() -> None:
        assert run.prom_value('nexomon_ratelimit_limit{model="m-ok"}') == 1000
        # The bucket refills 1000/s, so it is full again at every probe.
        assert run.prom_value('nexomon_ratelimit_remaining{model="m-ok"}') == 999
        limited = '{model="m-limited",kind="requests"}'
        assert run.prom_value(f"nexomon_ratelimit_limit{limited}") == 2
        # Once refused, the bucket never holds 2 tokens again at 1 token per 4 s.
        assert run.prom_value(f"nexomon_ratelimit_remaining{limited}") == 0
        tokens = '{model="m-limited",kind="tokens"}'
        assert run.prom_value(f"nexomon_ratelimit_limit{tokens}") == 2000
        assert run.prom_value(f"nexomon_ratelimit_remaining{tokens}") == 0
        # m-ok's NexoRouter-style headers carry no tokens kind and no reset.
        assert run.prom.query('nexomon_ratelimit_limit{model="m-ok",kind="tokens"}') == []
        assert run.prom.query('nexomon_ratelimit_reset_seconds{model="m-ok"}') == []
        answered = [r for r in _chat_rows(run, "m-limited") if r.outcome != "skipped"]
        last = answered[-1]
        assert last.ratelimit_reset_s is not None and last.ratelimit_remaining_tokens == 0
        reset = run.prom_value(f"nexomon_ratelimit_reset_seconds{limited}")
        assert reset == pytest.approx(last.ratelimit_reset_s)
        last_429 = [r for r in _chat_rows(run, "m-limited") if r.outcome == "rate_limited"][-1]
        retry = run.prom_value('nexomon_ratelimit_retry_after_seconds{model="m-limited"}')
        assert retry == last_429.retry_after_s

    eventually(check)


def test_a_substituted_model_is_stored_counted_and_shown(run: Run) -> None:
    ok = [r for r in _chat_rows(run, "m-limited") if r.outcome == "ok"]
    assert ok and {r.substituted_by for r in ok} == {"m-cheap"}
    assert {r.substituted_by for r in _chat_rows(run, "m-ok")} == {None}

    def check() -> None:
        counted = run.prom_value('nexomon_model_substitutions_total{model="m-limited"}')
        assert counted == len(ok)
        assert run.prom_value('nexomon_model_substituted{model="m-limited"}') == 1
        assert run.prom_value('nexomon_model_substituted{model="m-ok"}') == 0
        assert run.prom_value('nexomon_model_substitutions_total{model="m-ok"}') == 0

    eventually(check)
    status = httpx.get(f"{run.daemon.url}/api/v1/status", timeout=10).json()
    last = {(r["probe"], r["model"]): r for r in status["last_results"]}
    assert last["chat", "m-ok"]["substituted_by"] is None
    limited = last["chat", "m-limited"]
    if limited["outcome"] == "ok":  # its last result may be a 429 or a skip
        assert (limited["substituted_by"], limited["response_model"]) == ("m-cheap", "m-cheap")


def test_catalog_series_match_the_listing(run: Run) -> None:
    listed = [m.id for m in run.sim.simulator.listed_models()]
    assert listed == MODELS

    def check() -> None:
        assert run.prom_value('nexomon_catalog_size{target="sim"}') == len(listed)
        flags = {
            r["metric"]["model"]: float(r["value"][1])
            for r in run.prom.query('nexomon_model_listed{target="sim"}')
        }
        assert flags == {model: 1.0 for model in listed}

    eventually(check)


def test_skipped_runs_are_counted_in_prometheus_and_stored(run: Run) -> None:
    skipped = [r for r in _chat_rows(run, "m-limited") if r.outcome == "skipped"]
    assert skipped
    assert all("retry-after" in (r.error or "") for r in skipped)

    def check() -> None:
        counted = run.prom_value(
            'nexomon_probes_total{model="m-limited",probe="chat",outcome="skipped"}'
        )
        assert counted == len(skipped)
        for outcome in ("ok", "rate_limited"):
            expr = f'nexomon_probes_total{{model="m-limited",probe="chat",outcome="{outcome}"}}'
            stored = sum(1 for r in _chat_rows(run, "m-limited") if r.outcome == outcome)
            assert run.prom_value(expr) == stored

    eventually(check)


def test_scheduler_lag_is_observed(run: Run) -> None:
    def check() -> None:
        runs = len(run.rows())  # every job run leaves a row
        assert run.prom_value("nexomon_scheduler_lag_seconds_count") >= runs

    eventually(check)
    assert run.prom.query("nexomon_scheduler_misfires_total")  # exported, even at 0


# -- the 429 rule, from the simulator's request log --------------------------------


def test_no_chat_request_before_retry_after_has_passed(run: Run) -> None:
    by_request = {r.request_id: r for r in run.rows() if r.request_id}
    log = sim_requests(run.sim, CHAT_PATH, "m-limited")
    refusals = [e for e in log if e["status"] == 429]
    assert len(refusals) >= 2
    for refusal in refusals:
        retry_after = by_request[refusal["request_id"]].retry_after_s
        assert retry_after is not None and retry_after >= 1
        later = [e["t"] for e in log if e["t"] > refusal["t"]]
        if later:
            # 10 ms of slack: the simulator stamps arrival with time.time(),
            # the daemon holds with time.monotonic() from when it read the 429.
            assert later[0] - refusal["t"] >= retry_after - 0.01, (refusal, later[0])
    # No storm: never two refusals in a row without a hold in between, and
    # every hold second shows up as a skipped run instead of a request.
    statuses = [e["status"] for e in log]
    assert all(not (a == 429 and b == 429) for a, b in pairwise(statuses))


# -- the live /metrics, HTTP routes and logs --------------------------------------


def test_promtool_check_metrics_is_clean_on_live_output(run: Run) -> None:
    promtool = need_binary("promtool")
    text = run.daemon.get("/metrics").text
    assert "nexomon_probe_success" in text
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""


def test_health_and_readiness(run: Run) -> None:
    assert run.daemon.get("/healthz").status_code == 200
    ready = run.daemon.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_status_api_has_last_results_availability_and_p95(run: Run) -> None:
    body = run.daemon.get("/api/v1/status").json()
    last = {(r["probe"], r["model"]): r for r in body["last_results"]}
    assert set(last) == {("models", "")} | {("chat", m) for m in MODELS}
    window = {(r["probe"], r["model"]): r for r in body["window_24h"]}
    assert set(window) == set(last)
    for model in MODELS:
        stored = _chat_rows(run, model)
        assert window["chat", model]["probes"] == len(stored)
        assert window["chat", model]["last"]["outcome"] == stored[-1].outcome
    assert window["chat", "m-ok"]["availability_pct"] == 100.0
    assert window["chat", "m-fail"]["availability_pct"] == 0.0
    assert window["chat", "m-ok"]["p95_s"] >= 0.025


def test_json_logs_one_line_per_state_change(run: Run) -> None:
    """No line per failed probe; a change into down, refused or up is logged once."""
    entries = json_lines(run.daemon.log())
    assert entries and all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)
    messages = [e["msg"] for e in entries if e["logger"] == "nexomon.probe"]
    for model in MODELS:
        name = f"sim/chat/{model}"
        states = [state_of(Outcome(r.outcome)) for r in _chat_rows(run, model)]
        tried = [s for s in states if s is not None]  # skipped is no state
        changes = [b for a, b in pairwise(["up", *tried]) if a != b]
        assert sum(m.startswith(f"{name} is DOWN (") for m in messages) == changes.count("down")
        assert sum(m.startswith(f"{name} is REFUSED (") for m in messages) == changes.count(
            "refused"
        )
        assert sum(m.startswith(f"{name} is back UP after ") for m in messages) == changes.count(
            "up"
        )
        assert not any(m.startswith(f"{name} failed: ") for m in messages), model
    assert any(m.startswith("sim/chat/m-limited is REFUSED (rate_limited") for m in messages)
    assert not any(m.startswith("sim/chat/m-limited is DOWN") for m in messages)


# -- last: stopping the shared daemon ---------------------------------------------


def test_sigterm_flushes_every_row_and_exits_0(run: Run) -> None:
    assert run.daemon.stop(signal.SIGTERM, timeout=60) == 0
    rows = run.rows()
    sent = sim_requests(run.sim)
    sent_ids = Counter(e["request_id"] for e in sent)
    written_ids = Counter(r.request_id for r in rows if r.outcome != "skipped")
    assert written_ids == sent_ids  # each request exactly one row
    skipped = [r for r in rows if r.outcome == "skipped"]
    assert len(rows) == len(sent) + len(skipped)
    assert all(r.request_id is None for r in skipped)  # no request left for them
