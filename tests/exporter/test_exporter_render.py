"""The stepped scrape: Exporter.render_async and SeriesExposition.render_steps.

Same output as generate_latest (families compared), work split into steps
with turns of the event loop between them, observations arriving between
steps shown by the next scrape, concurrent scrapes, and the web route
awaiting a coroutine renderer on the loop.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from test_exporter import result
from test_exposition import families

from monitor.daemon.web import build_app, serve
from monitor.exporter.exporter import Exporter

MODELS = 120


def loaded_exporter() -> tuple[Exporter, CollectorRegistry]:
    registry = CollectorRegistry()
    exporter = Exporter(registry, version="1.2.3")
    exporter.configure_target("gw", max_models=MODELS + 10)
    for i in range(MODELS):
        exporter.observe(result(model=f"m{i}", duration_s=0.1 + i / 1000))
    return exporter, registry


async def render_counting_turns(
    exporter: Exporter, registry: CollectorRegistry
) -> tuple[bytes, int]:
    """render_async's text, and how many times another task ran meanwhile."""
    turns = 0
    done = False

    async def ticker() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker is running
    start = turns
    text = await exporter.render_async(registry)
    done = True
    await task
    return text, turns - start


async def test_stepped_render_matches_generate_latest_and_lets_the_loop_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("monitor.exporter.render.RENDER_SLICE_S", 0.0)  # a step per batch
    exporter, registry = loaded_exporter()
    # First scrape: every series is new (re-planned 4 models per step).
    text, turns = await render_counting_turns(exporter, registry)
    assert families(text) == families(generate_latest(registry))
    assert turns >= MODELS // 4
    # Every model gets a new value: the refill path.
    for i in range(MODELS):
        exporter.observe(result(model=f"m{i}", duration_s=2.0, ratelimit_remaining=i))
    text, _ = await render_counting_turns(exporter, registry)
    assert families(text) == families(generate_latest(registry))
    assert text == exporter.render(registry)  # the threaded path: byte for byte


def test_render_steps_yield_between_filled_keys() -> None:
    exporter, registry = loaded_exporter()
    exporter.render(registry)  # plans made
    for i in range(10):
        exporter.observe(result(model=f"m{i}", duration_s=3.0))
    steps = list(exporter._exposition.render_steps(exporter._children_of, slice_s=0.0))
    # slice_s=0: a step after every refilled key (10 models, and the target's
    # phase histograms under the key (gw, "")), then the text.
    assert steps[:-1] == [None] * 11
    assert isinstance(steps[-1], bytes)
    assert families(steps[-1] + exporter._renderer._rest(registry)) == families(
        generate_latest(registry)
    )


def test_a_busy_loop_cannot_starve_a_stepped_render() -> None:
    # Between steps the "loop" runs 5 ms of other work. Without a share, the
    # render steps after every key; with a share it works on until it has had
    # that share of the time since it began, so it needs far fewer steps.
    def steps_taken(**share: float) -> int:
        exporter, registry = loaded_exporter()
        exporter.render(registry)
        for i in range(MODELS):
            exporter.observe(result(model=f"m{i}", duration_s=4.0))
        steps = 0
        for text in exporter._exposition.render_steps(exporter._children_of, slice_s=0.0, **share):
            if text is None:
                steps += 1
                time.sleep(0.005)  # the busy loop's other callbacks
        return steps

    assert steps_taken() == MODELS + 1  # and the phase histograms' key
    assert steps_taken(min_share=0.5) < MODELS // 4
    # The share rises with age: 20 ms after it began the render gets all the
    # time (it cannot fall that far behind again) and finishes in one go.
    assert steps_taken(ramp_s=0.02) < 10


async def test_results_arriving_mid_scrape_are_in_the_next_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("monitor.exporter.render.RENDER_SLICE_S", 0.0)  # a step per key
    exporter, registry = loaded_exporter()
    await exporter.render_async(registry)
    for i in range(MODELS):
        exporter.observe(result(model=f"m{i}", duration_s=1.5))
    scrape = asyncio.create_task(exporter.render_async(registry))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not scrape.done()
    # Between steps: new values, a new model (new series), a forgotten one.
    exporter.observe(result(model="m0", duration_s=9.0, ratelimit_limit=7))
    exporter.observe(result(model="late-model"))
    exporter.forget("gw", "m1")
    await scrape
    text = await exporter.render_async(registry)
    assert families(text) == families(generate_latest(registry))
    assert b'model="late-model"' in text and b'model="m1"' not in text


async def test_two_scrapes_at_once_both_complete_equal() -> None:
    exporter, registry = loaded_exporter()
    first, second = await asyncio.wait_for(
        asyncio.gather(exporter.render_async(registry), exporter.render_async(registry)), 30
    )
    assert families(first) == families(second) == families(generate_latest(registry))


async def test_the_metrics_route_awaits_a_coroutine_renderer_on_the_loop() -> None:
    exporter, registry = loaded_exporter()
    threads: list[int] = []

    async def render(reg: CollectorRegistry) -> bytes:
        threads.append(threading.get_ident())
        return await exporter.render_async(reg)

    app = build_app(
        registry=registry,
        ready=lambda: (True, ""),
        status=dict,
        metrics_token=None,
        render_metrics=render,
    )
    server = await serve(app, "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        await server.stop()
    assert response.status_code == 200
    assert threads == [threading.get_ident()]  # this loop's thread, not a worker
    assert families(response.content) == families(generate_latest(registry))
