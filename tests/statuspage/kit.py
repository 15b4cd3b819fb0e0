"""A scripted history for the status page tests, and the page served on a real socket.

``NOW`` is fixed; ``seed(engine)`` writes the rows (through the writer's own
``write_batch``, listings included, so the catalog tables fill as in the
daemon) and rolls them up (``rollup.refresh``). What the database implies:

- ``alpha``: hourly ok probes for 60 days, except day -10 (half server_error:
  red), day -20 (no rows: grey), day -30 (one 429 among ok: still 100 %),
  day -40 (4 an hour, one timeout: 98.96 %); state up.
- ``beta``: down (server_error "upstream exploded") from 10:02 to 10:17
  today, ok before and after: one 15-minute incident; state up.
- ``gamma``: last result auth_error: refused (auth).
- ``delta``: ok in 2.5 s with ``degraded_latency`` 1 s: degraded.
- ``epsilon``: last result server_error: down (an incident still going on).
- ``zeta``: last result skipped.
- ``HOSTILE``: ``<script>``, quotes and a newline in the id; down at 10:00
  with an error line holding HTML and a control character, ok after.
- listings: ``old-model`` listed then removed (catalog events).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from starlette.applications import Starlette

from monitor.daemon.web import WebServer
from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.statuspage.routes import status_routes
from monitor.store import rollup
from monitor.store.batch import write_batch
from tests.store.factory import chat, listing

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
LOCATION = "eu-west-1"
TARGET = "nexorouter"
HOSTILE = "<script>alert(1)</script>\"q'uote\nnewline"
HOSTILE_ERROR = "<img src=x onerror=alert(2)> & \x01bell"
DEGRADED = {TARGET: 1.0}
EXPECTED_STATE = {
    "alpha": "up",
    "beta": "up",
    "gamma": "refused",
    "delta": "degraded",
    "epsilon": "down",
    "zeta": "skipped",
    HOSTILE: "up",
}
# alpha's known days (days before TODAY) -> the uptime bar cell's class
KNOWN_DAYS = {10: "a-low", 20: "a-none", 30: "a-100", 40: "a-95", 0: "a-100", 75: "a-none"}


def _r(model: str, at: datetime, outcome: Outcome = Outcome.OK, **kw: object) -> ProbeResult:
    down = outcome is not Outcome.OK
    base = chat(0, model=model, started_at=at, outcome=outcome, request_id=f"req-{model[:8]}")
    extra: dict[str, object] = {}
    if down:
        extra = {"duration_s": None, "http_status": 500, "error": f"{outcome.value} happened"}
        extra.update(prompt_tokens=None, completion_tokens=None, total_tokens=None, cost_usd=None)
    extra.update(kw)
    return replace(base, **extra)  # type: ignore[arg-type]


def history() -> list[ProbeResult]:
    rows: list[ProbeResult] = []
    for day in range(60):
        start = TODAY - timedelta(days=day)
        if day == 20:
            continue
        per_hour = 4 if day == 40 else 1
        for hour in range(24):
            for q in range(per_hour):
                at = start + timedelta(hours=hour, minutes=15 * q)
                if at >= NOW:
                    continue
                outcome = Outcome.OK
                if day == 10 and hour % 2:
                    outcome = Outcome.SERVER_ERROR
                if day == 30 and hour == 5:
                    outcome = Outcome.RATE_LIMITED
                if day == 40 and hour == 7 and q == 0:
                    outcome = Outcome.TIMEOUT
                rows.append(_r("alpha", at, outcome))
    for minute in range(-120, 30):  # beta, every minute from 08:30
        at = TODAY + timedelta(hours=10, minutes=minute)
        if 2 <= minute < 17:
            rows.append(_r("beta", at, Outcome.SERVER_ERROR, error="upstream exploded"))
        else:
            rows.append(_r("beta", at))
    for minute in range(0, 30, 5):
        at = TODAY + timedelta(hours=10, minutes=minute)
        rows.append(_r("gamma", at - timedelta(hours=1)))
        rows.append(_r("gamma", at, Outcome.AUTH_ERROR, http_status=401))
        rows.append(_r("delta", at, duration_s=2.5))
        rows.append(_r("epsilon", at, Outcome.SERVER_ERROR))
        rows.append(_r("zeta", at - timedelta(minutes=1)))
        rows.append(_r("zeta", at, Outcome.SKIPPED, duration_s=None, http_status=None))
        if minute == 0:  # a short outage, its error line hostile too
            rows.append(_r(HOSTILE, at, Outcome.SERVER_ERROR, error=HOSTILE_ERROR))
        else:
            rows.append(_r(HOSTILE, at))
    models = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", HOSTILE]
    first = replace(listing(0, [*models, "old-model"]), started_at=NOW - timedelta(days=2))
    second = replace(listing(0, models), started_at=NOW - timedelta(minutes=3))
    rows += [first, second]
    rows.sort(key=lambda r: r.started_at)
    return rows


def seed(engine: Engine, rows: list[ProbeResult] | None = None, now: datetime = NOW) -> None:
    """Write ``rows`` (default: ``history()``) and bring the rollup up to ``now``."""
    rows = history() if rows is None else rows
    with engine.begin() as conn:
        write_batch(conn, [(f"{i:032x}", r) for i, r in enumerate(rows)])
    rollup.refresh(engine, now)


def app_for(db: Engine | None, **kw: object) -> Starlette:
    options: dict[str, object] = {
        "engine": lambda: db,
        "live": dict,
        "location": LOCATION,
        "access": "public",
        "token": None,
        "degraded_latency": DEGRADED,
        "now": lambda: NOW,
    }
    options.update(kw)
    return Starlette(routes=status_routes(**options))  # type: ignore[arg-type]


@contextmanager
def served(app: Starlette) -> Iterator[str]:
    """``app`` on 127.0.0.1 in a thread of its own (a real socket); yields the base URL."""
    loop = asyncio.new_event_loop()
    server = WebServer(app, "127.0.0.1", 0)
    started = threading.Event()
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        await server.start()
        started.set()
        await stop.wait()
        await server.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the status page server did not start")
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
        thread.join(10)
        loop.close()
