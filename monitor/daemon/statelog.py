"""StateLog: the result sink that writes the daemon's probe log lines.

One warning line per failed probe, and one line per state change of a
(target, probe, model): going down (first failure after a success) and
coming back (first success after a failure). Skipped attempts are not a
state: they neither fail nor recover anything.
"""

from __future__ import annotations

import logging

from monitor.outcome import Outcome
from monitor.results import ProbeResult

log = logging.getLogger("nexomon.probe")


class StateLog:
    """Callable sink; keeps the last success/failure per (target, probe, model)."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._up: dict[tuple[str, str, str], bool] = {}

    def __call__(self, result: ProbeResult) -> None:
        if result.outcome is Outcome.SKIPPED:
            return
        key = (result.target, result.probe, result.model)
        name = f"{result.target}/{result.probe}" + (f"/{result.model}" if result.model else "")
        was_up = self._up.get(key)
        self._up[key] = result.success
        if not result.success:
            self._log.warning(
                "%s failed: %s%s",
                name,
                result.outcome.value,
                f" ({result.error})" if result.error else "",
            )
            if was_up:
                self._log.warning("%s is DOWN (%s)", name, result.outcome.value)
        elif was_up is False:
            self._log.info("%s is back UP", name)
