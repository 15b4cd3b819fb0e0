"""Hand-made ProbeResults for storage tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.store.db import make_engine

T0 = datetime(2025, 11, 20, 12, 0, 0, 123456, tzinfo=UTC)


def chat(i: int = 0, **changes: Any) -> ProbeResult:
    """A fully populated ok chat result; ``i`` makes it distinct and later."""
    fields: dict[str, Any] = {
        "started_at": T0 + timedelta(seconds=i),
        "location": "eu-west-1",
        "target": "nexorouter",
        "probe": "chat",
        "model": "deepseek-v4-flash",
        "outcome": Outcome.OK,
        "http_status": 200,
        "duration_s": 0.25,
        "phases": Phases(resolve=0.001, connect=0.002, tls=0.003, processing=0.2, transfer=0.044),
        "request_id": f"req-{i}",
        "error": None,
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "cost_usd": Decimal("0.000002400"),
        "ratelimit_limit": 600,
        "ratelimit_remaining": 599,
        "retry_after_s": None,
        "finish_reason": "stop",
        "response_model": "deepseek-v4-flash-2025",
    }
    fields.update(changes)
    return ProbeResult(**fields)


def listing(i: int, models: list[str], target: str = "nexorouter") -> ProbeResult:
    """A successful models-probe result listing ``models``."""
    return ProbeResult(
        started_at=T0 + timedelta(seconds=i),
        location="eu-west-1",
        target=target,
        probe="models",
        model="",
        outcome=Outcome.OK,
        http_status=200,
        duration_s=0.05,
        model_ids=tuple(models),
    )


def schema_versions(url: str) -> list[str]:
    """The Alembic revisions recorded in the database at ``url`` (its alembic_version rows)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()
