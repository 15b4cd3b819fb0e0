"""What the daemon's ``/readyz`` and ``/api/v1/status`` answer (monitor.daemon.web serves them).

Both run in Starlette's thread pool and may query the database; neither
raises for a database that does not answer.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import text

from monitor import __version__
from monitor.daemon.jsonbody import ResultsJson, encode, json_object
from monitor.daemon.scheduler import ProbeScheduler
from monitor.daemon.standby import ProberGate
from monitor.daemon.status_window import StatusWindow
from monitor.results import ProbeResult
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
    window: StatusWindow,
    results_json: ResultsJson,
    *,
    tls: list[dict[str, Any]] | None = None,
) -> bytes:
    """The ``/api/v1/status`` JSON: the last result per job, the 24 h summary
    (``window_24h``, computed at ``window_24h_at``, at most about a minute old:
    monitor.daemon.status_window) and ``tls``, the certificate of each https
    target (monitor.exporter.tls.TlsWatch.rows: version, notAfter, days left).

    Encoded JSON, from parts kept encoded (monitor.daemon.jsonbody): each last
    result is encoded once, the window once per refresh."""
    computed_at, summary = window.rows(now)
    return json_object(
        [
            ("version", encode(__version__)),
            ("location", encode(location)),
            ("generated_at", encode(now.isoformat())),
            ("last_results", results_json.encode(last_results)),
            ("window_24h", summary),
            ("window_24h_at", encode(None if computed_at is None else computed_at.isoformat())),
            ("tls", encode(tls or [])),
        ]
    )
