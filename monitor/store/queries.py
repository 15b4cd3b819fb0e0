"""Read-side queries; each takes a caller-owned Session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.store.aggregate import Aggregate, aggregate, by_model
from monitor.store.models import CatalogModel, ProbeResultRow


def listed_models(session: Session, target: str) -> set[str]:
    """Models the target's last stored listing had (``catalog_models.listed``)."""
    query = select(CatalogModel.model).where(
        CatalogModel.target == target, CatalogModel.listed.is_(True)
    )
    return set(session.scalars(query))


def spend_today(session: Session, location: str, now: datetime) -> tuple[Decimal, int]:
    """Sum of ``cost_usd`` and ``total_tokens`` of this location's chat rows since UTC midnight."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    p = ProbeResultRow
    cost, tokens = session.execute(
        select(func.sum(p.cost_usd), func.sum(p.total_tokens)).where(
            p.location == location, p.probe == "chat", p.started_at >= midnight
        )
    ).one()
    return Decimal(cost or 0), int(tokens or 0)


def row_to_result(row: ProbeResultRow) -> ProbeResult:
    """The ProbeResult a stored row came from (``model_ids`` is not stored)."""
    return ProbeResult(
        started_at=row.started_at,
        location=row.location,
        target=row.target,
        probe=row.probe,
        model=row.model,
        outcome=Outcome(row.outcome),
        http_status=row.http_status,
        duration_s=row.duration_s,
        phases=Phases(
            resolve=row.resolve_s,
            connect=row.connect_s or 0.0,
            tls=row.tls_s,  # None: not measured apart from connect
            processing=row.processing_s or 0.0,
            transfer=row.transfer_s or 0.0,
        ),
        request_id=row.request_id,
        error=row.error,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        total_tokens=row.total_tokens,
        cost_usd=row.cost_usd,
        ratelimit_limit=row.ratelimit_limit,
        ratelimit_remaining=row.ratelimit_remaining,
        retry_after_s=row.retry_after_s,
        finish_reason=row.finish_reason,
        response_model=row.response_model,
        ratelimit_reset_s=row.ratelimit_reset_s,
        ratelimit_limit_tokens=row.ratelimit_limit_tokens,
        ratelimit_remaining_tokens=row.ratelimit_remaining_tokens,
        ratelimit_reset_tokens_s=row.ratelimit_reset_tokens_s,
        substituted_by=row.substituted_by,
    )


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One target/probe/model for ``/api/v1/status``."""

    target: str
    probe: str
    model: str
    last: ProbeResult
    probes: int
    availability_pct: float | None
    p95_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "probe": self.probe,
            "model": self.model,
            "last": self.last.to_json(),
            "probes": self.probes,
            "availability_pct": self.availability_pct,
            "p95_s": self.p95_s,
        }


def status_row(row: Any, agg: Aggregate | None) -> StatusRow:
    """The status row of one job: ``row`` its last stored row (an ORM object or a Core
    row of ``probe_results``), ``agg`` its sums over the window (None: no probes)."""
    return StatusRow(
        target=row.target,
        probe=row.probe,
        model=row.model,
        last=row_to_result(row),
        probes=0 if agg is None else agg.probes,
        availability_pct=None if agg is None else agg.availability_pct,
        p95_s=None if agg is None else agg.latency.quantile(0.95),
    )


def status_summary(
    session: Session, since: datetime, location: str | None = None
) -> list[StatusRow]:
    """Per target+probe+model seen since ``since``: last result, availability %, p95 latency.

    Reads the whole window each call; the daemon keeps it current with
    ``monitor.store.status_tally.WindowTally``, whose tests check it against this.
    """
    p = ProbeResultRow
    latest = select(func.max(p.id)).where(p.started_at >= since)
    if location is not None:
        latest = latest.where(p.location == location)
    latest = latest.group_by(p.target, p.probe, p.model)
    rows = session.scalars(select(p).where(p.id.in_(latest.scalar_subquery()))).all()
    groups = aggregate(session, since=since, key=by_model, location=location)
    return [
        status_row(row, groups.get((row.target, row.probe, row.model)))
        for row in sorted(rows, key=lambda r: (r.target, r.probe, r.model))
    ]
