"""classify(): the one rule that maps an Exchange to an Outcome and an error line.

Precedence, first match wins:

1. a transport failure: timeout -> TIMEOUT, too_large and decoding ->
   INVALID_RESPONSE, anything else (connection) -> CONNECTION_ERROR;
2. the status: 401/403 -> AUTH_ERROR, 429 -> RATE_LIMITED, other 4xx ->
   CLIENT_ERROR, 5xx -> SERVER_ERROR, any other non-2xx (1xx, 3xx) ->
   INVALID_RESPONSE;
3. a 2xx whose body is empty or not JSON, carries an ``error`` object, or
   fails the probe's shape check (``expect``) -> INVALID_RESPONSE;
4. otherwise OK, with no error.

The error is one short line: ``"HTTP 503: upstream overloaded"`` (the
gateway's own message, cut to about 120 characters, when it sent one),
``"timed out after 5s while connecting"``, ``"connection refused"``.
Every piece of gateway text in it has passed monitor.untrusted.clean (through
``one_line``): valid UTF-8, no API key, one printable line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monitor.gateway.exchange import Exchange
from monitor.gateway.headers import one_line
from monitor.outcome import Outcome

# A shape check: returns what is wrong with a parsed 2xx body, or None.
ShapeCheck = Callable[[Any], str | None]

MESSAGE_LIMIT = 120

# Exchange.failure kinds (monitor.gateway.exchange.FAILURE_*; a test keeps them in step).
FAILURE_OUTCOMES = {
    "timeout": Outcome.TIMEOUT,
    "connection": Outcome.CONNECTION_ERROR,
    "too_large": Outcome.INVALID_RESPONSE,
    "decoding": Outcome.INVALID_RESPONSE,
}


def status_outcome(status: int) -> Outcome | None:
    """The outcome an HTTP status alone decides; None for 2xx."""
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return Outcome.AUTH_ERROR
    if status == 429:
        return Outcome.RATE_LIMITED
    if 400 <= status < 500:
        return Outcome.CLIENT_ERROR
    if 500 <= status < 600:
        return Outcome.SERVER_ERROR
    return Outcome.INVALID_RESPONSE


def gateway_message(body: Any) -> str | None:
    """The gateway's own error text from an OpenAI-style body, one line, or None.

    Understands ``{"error": {"message": ...}}``, ``{"error": "..."}``,
    ``{"message": ...}`` and ``{"detail": ...}`` (FastAPI / Starlette). The
    text is cleaned (monitor.untrusted.clean) and cut to ``MESSAGE_LIMIT``.
    """
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    candidates: list[Any] = []
    if isinstance(error, dict):
        candidates += [error.get("message"), error.get("code"), error.get("type")]
    candidates += [error, body.get("message"), body.get("detail")]
    for text in candidates:
        if isinstance(text, str) and text.strip():
            return one_line(text, MESSAGE_LIMIT)
    return None


def classify(exchange: Exchange, expect: ShapeCheck | None = None) -> tuple[Outcome, str | None]:
    """The outcome of ``exchange`` and its error line (None when OK).

    ``expect`` checks the parsed body of a 2xx answer; it is called only
    on a dict or list that carries no ``error`` object.
    """
    if exchange.failure is not None:
        outcome = FAILURE_OUTCOMES.get(exchange.failure, Outcome.CONNECTION_ERROR)
        return outcome, exchange.failure_detail or exchange.failure
    status = exchange.status
    if status is None:  # a contract breach of the gateway client; still data
        return Outcome.CONNECTION_ERROR, "no response"
    outcome = status_outcome(status)
    if outcome is not None:
        message = gateway_message(exchange.body)
        unexpected = "" if outcome is not Outcome.INVALID_RESPONSE else " (unexpected status)"
        return outcome, f"HTTP {status}{unexpected}" + (f": {message}" if message else "")
    if exchange.parse_error is not None:
        return Outcome.INVALID_RESPONSE, f"HTTP {status}: {exchange.parse_error}"
    body = exchange.body
    if isinstance(body, dict) and body.get("error") not in (None, "", {}):
        message = gateway_message(body) or "error object"
        return Outcome.INVALID_RESPONSE, f"HTTP {status} with an error: {message}"
    if expect is not None:
        problem = expect(body)
        if problem is not None:
            return Outcome.INVALID_RESPONSE, one_line(f"unexpected shape: {problem}", 200)
    return Outcome.OK, None
