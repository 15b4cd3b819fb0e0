"""ProbeScheduler on a real AsyncIOScheduler with 1 s intervals.

The runner here is a recording stand-in (the scheduler only calls
``runner.run(target, probe, model)``): it lets a test hold a run open for
longer than its interval and count how many runs of a job overlap.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.config.model import TargetConfig
from monitor.daemon.scheduler import ProbeScheduler, job_id, spread_offset
from monitor.exporter.exporter import Exporter
from monitor.outcome import Outcome
from monitor.results import ProbeResult

LOC = {"location": "default"}  # on every series; the Exporter's default location


class RecordingRunner:
    """Records every run; each run takes ``hold_s`` seconds."""

    def __init__(self, hold_s: float = 0.0) -> None:
        self.hold_s = hold_s
        self.runs: Counter[tuple[str, str, str]] = Counter()
        self.running: Counter[tuple[str, str, str]] = Counter()
        self.most_at_once: Counter[tuple[str, str, str]] = Counter()
        self.finished = 0

    async def run(self, target: str, probe: str, model: str = "") -> None:
        key = (target, probe, model)
        self.runs[key] += 1
        self.running[key] += 1
        self.most_at_once[key] = max(self.most_at_once[key], self.running[key])
        try:
            await asyncio.sleep(self.hold_s)
        finally:
            self.running[key] -= 1
        self.finished += 1


def target(**overrides: Any) -> TargetConfig:
    values: dict[str, Any] = {
        "name": "t",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "NEXOMON_TEST_KEY",
        "models_interval": 1.0,
        "chat_interval": 1.0,
        "models": ("*",),
    }
    values.update(overrides)
    return TargetConfig(**values)


def make(hold_s: float = 0.0) -> tuple[ProbeScheduler, RecordingRunner, CollectorRegistry]:
    registry = CollectorRegistry()
    runner = RecordingRunner(hold_s)
    return ProbeScheduler(runner, Exporter(registry, version="test")), runner, registry  # type: ignore[arg-type]


async def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def test_jobs_are_spread_over_their_interval() -> None:
    models = [f"model-{i}" for i in range(50)]
    offsets = [spread_offset(job_id("t", "chat", m), 300.0) for m in models]
    assert all(0 <= o < 300 for o in offsets)
    assert len({round(o, 3) for o in offsets}) == len(models)  # not one instant
    assert max(offsets) - min(offsets) > 150  # over the interval, not bunched at its start
    # Stable: a restart keeps the same spread.
    assert offsets == [spread_offset(job_id("t", "chat", m), 300.0) for m in models]


async def test_first_runs_follow_the_spread_and_the_listing_comes_first() -> None:
    scheduler, _, _ = make()
    now = 1_000_000.0
    scheduler._clock = lambda: now
    scheduler.add_target(target(models=("a", "b", "c", "d"), chat_interval=60.0))
    jobs = {job.id: job for job in scheduler._scheduler.get_jobs()}
    firsts = {
        key: job.trigger.start_date.timestamp() - now
        for key, job in jobs.items()  # start_date is the first run
    }
    assert set(firsts) == {"t/models/"} | {f"t/chat/{m}" for m in "abcd"}
    for model in "abcd":
        key = job_id("t", "chat", model)
        assert abs(firsts[key] - spread_offset(key, 60.0)) < 1e-3
    assert len({round(v, 3) for v in firsts.values()}) == len(firsts)
    assert 0 <= firsts["t/models/"] < 2.0  # the listing decides the rest: it goes first
    for job in jobs.values():
        assert job.max_instances == 1 and job.coalesce


async def test_a_first_run_that_passed_before_the_scheduler_started_still_runs_at_once() -> None:
    # At start-up every job is added before the scheduler starts; with 100
    # targets that took long enough for some listings' first times to pass,
    # and APScheduler then waited for the next point of the grid: an hour here.
    scheduler, runner, _ = make()
    started = time.time()
    scheduler._clock = lambda: started - 10.0  # every first time is 10 s gone at start()
    scheduler.add_target(target(models=("a",), models_interval=3600.0, chat_interval=3600.0))
    scheduler.start()
    try:
        await wait_until(lambda: runner.runs[("t", "models", "")] == 1, timeout=5.0)
    finally:
        scheduler.shutdown()
        await scheduler.drain(10)


async def test_a_run_longer_than_its_interval_never_overlaps_and_counts_misfires() -> None:
    scheduler, runner, registry = make(hold_s=2.5)
    scheduler.add_target(target(models=("slow",)))
    scheduler.start()
    try:
        key = ("t", "chat", "slow")
        await wait_until(lambda: runner.runs[key] >= 2 and runner.finished >= 2)
        misfires = registry.get_sample_value("nexomon_scheduler_misfires_total", LOC)
        assert misfires is not None and misfires >= 1
        assert runner.most_at_once[key] == 1
        lag_count = registry.get_sample_value("nexomon_scheduler_lag_seconds_count", LOC)
        assert lag_count == sum(runner.runs.values())  # every run observed its lag
    finally:
        scheduler.shutdown()
        await scheduler.drain(10)


async def test_shutdown_lets_runs_in_flight_finish() -> None:
    scheduler, runner, _ = make(hold_s=1.5)
    scheduler.add_target(target(models=("m",)))
    scheduler.start()
    await wait_until(lambda: sum(runner.running.values()) >= 1)
    started = sum(runner.runs.values())
    scheduler.shutdown()
    assert await scheduler.drain(10) == 0
    assert runner.finished == started  # nothing was cancelled
    assert not scheduler.running
    await asyncio.sleep(1.5)
    assert sum(runner.runs.values()) == started  # and nothing new started


async def test_drain_gives_up_after_its_timeout() -> None:
    scheduler, runner, _ = make(hold_s=30)
    scheduler.add_target(target(models=("m",)))
    scheduler.start()
    await wait_until(lambda: sum(runner.running.values()) >= 1)
    scheduler.shutdown()
    assert await scheduler.drain(0.2) >= 1
    assert not scheduler.running


def _listing(model_ids: tuple[str, ...]) -> ProbeResult:
    from datetime import UTC, datetime

    return ProbeResult(
        started_at=datetime.now(UTC),
        location="test",
        target="t",
        probe="models",
        model="",
        outcome=Outcome.OK,
        http_status=200,
        duration_s=0.01,
        model_ids=model_ids,
    )


async def test_star_follows_the_catalog_capped_by_max_models_in_listing_order() -> None:
    scheduler, _, registry = make()
    exporter = scheduler.exporter
    t = target(max_models=2)
    scheduler.add_target(t)
    assert scheduler.chat_jobs("t") == frozenset()

    listing = ("z-first", "a-second", "m-third")
    exporter.observe(_listing(listing))
    scheduler.sync_chat_jobs(t, listing)
    # The gateway's order picks both the jobs and the exporter's label slots.
    assert scheduler.chat_jobs("t") == {"z-first", "a-second"}
    listed = {
        m: registry.get_sample_value("nexomon_model_listed", {**LOC, "target": "t", "model": m})
        for m in listing
    }
    assert listed == {"z-first": 1.0, "a-second": 1.0, "m-third": None}

    # A failed listing is no delisting.
    scheduler.sync_chat_jobs(t, None)
    assert scheduler.chat_jobs("t") == {"z-first", "a-second"}

    # z-first disappears: its job and every series go, m-third moves in.
    listing = ("a-second", "m-third")
    exporter.observe(_listing(listing))
    scheduler.sync_chat_jobs(t, listing)
    assert scheduler.chat_jobs("t") == {"a-second", "m-third"}
    assert set(scheduler.job_ids()) == {"t/models/", "t/chat/a-second", "t/chat/m-third"}
    gone = {"target": "t", "probe": "chat", "model": "z-first"}
    assert registry.get_sample_value("nexomon_probe_interval_seconds", {**LOC, **gone}) is None
    first = {**LOC, "target": "t", "model": "z-first"}
    assert registry.get_sample_value("nexomon_model_listed", first) is None
    exporter.observe(_listing(listing))
    third = {"target": "t", "model": "m-third"}
    assert registry.get_sample_value("nexomon_model_listed", {**LOC, **third}) == 1.0

    # A newly listed model ahead in the order takes a slot back.
    listing = ("new-one", "a-second", "m-third")
    scheduler.sync_chat_jobs(t, listing)
    assert scheduler.chat_jobs("t") == {"new-one", "a-second"}


async def test_explicit_models_keep_their_jobs_whatever_the_listing() -> None:
    scheduler, _, _ = make()
    t = target(models=("x", "y"))
    scheduler.add_target(t)
    assert scheduler.chat_jobs("t") == {"x", "y"}
    scheduler.sync_chat_jobs(t, ("other",))
    assert scheduler.chat_jobs("t") == {"x", "y"}


async def test_stream_jobs_follow_the_chat_jobs_only_when_opted_in() -> None:
    scheduler, _, registry = make()
    scheduler.add_target(target(models=("x", "y")))
    assert not any("/stream/" in j for j in scheduler.job_ids())  # off by default
    scheduler.remove_all()
    t = target(stream_interval=30.0)
    scheduler.add_target(t)
    scheduler.sync_chat_jobs(t, ("a", "b"))
    assert {j for j in scheduler.job_ids() if "/stream/" in j} == {"t/stream/a", "t/stream/b"}
    job = {**LOC, "target": "t", "probe": "stream", "model": "a"}
    assert registry.get_sample_value("nexomon_probe_interval_seconds", job) == 30.0
    scheduler.sync_chat_jobs(t, ("b",))  # a delisted model loses both jobs
    assert {j for j in scheduler.job_ids() if j != "t/models/"} == {"t/chat/b", "t/stream/b"}
    scheduler.remove_target("t")
    assert list(scheduler.job_ids()) == []
