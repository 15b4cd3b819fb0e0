"""The ``models`` probe: GET /models, the catalog of model ids.

Documented shape: ``{"object": "list", "data": [{"id": "...", ...}, ...]}``.
A body that is not such an object, whose ``object`` is not ``"list"`` or
whose ``data`` is not a list is an invalid response. Within ``data`` one bad
entry does not fail the listing: an entry that is not an object, or whose
``id`` is missing, not a string, empty or only whitespace, is skipped and
counted (``invalid_entries``); the probe stays ``ok`` with a detail in
``error`` ("2 invalid entries skipped (first: data[4].id is not a string)").
Only when no valid id is left is the answer an invalid response, naming the
first problem by index.

On success ``model_ids`` holds every valid id, passed through
monitor.untrusted.clean (cut to ``LISTED_ID_LIMIT``), de-duplicated, in the
gateway's order. Ids over ``monitor.catalog.MAX_MODEL_ID_LENGTH`` stay in it:
the catalog leaves them out of what it stores and probes, and the exporter
counts them in ``nexomon_models_over_limit`` (the daemon applies max_models).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.outcome import Outcome
from monitor.probes.base import ProbeContext, exchange_result
from monitor.results import ProbeResult
from monitor.untrusted import clean

KIND = "models"

# Longer ids are unusable anyway (over MAX_MODEL_ID_LENGTH); cutting them
# keeps a hostile listing's ids from being carried whole into the spool.
LISTED_ID_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class Listing:
    """The usable part of a /models body: valid ids and what was skipped."""

    ids: tuple[str, ...]
    invalid: int = 0
    first_problem: str | None = None

    def detail(self) -> str | None:
        """The ``error`` line of an ok listing that skipped entries, else None."""
        if not self.invalid:
            return None
        if self.invalid == 1:
            return f"1 invalid entry skipped ({self.first_problem})"
        return f"{self.invalid} invalid entries skipped (first: {self.first_problem})"


def read_listing(body: Any) -> Listing | str:
    """The Listing of a /models body, or what makes the whole body unusable."""
    if not isinstance(body, dict):
        return f"expected a JSON object, got {type(body).__name__}"
    if body.get("object") != "list":
        return 'object is not "list"'
    data = body.get("data")
    if not isinstance(data, list):
        return "data is not a list"
    ids: dict[str, None] = {}
    invalid = 0
    first: str | None = None
    for index, entry in enumerate(data):
        model_id = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(model_id, str):
            model_id = clean(model_id, LISTED_ID_LIMIT)
            if model_id.strip():
                ids[model_id] = None
                continue
            problem = f"data[{index}].id is empty"
        elif isinstance(entry, dict):
            problem = f"data[{index}].id is not a string"
        else:
            problem = f"data[{index}] is not an object"
        invalid += 1
        first = first or problem
    if invalid and not ids:
        return first or "no valid id"
    return Listing(tuple(ids), invalid, first)


def check_shape(body: Any) -> str | None:
    """What makes a /models body unusable, or None (skipped entries are not that)."""
    listing = read_listing(body)
    return listing if isinstance(listing, str) else None


def model_ids(body: dict[str, Any]) -> tuple[str, ...]:
    """The valid ids of a body that passed check_shape, first occurrence kept."""
    listing = read_listing(body)
    return listing.ids if isinstance(listing, Listing) else ()


async def probe(ctx: ProbeContext, model: str = "") -> ProbeResult:
    """List the target's models; ``model`` is ignored (the result's model is "")."""
    exchange = await ctx.client.list_models()
    read: list[Listing] = []

    def expect(body: Any) -> str | None:
        # Read once: classify() calls this with the body, the ids come from it.
        listing = read_listing(body)
        if isinstance(listing, str):
            return listing
        read.append(listing)
        return None

    result = exchange_result(ctx, KIND, "", exchange, expect)
    if result.outcome is Outcome.OK and read:
        listing = read[0]
        result = result.replace(
            model_ids=listing.ids,
            invalid_entries=listing.invalid,
            error=listing.detail(),
        )
    return result
