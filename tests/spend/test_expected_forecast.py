"""The forecast's expected figure: measured tokens and billed share from stored chat rows.

Rows come from the real probe path (``build_runner`` + ``run_round``, as
``nexomon probe --record`` runs it) against a ``RunningSimulator`` into a real
SQLite database; the figures are checked against what the simulator itself
counted (its token rules and its request log), and ``nexomon config check``
is run as a user runs it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from spend_helpers import KEY, run_cli, write_config
from testutil import free_port

from monitor.config import model as config_mod
from monitor.daemon.probe_round import run_round
from monitor.daemon.wiring import build_runner
from monitor.logs import SecretScrubber
from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator
from monitor.simulator.tokens import complete, prompt_tokens
from monitor.spend.budget import Budget
from monitor.spend.expected import MEASURED, WORST_CASE, expected, render_expected
from monitor.spend.forecast import forecast, render_forecast
from monitor.store.batch import write_batch
from monitor.store.db import make_engine
from monitor.store.startup import open_store
from monitor.store.usage_history import MIN_PROBES, load_usage_history

D = Decimal
REPLY = "OK. This is a simulated reply."  # longer than "OK": the worst case is far off
ROUNDS = MIN_PROBES + 2
PRICING = """
[pricing."m-a"]
input = 2.0
output = 8.0
[pricing."m-b"]
input = 1.0
output = 4.0
[pricing."m-c"]
input = 3.0
output = 15.0
"""


def sim_scenario() -> Scenario:
    return Scenario.from_dict(
        {
            "name": "expected",
            "seed": 3,
            "reply": REPLY,
            "api_keys": [KEY],
            "models": {
                "m-a": {"latency_ms": 0},
                "m-b": {"latency_ms": 0, "error_rate": 0.5},
                "m-c": {"latency_ms": 0},
            },
        }
    )


def record_rounds(config_path: Path, rounds: int, budget: Budget | None = None) -> None:
    """``rounds`` probe rounds of ``config_path`` recorded into its database."""
    cfg = config_mod.load(config_path)
    store = open_store(cfg)
    runner, clients = build_runner(
        cfg, SecretScrubber(), sinks=[store.writer.submit], budget=budget
    )

    async def go() -> None:
        try:
            for _ in range(rounds):
                await run_round(runner, cfg)
        finally:
            for client in clients.values():
                await client.aclose()

    try:
        asyncio.run(go())
    finally:
        store.close()


def configs(tmp_path: Path, sim: RunningSimulator) -> tuple[Path, Path]:
    """(recorder: probes m-a and m-b; checker: m-a, m-b and m-c) on one database."""
    db = f"sqlite:///{tmp_path / 'nexomon.db'}"
    target = {"chat_interval": "15s", "max_tokens": 16}
    recorder = write_config(
        tmp_path / "rec",
        sim.base_url,
        target={**target, "models": ["m-a", "m-b"]},
        extra=PRICING,
        database_url=db,
    )
    checker = write_config(
        tmp_path / "check",
        sim.base_url,
        target={**target, "models": ["m-a", "m-b", "m-c"]},
        extra=PRICING,
        database_url=db,
    )
    return recorder, checker


def test_expected_uses_the_measured_tokens_and_billed_share(tmp_path: Path) -> None:
    with RunningSimulator(sim_scenario()) as sim:
        recorder, checker = configs(tmp_path, sim)
        record_rounds(recorder, ROUNDS)
        log = [e for e in sim.simulator.stats.log() if e["path"].endswith("/chat/completions")]

    # What the simulator counted: its prompt rule, its reply cut at max_tokens.
    prompt = prompt_tokens([{"role": "user", "content": "Reply with OK. [nx-0a1b2c]"}])
    completion = complete(REPLY, 16)[1]
    answered_b = sum(1 for e in log if e["model"] == "m-b" and e["status"] == 200)
    sent_b = sum(1 for e in log if e["model"] == "m-b")
    assert sent_b == ROUNDS and 0 < answered_b < ROUNDS  # seed 3: some of each

    cfg = config_mod.load(checker)
    history = load_usage_history(cfg, datetime.now(UTC))
    assert history is not None
    a, b = history.measured("sim", "m-a"), history.measured("sim", "m-b")
    assert a is not None and b is not None
    assert (a.probes, a.billed) == (ROUNDS, ROUNDS)
    assert (b.probes, b.billed) == (sent_b, answered_b)
    assert (a.mean_prompt_tokens, a.mean_completion_tokens) == (prompt, completion)
    assert history.measured("sim", "m-c") is None  # never probed

    worst = forecast(cfg)
    e = expected(worst, cfg, history)
    rows = {r.model: r for r in e.rows}
    runs = D(86400) / 15
    # m-a: every probe billed, at the simulator's counts and the config's price.
    a_run = (prompt * D("2.0") + completion * D("8.0")) / D(10**6)
    assert rows["m-a"].cost_per_run == a_run
    assert rows["m-a"].usd_per_day == a_run * runs
    # m-b: failed probes cost nothing.
    b_run = (prompt * D("1.0") + completion * D("4.0")) / D(10**6) * answered_b / sent_b
    assert rows["m-b"].cost_per_run == b_run
    # m-c: no history, so the worst case, exactly the forecast's row.
    (c_worst,) = [r for r in worst.rows if r.model == "m-c"]
    assert not rows["m-c"].measured
    assert rows["m-c"].cost_per_run == c_worst.cost_per_run
    assert e.usd_per_day == (a_run + b_run) * runs + c_worst.cost_per_run * runs
    # The simulator's reply is shorter than max_tokens and it fails: below the worst case.
    assert e.usd_per_day < worst.usd_per_day

    text = render_expected(e).splitlines()
    assert text[0].startswith("expected from history (chat probes of location spend-test")
    table = {line.split()[1]: line.split() for line in text[2:-1]}
    assert table["m-a"][-1] == MEASURED and table["m-a"][2:4] == [str(ROUNDS), "100.0%"]
    assert table["m-a"][4] == f"{prompt}.0+{completion}.0"
    assert " ".join(table["m-c"][-2:]) == WORST_CASE and table["m-c"][2:4] == ["-", "-"]
    assert text[-1].startswith("expected probe spend from history: $")
    assert text[-1].endswith("; 2 measured, 1 worst case")

    # "*" stands for the models probed in the window that are not listed by name.
    wild = config_mod.load(
        write_config(
            tmp_path / "wild",
            "http://127.0.0.1:9/v1",
            target={"chat_interval": "15s", "models": ["m-a", "*"]},
            extra=PRICING,
            database_url=cfg.monitor.database_url,
        )
    )
    w = expected(forecast(wild), wild, history)
    assert [(r.model, r.measured) for r in w.rows] == [("m-a", True), ("m-b", True)]
    assert w.usd_per_day == (a_run + b_run) * runs


def test_config_check_prints_the_worst_case_then_the_expected_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RunningSimulator(sim_scenario()) as sim:
        recorder, checker = configs(tmp_path, sim)
        record_rounds(recorder, ROUNDS)
        requests = sim.simulator.stats.chat_requests()
        capsys.readouterr()
        assert run_cli("config", "check", "-c", str(checker)) == 0
        assert sim.simulator.stats.chat_requests() == requests  # config check sends nothing
    out = capsys.readouterr().out.splitlines()
    cfg = config_mod.load(checker)
    worst = render_forecast(forecast(cfg)).splitlines()
    assert out[1 : 1 + len(worst)] == worst  # the worst case, unchanged, first
    rest = out[1 + len(worst) :]
    assert rest[0].startswith("expected from history")
    assert [line.split()[-1] for line in rest[2:-1]] == [MEASURED, MEASURED, "case"]
    assert rest[-1].startswith("expected probe spend from history:")


@pytest.mark.parametrize(
    "database_url",
    [
        "missing",  # a SQLite file that does not exist (and must not be created)
        "postgresql://nexomon:secret@127.0.0.1:{port}/nexomon",  # nothing listens there
    ],
)
def test_config_check_without_history_prints_only_the_worst_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    db_file = tmp_path / "nope" / "nexomon.db"
    url = (
        f"sqlite:///{db_file}"
        if database_url == "missing"
        else database_url.format(port=free_port())
    )
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", extra=PRICING, database_url=url)
    (tmp_path / "api.key").chmod(0o600)  # else a (fair) warning on stderr
    capsys.readouterr()
    assert run_cli("config", "check", "-c", str(config)) == 0
    captured = capsys.readouterr()
    cfg = config_mod.load(config)
    assert captured.out.splitlines()[1:] == render_forecast(forecast(cfg)).splitlines()
    assert captured.err == ""
    assert not db_file.parent.exists()  # nothing created
    assert load_usage_history(cfg, datetime.now(UTC)) is None


def test_budget_skips_other_locations_and_old_rows_are_not_counted(tmp_path: Path) -> None:
    with RunningSimulator(sim_scenario()) as sim:
        recorder, _ = configs(tmp_path, sim)
        # m-a alone: a token cap of two answers, then rows skipped for the budget.
        cfg = config_mod.load(recorder)
        answer = prompt_tokens([{"role": "user", "content": "Reply with OK. [nx-0a1b2c]"}])
        answer += complete(REPLY, 16)[1]
        budget = Budget(None, 2 * answer, now=lambda: datetime.now(UTC))
        record_rounds(recorder, 4, budget=budget)
    now = datetime.now(UTC)
    engine = make_engine(cfg.monitor.database_url)
    with engine.begin() as conn:
        skipped = conn.exec_driver_sql(
            "SELECT count(*) FROM probe_results WHERE outcome = 'skipped'"
            " AND error LIKE 'daily budget%'"
        ).scalar()
        old = ok_row(now - timedelta(days=2), cfg.monitor.location)
        elsewhere = ok_row(now, "elsewhere")
        write_batch(conn, [("a" * 32, old), ("b" * 32, elsewhere)])
    engine.dispose()
    assert skipped  # the cap was reached in the rounds above

    history = load_usage_history(cfg, now + timedelta(seconds=1))
    assert history is not None
    a = history.usage[("sim", "m-a")]
    total = 4 * 2  # four rounds of m-a and m-b
    assert a.probes + history.usage[("sim", "m-b")].probes == total - skipped
    assert a.billed == a.probes  # no skip left in: only billed rows remain for m-a
    assert history.measured("sim", "m-a") is None  # fewer than MIN_PROBES


def ok_row(at: datetime, location: str) -> ProbeResult:
    """A billed chat row of m-a that the window or the location must leave out."""
    return ProbeResult(
        started_at=at,
        location=location,
        target="sim",
        probe="chat",
        model="m-a",
        outcome=Outcome.OK,
        http_status=200,
        duration_s=0.1,
        prompt_tokens=1000,
        completion_tokens=1000,
        total_tokens=2000,
        cost_usd=D("0.01"),
    )
