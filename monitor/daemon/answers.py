"""What the daemon's ``/readyz`` and ``/api/v1/status`` answer (monitor.daemon.web serves them).

Both run in Starlette's thread pool and may query the database; neither
raises for a database that does not answer.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from monitor import __version__
from monitor.daemon.scheduler import ProbeScheduler
from monitor.daemon.standby import ProberGate
from monitor.results import ProbeResult
from monitor.store import queries
from monitor.store.startup import Store

log = logging.getLogger("nexomon.daemon")


def readiness(
    gate: ProberGate | None, scheduler: ProbeScheduler | None, store: Store | None
) -> tuple[bool, str]:
    """(ready, reason): a standby, a stopped scheduler, a dead writer or database is not ready."""
    standby = gate.ready_reason() if gate is not None else None
    if standby is not None:
        return False, standby
    if scheduler is None or not scheduler.running:
        return False, "scheduler not running"
    if store is None:
        return False, "database not open"
    trouble = store.writer.health()  # dead or stalled: rows are not being written
    if trouble is not None:
        return False, trouble
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means not ready
        return False, f"database unreachable: {type(exc).__name__}"
    return True, "ready"


def status_document(
    location: str,
    now: datetime,
    last_results: dict[tuple[str, str, str], ProbeResult],
    store: Store | None,
    *,
    tls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``/api/v1/status`` JSON: the last result per job, the 24 h summary and
    ``tls``, the certificate of each https target (monitor.exporter.tls.TlsWatch.rows:
    version, notAfter, days left)."""
    summary: list[dict[str, Any]] = []
    if store is not None:
        try:
            with Session(store.engine) as session:
                since = now - timedelta(hours=24)
                summary = [row.to_json() for row in queries.status_summary(session, since)]
        except Exception as exc:
            log.warning("status: database query failed: %s", type(exc).__name__)
    return {
        "version": __version__,
        "location": location,
        "generated_at": now.isoformat(),
        "last_results": [r.to_json() for r in list(last_results.values())],
        "window_24h": summary,
        "tls": tls or [],
    }
