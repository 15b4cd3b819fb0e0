"""The bounded set of probe outcomes and the rule that maps an exchange to one.

Outcome values are a contract: they are the ``outcome`` label of
``nexomon_probes_total`` and the ``outcome`` column of ``probe_results``.

``classify`` is filled in by the gateway work (see gateway.py).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """What happened to one probe attempt."""

    OK = "ok"
    AUTH_ERROR = "auth_error"  # 401 / 403
    RATE_LIMITED = "rate_limited"  # 429
    CLIENT_ERROR = "client_error"  # any other 4xx
    SERVER_ERROR = "server_error"  # 5xx
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"  # refused, reset, DNS, TLS
    INVALID_RESPONSE = "invalid_response"  # not JSON, wrong shape, usage missing, error in a 200
    SKIPPED = "skipped"  # no request sent: budget reached or waiting out retry-after


# Outcomes that mean "the gateway is down" for availability; the others are
# shown apart (the caller's own problem, or no request at all).
DOWN_OUTCOMES = frozenset(
    {
        Outcome.SERVER_ERROR,
        Outcome.TIMEOUT,
        Outcome.CONNECTION_ERROR,
        Outcome.INVALID_RESPONSE,
    }
)


__all__ = ["DOWN_OUTCOMES", "Outcome", "classify"]  # noqa: F822 (classify: __getattr__)


def __getattr__(name: str) -> Any:
    # ``classify`` is re-exported so callers find the rule beside the set it
    # maps to. Lazily (PEP 562): classify.py imports Outcome from here, and an
    # eager import made ``import monitor.classify`` (or monitor.probes) fail
    # whenever it came before ``import monitor.outcome``.
    if name == "classify":
        from monitor.classify import classify

        return classify
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
