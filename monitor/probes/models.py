"""The ``models`` probe: GET /models, the catalog of model ids.

Documented shape: ``{"object": "list", "data": [{"id": "...", ...}, ...]}``.
Every entry must be an object with a non-empty string ``id``; the first one
that is not is named by index. On success ``model_ids`` holds every listed
id, de-duplicated, in the gateway's order (the daemon applies max_models).
"""

from __future__ import annotations

from typing import Any

from monitor.outcome import Outcome
from monitor.probes.base import ProbeContext, exchange_result
from monitor.results import ProbeResult

KIND = "models"


def check_shape(body: Any) -> str | None:
    """What is wrong with a /models body, or None."""
    if not isinstance(body, dict):
        return f"expected a JSON object, got {type(body).__name__}"
    if body.get("object") != "list":
        return 'object is not "list"'
    data = body.get("data")
    if not isinstance(data, list):
        return "data is not a list"
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            return f"data[{index}] is not an object"
        model_id = entry.get("id")
        if not isinstance(model_id, str):
            return f"data[{index}].id is not a string"
        if not model_id.strip():
            return f"data[{index}].id is empty"
    return None


def model_ids(body: dict[str, Any]) -> tuple[str, ...]:
    """The ids of a body that passed check_shape, first occurrence kept."""
    return tuple(dict.fromkeys(entry["id"] for entry in body["data"]))


async def probe(ctx: ProbeContext, model: str = "") -> ProbeResult:
    """List the target's models; ``model`` is ignored (the result's model is "")."""
    exchange = await ctx.client.list_models()
    result = exchange_result(ctx, KIND, "", exchange, check_shape)
    if result.outcome is Outcome.OK:
        result = result.replace(model_ids=model_ids(exchange.body))
    return result
