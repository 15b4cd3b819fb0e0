"""The latest result per job for the status page, and the catalog sizes.

Cheap on 1,000 models: the newest raw row per model is already known from
``series.add_raw`` (its id), so most rows are looked up by id, and a
``ResultCache`` keeps those from one render to the next (a stored row never
changes): only the rows written since are fetched. What is still missing
costs a grouped query or an indexed lookup.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from monitor.results import ProbeResult
from monitor.store.models import CatalogModel, ProbeResultRow
from monitor.store.queries import row_to_result

LATEST_WINDOW = timedelta(hours=2)  # the grouped search for jobs without a known row
MAX_LOOKUPS = 200  # older latest rows looked up one by one (index), at most this many

Key = tuple[str, str]  # (target, model)


class ResultCache:
    """Results by row id, as of the last ``latest_results`` that used it.

    Rows are never updated once written, so an id seen before is the same
    result; building one from a full row costs ~30 µs, 30 ms a render at
    1,000 models. Holds only the ids the last read used (one per job).
    """

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[int, ProbeResult] = {}

    def lookup(
        self, conn: Connection, ids: list[int], keep: dict[int, ProbeResult]
    ) -> list[ProbeResult]:
        """The results with these ids (cached or fetched); each is also put in ``keep``."""
        have = self._rows
        missing = [i for i in ids if i not in have]
        p = ProbeResultRow
        for start in range(0, len(missing), 500):  # well under any driver's parameter limit
            query = select(p.__table__).where(p.id.in_(missing[start : start + 500]))
            for row in conn.execute(query):
                keep[row.id] = row_to_result(row)  # type: ignore[arg-type]
        found = []
        for i in ids:
            result = keep.get(i) or have.get(i)
            if result is not None:
                keep[i] = result
                found.append(result)
        return found

    def replace(self, keep: dict[int, ProbeResult]) -> None:
        self._rows = keep  # one assignment: a concurrent read sees the old or the new map


def latest_results(
    conn: Connection,
    location: str,
    now: datetime,
    wanted: set[Key],
    known_ids: list[int] | None = None,
    cache: ResultCache | None = None,
) -> dict[tuple[str, str, str], ProbeResult]:
    """The last row per (target, probe, model).

    Cheapest first: the rows ``known_ids`` names (the newest raw row per
    model, found while reading the raw rows anyway); when a wanted model is
    still missing, the newest row per job over ``LATEST_WINDOW``; then one
    indexed lookup per target's ``/models`` job and per wanted chat model
    still missing (at most ``MAX_LOOKUPS``: a long chat interval). Rows by id
    come through ``cache`` (a fresh one when None).
    """
    p = ProbeResultRow
    cache = cache if cache is not None else ResultCache()
    keep: dict[int, ProbeResult] = {}
    found: dict[tuple[str, str, str], ProbeResult] = {}
    for r in cache.lookup(conn, known_ids or [], keep):
        found[(r.target, r.probe, r.model)] = r
    if any((t, "chat", m) not in found for t, m in wanted) or not wanted:
        newest = (
            select(func.max(p.id))
            .where(p.location == location, p.started_at >= now - LATEST_WINDOW)
            .group_by(p.target, p.probe, p.model)
        )
        extra = [i for i in conn.scalars(newest) if i not in keep]
        for r in cache.lookup(conn, extra, keep):
            found.setdefault((r.target, r.probe, r.model), r)
    cache.replace(keep)
    for target in sorted({t for t, _ in wanted}):
        if (target, "models", "") not in found:
            _newest(conn, found, location, target, "models", "")
    missing = sorted(k for k in wanted if (k[0], "chat", k[1]) not in found)
    for target, model in missing[:MAX_LOOKUPS]:
        _newest(conn, found, location, target, "chat", model)
    return found


def _newest(
    conn: Connection,
    found: dict[tuple[str, str, str], ProbeResult],
    location: str,
    target: str,
    probe: str,
    model: str,
) -> None:
    """Add the newest row of one job to ``found`` (the (target, model, started_at) index)."""
    p = ProbeResultRow
    row = conn.execute(
        select(p.__table__)
        .where(p.target == target, p.model == model, p.location == location, p.probe == probe)
        .order_by(p.started_at.desc())
        .limit(1)
    ).first()
    if row is not None:
        found[(target, probe, model)] = row_to_result(row)  # type: ignore[arg-type]


def catalog_sizes(conn: Connection) -> dict[str, int]:
    """Per target, how many models ``catalog_models`` holds as listed now."""
    c = CatalogModel
    query = select(c.target, func.count()).where(c.listed.is_(True)).group_by(c.target)
    return {target: int(count) for target, count in conn.execute(query)}
