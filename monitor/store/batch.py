"""Write one batch of results, and its catalog changes, in one transaction.

Rows are keyed by ``result_id``; the insert ignores ids already in the
table (ON CONFLICT DO NOTHING on SQLite and PostgreSQL, the two supported
backends), so a replayed batch is a no-op. Only
rows that are really new feed the catalog, in submission order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor import catalog
from monitor.catalog import CatalogEvent
from monitor.results import ProbeResult
from monitor.store.models import CatalogEventRow, CatalogModel, ProbeResultRow
from monitor.store.spool import Item

RESULTS = ProbeResultRow.__table__


def result_row(result_id: str, r: ProbeResult) -> dict[str, Any]:
    """The ``probe_results`` column values of one result."""
    return {
        "result_id": result_id,
        "started_at": r.started_at,
        "location": r.location,
        "target": r.target,
        "probe": r.probe,
        "model": r.model,
        "outcome": r.outcome.value,
        "success": r.success,
        "http_status": r.http_status,
        "duration_s": r.duration_s,
        "resolve_s": r.phases.resolve,
        "connect_s": r.phases.connect,
        "tls_s": r.phases.tls,
        "processing_s": r.phases.processing,
        "transfer_s": r.phases.transfer,
        "request_id": r.request_id,
        "error": r.error,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": r.total_tokens,
        "cost_usd": r.cost_usd,
        "ratelimit_limit": r.ratelimit_limit,
        "ratelimit_remaining": r.ratelimit_remaining,
        "retry_after_s": r.retry_after_s,
        "finish_reason": r.finish_reason,
        "response_model": r.response_model,
    }


def _insert_ignoring_duplicates(conn: Connection) -> Insert:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(RESULTS).on_conflict_do_nothing(index_elements=["result_id"])


def write_batch(conn: Connection, items: list[Item]) -> tuple[int, list[CatalogEvent]]:
    """Insert ``items`` inside the caller's transaction.

    Returns the number of rows really inserted and the catalog events.
    """
    # RETURNING yields only the rows really inserted (not the conflicts), in
    # one round trip: no read-before-write that would slow down as the table grows.
    stmt = _insert_ignoring_duplicates(conn).returning(RESULTS.c.result_id)
    inserted = set(conn.scalars(stmt, [result_row(rid, r) for rid, r in items]))
    fresh = [(rid, r) for rid, r in items if rid in inserted]
    if not fresh:
        return 0, []
    events: list[CatalogEvent] = []
    for _, r in fresh:
        if r.probe == "models" and r.model_ids is not None:
            events.extend(apply_listing(conn, r.target, r.location, r.started_at, r.model_ids))
    return len(fresh), events


def apply_listing(
    conn: Connection, target: str, location: str, at: datetime, model_ids: tuple[str, ...]
) -> list[CatalogEvent]:
    """Update ``catalog_models`` for one listing and append its ``catalog_events``."""
    table = CatalogModel.__table__
    stored = {
        row.model: bool(row.listed)
        for row in conn.execute(
            select(CatalogModel.model, CatalogModel.listed).where(CatalogModel.target == target)
        )
    }
    model_ids = catalog.usable_ids(model_ids)
    change = catalog.diff(stored, model_ids)
    listed = set(model_ids)
    new = sorted(listed - stored.keys())
    if new:
        conn.execute(
            table.insert(),
            [
                {"target": target, "model": m, "first_seen": at, "last_seen": at, "listed": True}
                for m in new
            ],
        )
    seen_again = sorted(listed & stored.keys())
    for start in range(0, len(seen_again), 500):
        conn.execute(
            update(CatalogModel)
            .where(CatalogModel.target == target)
            .where(CatalogModel.model.in_(seen_again[start : start + 500]))
            .values(last_seen=at, listed=True)
        )
    if change.removed:
        conn.execute(
            update(CatalogModel)
            .where(CatalogModel.target == target)
            .where(CatalogModel.model.in_(sorted(change.removed)))
            .values(listed=False)
        )
    events = change.events(at=at, location=location, target=target)
    if events:
        conn.execute(
            CatalogEventRow.__table__.insert(),
            [
                {
                    "at": e.at,
                    "location": e.location,
                    "target": e.target,
                    "model": e.model,
                    "change": e.change,
                }
                for e in events
            ],
        )
    return events
