"""The daily budget end to end: the daemon, the simulator on a socket, a real database.

Two chat-probed models, every second. Each probe really costs
``PER_PROBE_USD`` (16 + 2 tokens at $1000 / $2000 per million) and the
runner reserves its worst case, ``RESERVED_USD`` (18 estimated prompt
tokens + ``max_tokens`` 16), before it sends anything.

Overshoot bound: a probe is admitted only while settled spend plus every
outstanding reservation is below the cap, and no probe here costs more
than it reserved, so the day's spend ends in ``[cap, cap + RESERVED)``,
however the two jobs overlap. With the dollar cap of $0.09 the spend
must be exactly $0.10 (the fifth probe is admitted at $0.08) — an
overshoot of $0.01, within the bound; with the token cap of 80 it is 90
tokens (five probes of 18).

Then: the simulator receives no further chat request (its own counter),
both models go on being recorded as ``skipped`` with the budget reason,
the models probe keeps running, and the budget gauges are right. A second
daemon on the same database starts at the stored spend and sends nothing; a
third, whose injected clock (``Daemon(now=)``) says it is the next UTC day,
starts at zero and probes again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from spend_helpers import metric, running_daemon, scenario, wait_until, write_config
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.daemon.root import Daemon
from monitor.simulator.server import RunningSimulator
from monitor.store.db import make_engine
from monitor.store.models import ProbeResultRow

D = Decimal
MODELS = ("sim-a", "sim-b")
PER_PROBE_USD = D("0.02")  # (16 x 1000 + 2 x 2000) / 1e6
PER_PROBE_TOKENS = 18
RESERVED_USD = D("0.05")  # (18 x 1000 + 16 x 2000) / 1e6
RESERVED_TOKENS = 34
PRICING = """
[pricing."sim-a"]
input = 1000
output = 2000

[pricing."sim-b"]
input = 1000
output = 2000
"""
CAPS = {
    "usd": ("[budget]\ndaily_usd = 0.09\n", "daily budget of $0.09 reached"),
    "tokens": ("[budget]\ndaily_tokens = 80\n", "daily budget of 80 tokens reached"),
}


@pytest.fixture(
    params=[("sqlite", "usd"), ("postgresql", "usd"), ("sqlite", "tokens")],
    ids=["sqlite-usd", "postgresql-usd", "sqlite-tokens"],
)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(database URL, cap kind)."""
    backend, cap = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'nexomon.db'}", cap
        return
    cluster = request.getfixturevalue("pg_cluster")
    cluster.start()
    name = cluster.create_database()
    try:
        yield cluster.url(name), cap
    finally:
        cluster.drop_database(name)


def probes(daemon: Daemon, model: str, outcome: str) -> float:
    labels = {"target": "sim", "probe": "chat", "model": model, "outcome": outcome}
    return metric(daemon, "nexomon_probes_total", **labels) or 0.0


async def scrape_budget(daemon: Daemon) -> dict[str, float]:
    """The budget gauges as /metrics serves them (the daemon's server is on this loop)."""
    listen = daemon.config.monitor
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"http://{listen.listen_host}:{listen.listen_port}/metrics")
    text = response.text
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("nexomon_budget_")
    }


def chat_rows(url: str) -> list[ProbeResultRow]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            query = select(ProbeResultRow).where(ProbeResultRow.probe == "chat")
            return list(session.scalars(query.order_by(ProbeResultRow.id)))
    finally:
        engine.dispose()


async def test_cap_stops_chat_requests_and_a_restart_keeps_the_spend(
    tmp_path: Path, case: tuple[str, str]
) -> None:
    url, cap = case
    budget_toml, reason = CAPS[cap]
    with RunningSimulator(scenario(*MODELS)) as sim:
        stats = sim.simulator.stats
        config = write_config(
            tmp_path / "cfg",
            sim.base_url,
            target={"models": list(MODELS)},
            extra=PRICING + budget_toml,
            database_url=url,
        )

        # -- first run: spend up to the cap --------------------------------
        async with running_daemon(config) as daemon:
            budget = daemon.runner.budget  # type: ignore[union-attr]
            await wait_until(
                lambda: (
                    budget.exhausted and budget.reserved_usd == 0 and budget.reserved_tokens == 0
                ),
                "the cap reached with nothing in flight",
            )
            sent = stats.chat_requests()
            listings = stats.models_requests
            skipped_before = {m: probes(daemon, m, "skipped") for m in MODELS}
            await wait_until(
                lambda: (
                    all(probes(daemon, m, "skipped") >= skipped_before[m] + 2 for m in MODELS)
                    and stats.models_requests >= listings + 2
                ),
                "two more skipped runs per model and two more listings",
            )
            assert stats.chat_requests() == sent  # not one chat request after the cap

            spent_usd, spent_tokens = budget.spent_usd, budget.spent_tokens
            assert sent == 5
            assert spent_usd == sent * PER_PROBE_USD
            assert spent_tokens == sent * PER_PROBE_TOKENS
            if cap == "usd":
                assert D("0.09") <= spent_usd < D("0.09") + RESERVED_USD
                assert spent_usd == D("0.10")
            else:
                assert 80 <= spent_tokens < 80 + RESERVED_TOKENS
            gauges = await scrape_budget(daemon)
            assert gauges["nexomon_budget_spent_usd"] == float(spent_usd)
            expected_limit = 0.09 if cap == "usd" else float("inf")
            assert gauges["nexomon_budget_limit_usd"] == expected_limit
            assert metric(daemon, "nexomon_budget_spent_usd") == float(spent_usd)
            assert budget.reason() == reason

        rows = chat_rows(url)
        ok = [r for r in rows if r.outcome == "ok"]
        assert len(ok) == sent
        assert sum(r.cost_usd for r in ok) == spent_usd
        assert sum(r.total_tokens for r in ok) == spent_tokens
        last_ok = max(r.id for r in ok)
        after_cap = [r for r in rows if r.id > last_ok]
        assert {r.outcome for r in after_cap} == {"skipped"}
        assert {r.model for r in after_cap} == set(MODELS)
        assert {r.error for r in after_cap} == {reason}
        assert all(r.http_status is None and r.cost_usd is None for r in after_cap)

        # -- restart on the same database: still capped --------------------
        async with running_daemon(config) as again:
            assert metric(again, "nexomon_budget_spent_usd") == float(spent_usd)
            assert again.runner.budget.spent_tokens == spent_tokens  # type: ignore[union-attr]
            listings = stats.models_requests
            await wait_until(
                lambda: (
                    all(probes(again, m, "skipped") >= 2 for m in MODELS)
                    and stats.models_requests >= listings + 1
                ),
                "skipped runs of both models and a listing after the restart",
            )
            assert stats.chat_requests() == sent
            assert all(probes(again, m, "ok") == 0 for m in MODELS)
            assert (await scrape_budget(again))["nexomon_budget_spent_usd"] == float(spent_usd)

        # -- a start on the next UTC day: today's spend is zero, probing resumes
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        async with running_daemon(config, now=lambda: tomorrow) as next_day:
            assert metric(next_day, "nexomon_budget_spent_usd") == 0
            await wait_until(lambda: stats.chat_requests() > sent, "a chat request on the new day")
