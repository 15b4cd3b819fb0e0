"""The hourly maintenance of the active daemon: the rollup, then retention.

A failure is one WARNING with the exception's type and the first line of
its message, and the next round comes an interval later; it never ends
the loop (cancel it to stop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine

log = logging.getLogger("nexomon.daemon")

MAINTENANCE_INTERVAL_S = 3600.0


async def maintenance_loop(
    engine: Engine,
    now: Callable[[], datetime],
    retention_days: int,
    interval_s: float = MAINTENANCE_INTERVAL_S,
    after_refresh: Callable[[Engine], None] | None = None,
) -> None:
    """Refresh the rollup and prune past ``retention_days``, now and every ``interval_s``.

    ``after_refresh`` runs (in the same worker thread) after each rollup
    refresh: the status page reads its rollup there, so no visitor pays the
    cold read.
    """
    # Imported here: the daemon's start does not need the rollup's code.
    from monitor.store import retention, rollup

    while True:
        try:
            await asyncio.to_thread(rollup.refresh, engine, now())
            if after_refresh is not None:
                await asyncio.to_thread(after_refresh, engine)
            await asyncio.to_thread(retention.prune, engine, retention_days)
        except Exception as exc:
            # The exception's type and the first line of its message (bounded);
            # the log pipeline scrubs secrets (a database URL's password).
            detail = (str(exc).strip().splitlines() or [""])[0][:300]
            log.warning(
                "maintenance (rollup/retention) failed: %s%s",
                type(exc).__name__,
                f": {detail}" if detail else "",
            )
        await asyncio.sleep(interval_s)
