"""The bounded set of probe outcomes and which of them count as down.

Outcome values are a contract: they are the ``outcome`` label of
``nexomon_probes_total`` and the ``outcome`` column of ``probe_results``.

The rule that maps an exchange to one lives with the gateway client
(``monitor.gateway.classify``): this module imports nothing of the project.
"""

from __future__ import annotations

from enum import StrEnum


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
