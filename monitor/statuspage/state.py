"""A model's state on the status page, from its last result.

``up``, ``degraded`` (up, but the last answer took longer than the target's
``degraded_latency``), ``down`` (one of ``DOWN_OUTCOMES``), ``refused`` (the
gateway answered but refused the probe: auth, quota, client; never down, as
in ``monitor.outcome``), ``skipped`` (no request sent) and ``unknown`` (no
result). Every state has a word, an icon and a CSS class, so the page never
shows state by colour alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from monitor.outcome import DOWN_OUTCOMES, Outcome
from monitor.results import ProbeResult


class State(StrEnum):
    """What the page says about one model (or a target's ``/models``)."""

    DOWN = "down"
    DEGRADED = "degraded"
    REFUSED = "refused"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"
    UP = "up"


# Sort order: the states someone must look at first.
RANK = {state: index for index, state in enumerate(State)}

ICONS = {
    State.UP: "\u2714",  # check mark
    State.DEGRADED: "\u25b2",  # triangle: slow
    State.DOWN: "\u2716",  # heavy x
    State.REFUSED: "\u2298",  # circled slash: refused
    State.SKIPPED: "\u2016",  # double bar: paused, no request
    State.UNKNOWN: "?",
}

# Why the gateway refused: the words of the state log (auth, quota, client).
REFUSED_KIND = {
    Outcome.AUTH_ERROR: "auth",
    Outcome.RATE_LIMITED: "quota",
    Outcome.CLIENT_ERROR: "client",
}


def outcome_state(outcome: Outcome | str) -> State:
    """The state one outcome stands for, latency aside (``ok`` is ``up``)."""
    outcome = Outcome(outcome)
    if outcome is Outcome.OK:
        return State.UP
    if outcome is Outcome.SKIPPED:
        return State.SKIPPED
    if outcome in DOWN_OUTCOMES:
        return State.DOWN
    return State.REFUSED


@dataclass(frozen=True, slots=True)
class Verdict:
    """A state with its short reason (``"server_error"``, ``"quota"``, ``"1.8 s > 1 s"``)."""

    state: State
    reason: str

    @property
    def icon(self) -> str:
        return ICONS[self.state]

    @property
    def label(self) -> str:
        """The words shown next to the icon: ``"refused (quota)"``, ``"down"``."""
        if self.state is State.REFUSED and self.reason:
            return f"refused ({self.reason})"
        return self.state.value


def verdict(last: ProbeResult | None, degraded_latency_s: float | None = None) -> Verdict:
    """The state of a model whose latest result is ``last``.

    ``degraded_latency_s``: None (off) or the threshold the last ``ok``
    answer's ``duration_s`` must not exceed to be ``up``. The last result
    decides, as on the metrics' ``nexomon_probe_success``: the page shows
    now, the uptime bar and the sparkline show the history.
    """
    if last is None:
        return Verdict(State.UNKNOWN, "no result yet")
    state = outcome_state(last.outcome)
    if state is State.UP:
        slow = (
            degraded_latency_s is not None
            and last.duration_s is not None
            and last.duration_s > degraded_latency_s
        )
        if slow:
            return Verdict(
                State.DEGRADED,
                f"{last.duration_s:.2f} s > {degraded_latency_s:g} s",
            )
        return Verdict(State.UP, "")
    if state is State.REFUSED:
        return Verdict(state, REFUSED_KIND[Outcome(last.outcome)])
    return Verdict(state, str(last.outcome))


def availability_class(availability_pct: float | None) -> str:
    """The CSS class of one uptime-bar cell: ``a-none`` (grey, no data) to ``a-100``."""
    if availability_pct is None:
        return "a-none"
    if availability_pct >= 99.95:
        return "a-100"
    if availability_pct >= 99.0:
        return "a-99"
    if availability_pct >= 95.0:
        return "a-95"
    return "a-low"
