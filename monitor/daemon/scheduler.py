"""Probe jobs on APScheduler 3.x's AsyncIOScheduler.

One job per (target, models) every ``models_interval`` and one per
(target, chat, model) every ``chat_interval``. Jobs are spread over their
interval by a stable hash of their id (so a hundred models do not all fire
at the same instant, and a restart keeps the same spread), run with
``max_instances=1`` and ``coalesce=True``; missed and overlapping runs are
counted as misfires. With ``models = ["*"]`` the chat jobs follow the
catalog: ``sync_chat_jobs`` adds a job for a newly listed model and removes
the job of a delisted one, capped by ``max_models``. A target with
``contract_interval`` also gets one job per documented-contract check
(``monitor.probes.contract.CHECKS``, the check's name in the job's model).
A target with ``stream_interval`` also gets a (target, stream, model) job
for every model it chat-probes, added and removed with the chat job.

Scheduler lag (actual start minus scheduled start) is measured in the job
itself from the interval grid, in wall-clock seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config.model import TargetConfig
from monitor.daemon.probe_round import chat_models
from monitor.daemon.runner import ProbeRunner
from monitor.exporter.exporter import Exporter
from monitor.probes import contract

log = logging.getLogger("nexomon.scheduler")

FIRST_LISTING_WINDOW_S = 2.0
STREAM = "stream"  # monitor.probes.stream.KIND


class LoopScheduler(AsyncIOScheduler):
    """AsyncIOScheduler whose timer runs the due jobs in the timer callback itself.

    Upstream's timer calls ``wakeup``, which is thread-safe by re-posting
    itself through ``call_soon_threadsafe``: a write to the loop's self-pipe,
    one more loop turn and a read, for every due job. The timer already runs
    on the loop's thread, so that hop buys nothing; skipping it measured 103
    -> 67 µs of CPU per job run at 2,000 runs/s (benchmarks/README.md).
    ``wakeup`` from other code (add_job, resume...) is unchanged.
    """

    def _start_timer(self, wait_seconds: float | None) -> None:
        self._stop_timer()
        if wait_seconds is not None:
            self._timeout = self._eventloop.call_later(wait_seconds, self._timer_fired)

    def _timer_fired(self) -> None:
        # AsyncIOScheduler.wakeup without its run_in_event_loop wrapper:
        # stop the timer, run the due jobs, arm the timer for the next one.
        _WAKEUP_ON_LOOP(self)


_WAKEUP_ON_LOOP = AsyncIOScheduler.wakeup.__wrapped__  # type: ignore[attr-defined]


def job_id(target: str, probe: str, model: str = "") -> str:
    return f"{target}/{probe}/{model}"


def spread_offset(key: str, interval: float) -> float:
    """A stable offset in [0, interval) for a job id: spreads jobs over the interval."""
    return (zlib.crc32(key.encode()) / 2**32) * interval


class ProbeScheduler:
    """Owns the AsyncIOScheduler and the probe jobs on it."""

    def __init__(
        self,
        runner: ProbeRunner,
        exporter: Exporter,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runner = runner
        self.exporter = exporter
        self._clock = clock
        self._scheduler = LoopScheduler(timezone=UTC)
        self._scheduler.add_listener(self._on_misfire, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._chat_jobs: dict[str, set[str]] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._scheduler.running

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stops scheduling new runs; runs in flight go on until ``drain`` (call it next).

        Only pauses: APScheduler's asyncio executor cancels the tasks in flight
        when the scheduler shuts down, which would lose their results.
        """
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.pause()

    async def drain(self, timeout: float) -> int:
        """Waits up to ``timeout`` for probes in flight, then shuts the scheduler down
        (cancelling any still running); returns how many were still running."""
        # A job handed to the loop just before the pause has a task that has
        # not started yet; one turn of the loop lets it start, see _stopping
        # and return, so no request leaves after shutdown began.
        await asyncio.sleep(0)
        pending = {t for t in self._inflight if not t.done()}
        still: set[asyncio.Task[None]] = set()
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler.shutdown runs via call_soon_threadsafe
        return len(still)

    def add_target(self, target: TargetConfig) -> None:
        self.exporter.configure_target(target.name, target.max_models)
        self._add_job(target.name, "models", "", target.models_interval)
        if target.contract_interval is not None:  # opt-in: one job per documented check
            for check in contract.CHECKS:
                self._add_job(target.name, contract.KIND, check, target.contract_interval)
        else:  # switched off by a reload: no stale verdicts
            self.exporter.forget_contract(target.name)
        self._chat_jobs[target.name] = set()
        if "*" not in target.models:
            self.sync_chat_jobs(target, ())
        else:
            explicit = [m for m in target.models if m != "*"]
            self.sync_chat_jobs(target, explicit)

    def remove_target(self, name: str) -> None:
        for model in self._chat_jobs.pop(name, set()):
            self._remove_job(name, "chat", model)
            self._remove_job(name, STREAM, model)
        self._remove_job(name, "models", "")
        for check in contract.CHECKS:
            self._remove_job(name, contract.KIND, check)

    def remove_all(self) -> None:
        for name in list(self._chat_jobs):
            self.remove_target(name)

    def sync_chat_jobs(self, target: TargetConfig, listed: Sequence[str] | None) -> None:
        """Makes the chat jobs of a target match what it should probe now.

        ``listed`` is the last /models answer (None when it failed: then the
        jobs stay as they are, a failed listing is no delisting).
        """
        if listed is None:
            return
        wanted = set(chat_models(target, listed))
        current = self._chat_jobs.setdefault(target.name, set())
        # Removals first. The model's nexomon_model_listed 0 series stays (that
        # is the "delisted" signal); its label slot goes to a newcomer on demand.
        for model in sorted(current - wanted):
            self._remove_job(target.name, "chat", model)
            self._remove_job(target.name, STREAM, model)
            self.exporter.forget(target.name, model, keep_listed=True)
            log.info("target %s: stopped probing model %s (no longer listed)", target.name, model)
        for model in sorted(wanted - current):
            self._add_job(target.name, "chat", model, target.chat_interval)
            if target.stream_interval is not None:  # opt-in: streaming is not a stable API
                self._add_job(target.name, STREAM, model, target.stream_interval)
            log.info("target %s: now probing model %s", target.name, model)
        self._chat_jobs[target.name] = wanted

    def chat_jobs(self, target: str) -> frozenset[str]:
        return frozenset(self._chat_jobs.get(target, ()))

    def job_ids(self) -> Iterable[str]:
        return [job.id for job in self._scheduler.get_jobs()]

    def _add_job(self, target: str, probe: str, model: str, interval: float) -> None:
        key = job_id(target, probe, model)
        # The models probe decides what else runs, so it goes first: within a
        # few seconds of start instead of anywhere in its interval.
        window = min(interval, FIRST_LISTING_WINDOW_S) if probe == "models" else interval
        first = self._clock() + spread_offset(key, window)
        start = datetime.fromtimestamp(first, UTC)
        trigger = IntervalTrigger(seconds=interval, start_date=start, timezone=UTC)
        self._scheduler.add_job(
            self._run_job,
            trigger=trigger,
            args=(target, probe, model, first, interval),
            id=key,
            name=key,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval)),
            replace_existing=True,
            # Given, not left to the trigger: a job added before the scheduler
            # starts (every job at start-up) whose first time has passed by then
            # would otherwise wait for the next point of its grid, a whole
            # interval (100 targets: a models probe 60 s late, its chat jobs too).
            next_run_time=start,
        )
        self.exporter.set_interval(target, probe, model, interval)

    def _remove_job(self, target: str, probe: str, model: str) -> None:
        key = job_id(target, probe, model)
        if self._scheduler.get_job(key) is not None:
            self._scheduler.remove_job(key)

    async def _run_job(
        self, target: str, probe: str, model: str, first: float, interval: float
    ) -> None:
        if self._stopping:
            return
        now = self._clock()
        # The latest point of this job's grid at or before now is when it was due.
        due = first + math.floor(max(0.0, now - first) / interval) * interval
        self.exporter.observe_lag(max(0.0, now - due))
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self.runner.run(target, probe, model)
        finally:
            self._inflight.discard(task)  # type: ignore[arg-type]

    def _on_misfire(self, event: JobEvent) -> None:
        # JOB_MISSED: the run was too late; JOB_MAX_INSTANCES: the previous
        # run of the same job was still going. Either way a run did not happen.
        self.exporter.misfire()
        log.warning("job %s skipped a run (late or still running)", event.job_id)
