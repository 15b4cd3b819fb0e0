"""LoopScheduler: due jobs run from the timer callback, not via the self-pipe.

Real APScheduler and a real event loop; the spy only counts calls of the
loop's ``call_soon_threadsafe`` (the thread-safe hop upstream's timer takes
for every due job) and forwards them.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.daemon.scheduler import LoopScheduler


async def _count_runs(
    scheduler: AsyncIOScheduler, seconds: float, interval: float
) -> tuple[int, int]:
    """(job runs, call_soon_threadsafe calls) over ``seconds`` with one job every ``interval``."""
    loop = asyncio.get_running_loop()
    hops = 0
    original = loop.call_soon_threadsafe

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return original(*args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1

    start = datetime.now(UTC) + timedelta(seconds=interval)
    scheduler.add_job(job, IntervalTrigger(seconds=interval, start_date=start, timezone=UTC))
    scheduler.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
    return runs, hops


def test_due_jobs_run_without_the_thread_safe_hop() -> None:
    runs, hops = asyncio.run(_count_runs(LoopScheduler(timezone=UTC), 1.0, 0.05))
    assert runs >= 10
    # start() and shutdown() hop once each; the timer never does.
    assert hops <= 3


def test_upstream_scheduler_hops_once_per_wakeup() -> None:
    # The cost LoopScheduler removes: the same run on AsyncIOScheduler hops per run.
    runs, hops = asyncio.run(_count_runs(AsyncIOScheduler(timezone=UTC), 1.0, 0.05))
    assert runs >= 10
    assert hops >= runs


def test_pause_resume_and_add_job_from_another_thread() -> None:
    async def scenario() -> tuple[int, int, int]:
        scheduler = LoopScheduler(timezone=UTC)
        runs: list[str] = []

        async def job(name: str) -> None:
            runs.append(name)

        scheduler.start()
        # add_job from a thread still wakes the loop through upstream's wakeup.
        adder = threading.Thread(
            target=scheduler.add_job,
            args=(job, IntervalTrigger(seconds=0.05, timezone=UTC)),
            kwargs={"args": ("a",)},
        )
        adder.start()
        adder.join()
        await asyncio.sleep(0.5)
        before_pause = len(runs)
        scheduler.pause()
        await asyncio.sleep(0.3)
        while_paused = len(runs) - before_pause
        scheduler.resume()
        await asyncio.sleep(0.5)
        after_resume = len(runs) - before_pause - while_paused
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
        return before_pause, while_paused, after_resume

    before_pause, while_paused, after_resume = asyncio.run(scenario())
    assert before_pause >= 3
    assert while_paused <= 1  # a run already handed to the loop may still start
    assert after_resume >= 3
