"""SubstitutionLog: one log line each time the model answering for another changes.

A gateway that answers a request for model A with model B (a fallback, a
router, a cheaper model) is a failure the probe's outcome does not show: the
answer is ``ok``. The chat probe records ``substituted_by`` on the result;
this sink logs the change, once:

* ``gw/chat/A is answered by B (substitution)`` (WARNING) when the answering
  model becomes B (from A itself, from unknown, or from another substitute);
* ``gw/chat/A is answered by A again after 20m`` (INFO) when it ends.

An answer without a model says nothing and changes nothing; neither does a
failed probe. Times come from ``clock`` (``time.monotonic`` by default).
Used from the event loop only (a runner sink); not thread-safe. The state
is one entry per (target, model) that was ever substituted: bounded by the
exporter's and the scheduler's model limits, dropped when the model ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from monitor.daemon.statelog import format_age
from monitor.results import ProbeResult

log = logging.getLogger("nexomon.probe")


class SubstitutionLog:
    """A result sink: logs the starts, changes and ends of model substitutions."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # (target, model) -> (the substitute, since when)
        self._current: dict[tuple[str, str], tuple[str, float]] = {}

    def __call__(self, result: ProbeResult) -> None:
        if result.response_model is None or result.probe != "chat":
            return
        key = (result.target, result.model)
        known = self._current.get(key)
        substitute = result.substituted_by
        if substitute is not None:
            if known is None or known[0] != substitute:
                self._current[key] = (substitute, self._clock())
                log.warning(
                    "%s/chat/%s is answered by %s (substitution)",
                    result.target,
                    result.model,
                    substitute,
                )
        elif known is not None:
            del self._current[key]
            log.info(
                "%s/chat/%s is answered by %s again after %s",
                result.target,
                result.model,
                result.response_model,
                format_age(self._clock() - known[1]),
            )
