"""The latest result per job for the status page, and the catalog sizes.

Cheap on 1,000 models: the newest raw row per model is already known from
``queries._add_raw`` (its id), so most rows are fetched by id; only what is
still missing costs a grouped query or an indexed lookup.
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


def latest_results(
    conn: Connection,
    location: str,
    now: datetime,
    wanted: set[Key],
    known_ids: list[int] | None = None,
) -> dict[tuple[str, str, str], ProbeResult]:
    """The last row per (target, probe, model).

    Cheapest first: the rows ``known_ids`` names (the newest raw row per
    model, found while reading the raw rows anyway); when a wanted model is
    still missing, the newest row per job over ``LATEST_WINDOW``; then one
    indexed lookup per target's ``/models`` job and per wanted chat model
    still missing (at most ``MAX_LOOKUPS``: a long chat interval).
    """
    p = ProbeResultRow
    found: dict[tuple[str, str, str], ProbeResult] = {}
    ids = known_ids or []
    for start in range(0, len(ids), 500):  # well under any driver's parameter limit
        query = select(p.__table__).where(p.id.in_(ids[start : start + 500]))
        for row in conn.execute(query):
            found[(row.target, row.probe, row.model)] = row_to_result(row)  # type: ignore[arg-type]
    if any((t, "chat", m) not in found for t, m in wanted) or not wanted:
        newest = (
            select(func.max(p.id))
            .where(p.location == location, p.started_at >= now - LATEST_WINDOW)
            .group_by(p.target, p.probe, p.model)
        )
        query = select(p.__table__).where(p.id.in_(newest.scalar_subquery()))
        for row in conn.execute(query):
            key = (row.target, row.probe, row.model)
            if key not in found:
                found[key] = row_to_result(row)  # type: ignore[arg-type]
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
