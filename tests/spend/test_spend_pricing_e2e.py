"""Prices end to end: the daemon against the simulator on a socket, rows and metrics checked.

Three models on one target: ``sim-a`` priced at the top level only,
``sim-b`` priced at the top level AND by the target (the target's price
must win), ``sim-c`` without any price. Every stored ``cost_usd`` must be
the exact Decimal of the row's usage times its price; the exported
``nexomon_cost_usd_total`` must be the same sum; the unpriced model must
set ``nexomon_model_unpriced`` to 1, log one warning however many probes
ran, and show ``unknown`` in ``nexomon report``.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest
from spend_helpers import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    metric,
    run_cli,
    running_daemon,
    scenario,
    wait_until,
    write_config,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.simulator.server import RunningSimulator
from monitor.store.db import make_engine
from monitor.store.models import ProbeResultRow

D = Decimal
# USD per million tokens. Odd digits so a wrong price cannot give the right sum.
PRICES = {
    "sim-a": (D("0.37"), D("1.13")),  # top level only
    "sim-b": (D("2.71"), D("8.09")),  # the target's override (top level says 0.1 / 0.4)
}
PROBES_PER_MODEL = 3

EXTRA = """
[pricing."sim-a"]
input = 0.37
output = 1.13

[pricing."sim-b"]
input = 0.10
output = 0.40

[targets.pricing."sim-b"]
input = 2.71
output = 8.09
"""


def exact(model: str, prompt: int, completion: int) -> Decimal:
    price_in, price_out = PRICES[model]
    return (prompt * price_in + completion * price_out) / 1_000_000


async def test_target_price_wins_and_cost_is_exact_in_rows_and_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.WARNING, logger="nexomon")
    with RunningSimulator(scenario("sim-a", "sim-b", "sim-c")) as sim:
        config = write_config(
            tmp_path,
            sim.base_url,
            target={"models": ["sim-a", "sim-b", "sim-c"]},
            extra=EXTRA,
        )
        stats = sim.simulator.stats
        async with running_daemon(config) as daemon:
            await wait_until(
                lambda: all(
                    stats.chat_requests(m) >= PROBES_PER_MODEL for m in ("sim-a", "sim-b", "sim-c")
                ),
                f"{PROBES_PER_MODEL} chat requests per model",
            )
        # stopped: every result is exported and flushed to the database

    engine = make_engine(f"sqlite:///{tmp_path / 'nexomon.db'}")
    try:
        with Session(engine) as session:
            rows = session.scalars(
                select(ProbeResultRow)
                .where(ProbeResultRow.probe == "chat")
                .order_by(ProbeResultRow.id)
            ).all()
    finally:
        engine.dispose()

    by_model: dict[str, list[ProbeResultRow]] = {}
    for r in rows:
        by_model.setdefault(r.model, []).append(r)
    for model in ("sim-a", "sim-b", "sim-c"):
        assert len(by_model[model]) == stats.chat_requests(model) >= PROBES_PER_MODEL
        assert {r.outcome for r in by_model[model]} == {"ok"}
        assert {(r.prompt_tokens, r.completion_tokens) for r in by_model[model]} == {
            (PROMPT_TOKENS, COMPLETION_TOKENS)
        }

    for model in ("sim-a", "sim-b"):
        stored = [r.cost_usd for r in by_model[model]]
        assert stored == [
            exact(model, r.prompt_tokens, r.completion_tokens) for r in by_model[model]
        ]
        # the counter adds float(cost) row by row in this same order
        exported = 0.0
        for cost in stored:
            exported += float(cost)
        assert metric(daemon, "nexomon_cost_usd_total", target="sim", model=model) == exported
        assert D(repr(exported)).quantize(D("1e-12")) == sum(stored).quantize(D("1e-12"))
        assert metric(daemon, "nexomon_model_unpriced", target="sim", model=model) == 0
    # the override is used, not the top-level price of sim-b
    assert by_model["sim-b"][0].cost_usd == D("0.00005954")  # (16 x 2.71 + 2 x 8.09) / 1e6
    assert by_model["sim-b"][0].cost_usd != (16 * D("0.10") + 2 * D("0.40")) / 1_000_000

    # unpriced: cost unknown in every row, flagged in the metric, warned once
    assert all(r.cost_usd is None for r in by_model["sim-c"])
    assert metric(daemon, "nexomon_model_unpriced", target="sim", model="sim-c") == 1
    assert metric(daemon, "nexomon_cost_usd_total", target="sim", model="sim-c") is None
    assert metric(daemon, "nexomon_tokens_total", target="sim", model="sim-c", type="input") == (
        PROMPT_TOKENS * len(by_model["sim-c"])
    )
    warnings = [r for r in caplog.records if "no price" in r.getMessage()]
    assert [w.getMessage() for w in warnings] == [
        "target 'sim' model 'sim-c' spent tokens but has no price; its cost is unknown "
        '(add [pricing."sim-c"] to the config)'
    ]

    # nexomon report: unknown, never 0, for sim-c; exact sums for the others
    capsys.readouterr()
    assert run_cli("report", "-c", str(config), "--since", "1d", "--format", "json") == 0
    report = {d["model"]: d for d in json.loads(capsys.readouterr().out) if d["probe"] == "chat"}
    assert report["sim-c"]["cost_usd"] is None and report["sim-c"]["cost_known"] is False
    for model in ("sim-a", "sim-b"):
        assert D(report[model]["cost_usd"]) == sum(r.cost_usd for r in by_model[model])
    assert run_cli("report", "-c", str(config), "--since", "1d") == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if " sim-c " in x)
    assert "unknown" in line.split()
