"""The ``contract`` probe: NexoRouter's documented commitments, checked one by one.

Opt-in (``contract_interval`` per target, e.g. ``"1h"``). Each check is its
own job (``model`` is the check's name, one row and one
``nexomon_contract_check{target,check}`` sample per run) and sends one
request that costs nothing when the gateway keeps its contract:

* ``cors_preflight``: ``OPTIONS /chat/completions`` as a browser sends it
  (``Origin``, ``Access-Control-Request-Method: POST``,
  ``Access-Control-Request-Headers: authorization, content-type``, no key)
  is answered 2xx with ``Access-Control-Allow-Origin`` and an
  ``Access-Control-Allow-Headers`` that names ``authorization`` (a ``*``
  does not cover it, per the Fetch standard) and ``content-type``.
* ``cors_expose_headers``: ``GET /models`` with an ``Origin`` answers with
  ``Access-Control-Allow-Origin`` and exposes ``x-request-id``,
  ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and ``retry-after``.
* ``models_shape``: ``GET /models`` is ``{"object": "list", "data": [...]}``,
  every entry ``{"id": "<non-empty string>", "object": "model", ...}``, and
  the answer carries ``x-request-id``.
* ``request_id``: an error answer (a chat request for a model that does not
  exist) carries ``x-request-id`` and an ``error`` object, with a 4xx.
* ``invalid_temperature`` (3), ``invalid_top_p`` (2), ``invalid_max_tokens``
  (0), ``empty_messages`` (``[]``): refused with a 4xx and an ``error``
  object; a 2xx is a completion the documented rules forbid (and may be
  billed: those requests ask for one token at most), a 5xx a crash.

A check that holds is ``ok``; one that is broken is ``invalid_response``
(``server_error`` for a 5xx, the transport outcome when no answer came),
with the broken rule in ``error``. The invalid-parameter checks need a real
model id, so that the parameter is the only thing wrong: the target's first
explicit model, else the first id ``GET /models`` lists.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from monitor.gateway.classify import classify
from monitor.gateway.exchange import Exchange
from monitor.outcome import Outcome
from monitor.probes.base import ProbeContext, exchange_result
from monitor.probes.models import read_listing
from monitor.results import ProbeResult

KIND = "contract"
ORIGIN = "https://nexomon.invalid"
EXPOSED = ("x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "retry-after")
MISSING_MODEL = "nexomon-contract-check-no-such-model"
# check -> (the invalid field, its value)
INVALID_PARAMETERS: dict[str, tuple[str, Any]] = {
    "invalid_temperature": ("temperature", 3),
    "invalid_top_p": ("top_p", 2),
    "invalid_max_tokens": ("max_tokens", 0),
    "empty_messages": ("messages", []),
}
CHECKS = (
    "cors_preflight",
    "cors_expose_headers",
    "models_shape",
    "request_id",
    *INVALID_PARAMETERS,
)


def _tokens(value: str | None) -> set[str]:
    """A comma-separated header value as a set of lower-case items."""
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


def _verdict(exchange: Exchange, problem: str | None) -> tuple[Outcome, str | None]:
    """``ok`` when ``problem`` is None, else the failure outcome and its line."""
    if exchange.failure is not None or exchange.status is None:
        return classify(exchange)  # no answer to judge: the transport's outcome
    if problem is None:
        return Outcome.OK, None
    if exchange.status >= 500:
        return Outcome.SERVER_ERROR, f"HTTP {exchange.status}: {problem}"
    return Outcome.INVALID_RESPONSE, f"HTTP {exchange.status}: {problem}"


def preflight_problem(exchange: Exchange) -> str | None:
    cors = dict(exchange.cors)
    if not 200 <= (exchange.status or 0) < 300:
        return "the CORS preflight was not answered 2xx"
    if "access-control-allow-origin" not in cors:
        return "the preflight answer has no Access-Control-Allow-Origin"
    allowed = _tokens(cors.get("access-control-allow-headers"))
    if "*" in allowed:  # covers every header but Authorization, which must be named
        allowed.add("content-type")
    missing = sorted({"authorization", "content-type"} - allowed)
    return f"Access-Control-Allow-Headers does not name {', '.join(missing)}" if missing else None


def expose_problem(exchange: Exchange) -> str | None:
    cors = dict(exchange.cors)
    if not exchange.ok_status:
        return "GET /models did not answer 2xx"
    if "access-control-allow-origin" not in cors:
        return "no Access-Control-Allow-Origin on an answer to a request with Origin"
    exposed = _tokens(cors.get("access-control-expose-headers"))
    missing = [name for name in EXPOSED if name not in exposed and "*" not in exposed]
    return f"Access-Control-Expose-Headers lacks {', '.join(missing)}" if missing else None


def models_problem(exchange: Exchange) -> str | None:
    if not exchange.ok_status:
        return "GET /models did not answer 2xx"
    if exchange.parse_error is not None:
        return exchange.parse_error
    listing = read_listing(exchange.body)
    if isinstance(listing, str):
        return listing
    if listing.invalid:
        return listing.detail()
    data = exchange.body["data"]
    if not data:
        return "data is empty"
    for index, entry in enumerate(data):
        if entry.get("object") != "model":
            return f'data[{index}].object is not "model"'
    if exchange.request_id is None:
        return "no x-request-id"
    return None


def refusal_problem(exchange: Exchange, what: str) -> str | None:
    """A request the contract forbids must be refused: 4xx with an error object."""
    status = exchange.status or 0
    has_error = isinstance(exchange.body, dict) and isinstance(exchange.body.get("error"), dict)
    if 200 <= status < 300:
        return f"{what} was accepted (a completion, maybe billed), not refused with a 4xx"
    if not 400 <= status < 500:
        return f"{what} was not refused with a 4xx"
    return None if has_error else f"the refusal of {what} has no error object"


async def _a_model(ctx: ProbeContext) -> str | None:
    explicit = [m for m in getattr(ctx.target, "models", ()) if m != "*"]
    if explicit:
        return explicit[0]
    listing = read_listing((await ctx.client.list_models()).body)
    return None if isinstance(listing, str) or not listing.ids else listing.ids[0]


def _chat_payload(model: str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Reply with OK."}],
        "max_tokens": 1,
    }
    payload.update(changes)
    return payload


async def probe(ctx: ProbeContext, check: str) -> ProbeResult:
    """Run one check (one of ``CHECKS``); the result's ``model`` is its name."""
    client = ctx.client
    judge: Callable[[Exchange], str | None]
    if check == "cors_preflight":
        exchange = await client.request(
            "OPTIONS",
            "/chat/completions",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
                "Authorization": None,  # a browser's preflight carries no credentials
            },
        )
        judge = preflight_problem
    elif check == "cors_expose_headers":
        exchange = await client.request("GET", "/models", headers={"Origin": ORIGIN})
        judge = expose_problem
    elif check == "models_shape":
        exchange = await client.list_models()
        judge = models_problem
    elif check == "request_id":
        exchange = await client.request("POST", "/chat/completions", _chat_payload(MISSING_MODEL))

        def judge(ex: Exchange) -> str | None:
            if ex.request_id is None:
                return "an error answer has no x-request-id"
            return refusal_problem(ex, "a chat request for a model that does not exist")

    elif check in INVALID_PARAMETERS:
        field, value = INVALID_PARAMETERS[check]
        model = await _a_model(ctx)
        if model is None:
            return _no_model(ctx, check)
        exchange = await client.request(
            "POST", "/chat/completions", _chat_payload(model, **{field: value})
        )

        def judge(ex: Exchange) -> str | None:
            return refusal_problem(ex, f"{field} {value!r}")

    else:
        raise ValueError(f"unknown contract check {check!r}")
    outcome, error = _verdict(exchange, judge(exchange))
    result = exchange_result(ctx, KIND, check, exchange, lambda _body: None)
    return result.replace(outcome=outcome, error=error)


def _no_model(ctx: ProbeContext, check: str) -> ProbeResult:
    return ProbeResult(
        started_at=datetime.now(UTC),
        location=ctx.location,
        target=ctx.target.name,
        probe=KIND,
        model=check,
        outcome=Outcome.INVALID_RESPONSE,
        error="no model id to send the request with (GET /models listed none)",
    )
