"""StateLog: the result sink that writes the daemon's probe log lines.

Each job (target, probe, model) is in one of three states, by the
availability rule of ``monitor.outcome``:

* ``up``: the last attempt was ``ok``;
* ``down``: a ``DOWN_OUTCOMES`` outcome (server_error, timeout,
  connection_error, invalid_response): the gateway failed;
* ``refused``: ``auth_error``, ``rate_limited`` or ``client_error``: the
  gateway answered but refused the probe (key, quota, model). It never counts
  as down, and the log never says DOWN for it.

``skipped`` is no state: it neither fails nor recovers anything, and is not
logged (the budget logs its own reached/reset lines).

Contract, what is logged:

* one line per state change of a job: ``T/chat/M is DOWN (timeout: ...)`` or
  ``... is REFUSED (rate_limited: ...)`` (WARNING) when it enters that state,
  including a job whose very first attempt fails; ``... is back UP after 20m``
  (INFO) when it recovers. A different outcome within the same state (timeout
  then server_error) is not a change. No line per failed attempt.
* while any job of a target is failing (down or refused), one WARNING
  summary per target every ``summary_every_s`` (10 minutes), emitted on the
  first result of that target once the period has passed:
  ``target T: 3 jobs still failing for 20m: chat/a (timeout), ...`` (at most
  ``MAX_NAMED`` jobs named, then ``and N more``). The period starts when the
  target's first job starts failing and stops once none is. A failing job
  that sends no result for twice its interval (removed with the catalog) is
  left out of the summaries.

Times come from ``clock`` (``time.monotonic`` by default) so tests can drive
it. Used from the event loop only (a runner sink); not thread-safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from monitor.outcome import DOWN_OUTCOMES, Outcome
from monitor.results import ProbeResult

log = logging.getLogger("nexomon.probe")

SUMMARY_EVERY_S = 600.0
MAX_NAMED = 5

UP = "up"
DOWN = "down"
REFUSED = "refused"

JobKey = tuple[str, str, str]  # (target, probe, model)


def state_of(outcome: Outcome) -> str | None:
    """``up``, ``down`` or ``refused`` for an outcome; None for ``skipped`` (no state)."""
    if outcome is Outcome.SKIPPED:
        return None
    if outcome is Outcome.OK:
        return UP
    return DOWN if outcome in DOWN_OUTCOMES else REFUSED


def format_age(seconds: float) -> str:
    """``45s``, ``20m``, ``2h05m``, ``3d04h``: a duration for a log line."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


@dataclass
class _Failing:
    """A job that is not up: since when, its latest failing outcome, when last seen."""

    since: float
    state: str
    outcome: Outcome
    last: float  # when its latest result came
    gap: float = 0.0  # the time between its last two results (its interval, roughly)


class StateLog:
    """Callable sink; see the module docstring for what it logs."""

    def __init__(
        self,
        logger: logging.Logger = log,
        *,
        clock: Callable[[], float] = time.monotonic,
        summary_every_s: float = SUMMARY_EVERY_S,
    ) -> None:
        self._log = logger
        self._clock = clock
        self._every = summary_every_s
        self._failing: dict[JobKey, _Failing] = {}
        self._next_summary: dict[str, float] = {}  # target -> when its next summary is due

    def __call__(self, result: ProbeResult) -> None:
        state = state_of(result.outcome)
        if state is None:
            return
        now = self._clock()
        key = (result.target, result.probe, result.model)
        failing = self._failing.get(key)
        if state == UP:
            if failing is not None:
                del self._failing[key]
                self._log.info(
                    "%s is back UP after %s", _name(key), format_age(now - failing.since)
                )
                if not any(k[0] == result.target for k in self._failing):
                    self._next_summary.pop(result.target, None)
            return
        if failing is None or failing.state != state:
            self._log.warning(
                "%s is %s (%s%s)",
                _name(key),
                state.upper(),
                result.outcome.value,
                f": {result.error}" if result.error else "",
            )
        if failing is None:
            self._failing[key] = _Failing(now, state, result.outcome, now)
            self._next_summary.setdefault(result.target, now + self._every)
        else:
            failing.state, failing.outcome = state, result.outcome
            failing.gap, failing.last = now - failing.last, now
        self._maybe_summarize(result.target, now)

    def _maybe_summarize(self, target: str, now: float) -> None:
        due = self._next_summary.get(target)
        if due is None or now < due:
            return
        self._next_summary[target] = now + self._every
        jobs = sorted(
            (
                (k, f)
                for k, f in self._failing.items()
                if k[0] == target and _current(f, now, self._every)
            ),
            key=lambda kf: (kf[1].since, kf[0]),
        )
        if not jobs:
            return
        named = ", ".join(f"{_job(k)} ({f.outcome.value})" for k, f in jobs[:MAX_NAMED])
        more = f", and {len(jobs) - MAX_NAMED} more" if len(jobs) > MAX_NAMED else ""
        self._log.warning(
            "target %s: %d job%s still failing for %s: %s%s",
            target,
            len(jobs),
            "" if len(jobs) == 1 else "s",
            format_age(now - jobs[0][1].since),
            named,
            more,
        )


def _current(failing: _Failing, now: float, every: float) -> bool:
    """Whether a failing job still runs: seen within twice its interval (or the period).

    A job removed while failing (a model that left ``/models``) sends no more
    results; it drops out of the summaries instead of "failing" forever.
    """
    return now - failing.last <= 2 * max(failing.gap, every)


def _job(key: JobKey) -> str:
    """``chat/MODEL`` or ``models``: a job within its target."""
    _target, probe, model = key
    return f"{probe}/{model}" if model else probe


def _name(key: JobKey) -> str:
    """``TARGET/chat/MODEL`` or ``TARGET/models``."""
    return f"{key[0]}/{_job(key)}"
