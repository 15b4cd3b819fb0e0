"""Retention: delete raw rows older than ``retention_days`` in small batches.

Each batch is its own short transaction (select the oldest ids, delete
them), so a big prune never holds a long lock against the writer. Rollup
rows older than ``rollup_days`` (400) go too (a month row once all of its
month is: ``rollup.prune_rollup``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select

from monitor.store.models import ProbeResultRow
from monitor.store.rollup import KEEP_DAYS, prune_rollup


def prune(
    engine: Engine,
    retention_days: int,
    batch: int = 5000,
    *,
    now: datetime | None = None,
    rollup_days: int = KEEP_DAYS,
) -> int:
    """Delete raw rows started before ``now - retention_days``; returns rows deleted."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=retention_days)
    p = ProbeResultRow
    deleted = 0
    while True:
        with engine.begin() as conn:
            ids = list(
                conn.scalars(select(p.id).where(p.started_at < cutoff).order_by(p.id).limit(batch))
            )
            if ids:
                conn.execute(delete(p).where(p.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < batch:
            break
    with engine.begin() as conn:
        prune_rollup(conn, now - timedelta(days=rollup_days))
    return deleted
