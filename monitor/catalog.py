"""Model-list diffs: a target's ``/models`` ids against the stored catalog.

A restart is not a change: the stored ``catalog_models`` rows are the
baseline, so an identical list after a restart yields no events. The
first-ever listing of a target is a baseline too: it records its models in
``catalog_models`` (first_seen) but no ``added`` events, so a fresh install
does not report its whole catalog as "changed" (nexomon_catalog_changes_total
and any alert on it stay quiet). Models listed later are ``added``; models
that disappear are ``removed``; a model that comes back is ``added`` again.

A listing's events are bounded (a hostile gateway alternating two lists of
50,000 ids must not write 100,000 rows a minute): with a ``limit``, at most
``limit`` events per direction name a model, and the rest of that direction
becomes one summary event with ``model == ""`` and ``count`` = how many
models it stands for. So one listing yields at most ``2 * limit + 2`` events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Change = Literal["added", "removed"]

# The longest model id that is stored, labelled or chat-probed (the width of
# the model columns). A gateway's longer ids are not usable ids; they are
# left out of the catalog instead of making the database refuse the row.
MAX_MODEL_ID_LENGTH = 255


def usable_ids(ids: Iterable[str]) -> tuple[str, ...]:
    """``ids`` without those too long to store."""
    return tuple(m for m in ids if len(m) <= MAX_MODEL_ID_LENGTH)


@dataclass(frozen=True, slots=True)
class CatalogEvent:
    """One real change in a target's model list."""

    at: datetime
    location: str
    target: str
    model: str  # "" for a summary event
    change: Change
    count: int = 1  # models this event stands for: more than 1 only in a summary event

    @property
    def summary(self) -> bool:
        return self.model == ""


@dataclass(frozen=True, slots=True)
class CatalogDiff:
    added: frozenset[str]
    removed: frozenset[str]
    baseline: bool  # the target had no stored catalog: nothing counts as a change

    def events(
        self, *, at: datetime, location: str, target: str, limit: int | None = None
    ) -> list[CatalogEvent]:
        """The changes as events, in id order; beyond ``limit`` per direction one summary."""
        if self.baseline:
            return []
        out: list[CatalogEvent] = []
        for change, models in (("added", self.added), ("removed", self.removed)):
            named = sorted(models)
            rest = 0 if limit is None else max(0, len(named) - limit)
            out += [
                CatalogEvent(at, location, target, m, change) for m in named[: len(named) - rest]
            ]
            if rest:
                out.append(CatalogEvent(at, location, target, "", change, rest))
        return out


def diff(stored: dict[str, bool] | None, listed: Iterable[str]) -> CatalogDiff:
    """Compare ``stored`` ({model: listed flag}, None when the target is unknown)
    with the ids of a new listing."""
    now = frozenset(listed)
    if not stored:
        return CatalogDiff(added=now, removed=frozenset(), baseline=True)
    was = frozenset(m for m, flag in stored.items() if flag)
    return CatalogDiff(added=now - was, removed=was - now, baseline=False)
