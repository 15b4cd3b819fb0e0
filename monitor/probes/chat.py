"""The ``chat`` probe: one tiny non-streaming POST /chat/completions per model.

The prompt is the target's ``prompt`` plus a short random nonce
(``[nx-3f9a1c]``) so that no response cache answers in the gateway's place.

Documented shape: ``choices`` a non-empty list whose first entry has
``message.content`` a string; ``usage`` an object with integer
``prompt_tokens`` and ``completion_tokens`` (``total_tokens`` defaults to
their sum). Token counts are recorded whenever ``usage`` is readable, even
when another part of the answer is wrong: the tokens were spent.

The strings kept from the body (``model`` as ``response_model``,
``finish_reason``) are taken out through ``_text``: valid, bounded to their
column, one line, free of the API key (the client already cleaned the body).
An answer naming another model than the one asked for (not a dated or
provider-prefixed form of it: monitor.gateway.substitution) sets
``substituted_by``; it stays an ``ok`` probe, the gateway did answer.
"""

from __future__ import annotations

import random
from typing import Any

from monitor.gateway.headers import one_line
from monitor.gateway.substitution import substitution
from monitor.probes.base import ProbeContext, exchange_result
from monitor.results import ProbeResult

KIND = "chat"


def nonce() -> str:
    # Only has to differ between probes (cache busting), not be unguessable:
    # random's generator, not secrets', whose os.urandom() releases the GIL.
    return f"[nx-{random.getrandbits(24):06x}]"


def _count(value: Any) -> int | None:
    # bool is an int subclass; true/false is not a token count.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def usage_of(body: Any) -> tuple[int, int, int] | None:
    """(prompt, completion, total) tokens from ``usage``, or None when unreadable."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    total = _count(usage.get("total_tokens"))
    return prompt, completion, prompt + completion if total is None else total


def check_shape(body: Any) -> str | None:
    """What is wrong with a chat completion body, or None."""
    if not isinstance(body, dict):
        return f"expected a JSON object, got {type(body).__name__}"
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return "choices is missing or empty"
    first = choices[0]
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        return "choices[0].message is not an object"
    if not isinstance(message.get("content"), str):
        return "choices[0].message.content is not a string"
    if not isinstance(body.get("usage"), dict):
        return "usage is missing"
    if usage_of(body) is None:
        return "usage.prompt_tokens / completion_tokens are not integers"
    return None


def _text(value: Any, limit: int) -> str | None:
    """A string of the body as one clean line (monitor.untrusted.clean through
    one_line) of at most ``limit`` characters; None for anything else."""
    # Limits match the probe_results columns, so a hostile value cannot make
    # the database refuse the row.
    return (one_line(value, limit) or None) if isinstance(value, str) else None


async def probe(ctx: ProbeContext, model: str) -> ProbeResult:
    """Ask ``model`` the target's prompt; record outcome, usage and headers."""
    target = ctx.target
    exchange = await ctx.client.chat(model, f"{target.prompt} {nonce()}", target.max_tokens)
    body = exchange.body
    fields: dict[str, Any] = {}
    if exchange.ok_status and isinstance(body, dict):
        answered = fields["response_model"] = _text(body.get("model"), 255)
        if answered is not None and substitution(model, answered):
            fields["substituted_by"] = answered
        choices = body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            fields["finish_reason"] = _text(choices[0].get("finish_reason"), 64)
        usage = usage_of(body)
        if usage is not None:
            fields.update(prompt_tokens=usage[0], completion_tokens=usage[1], total_tokens=usage[2])
    return exchange_result(ctx, KIND, model, exchange, check_shape, **fields)
