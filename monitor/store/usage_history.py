"""Measured tokens per spending probe, read back for the forecast's expected figure.

``nexomon config check`` prints a worst-case forecast (monitor.spend.forecast);
when the configured database already holds chat rows, the expected figure
(monitor.spend.expected) uses what those rows measured instead:

* ``probes``: chat and stream rows of this location in the window, per
  (target, model). Rows skipped because the daily budget was reached are left
  out (the budget line of the forecast accounts for the cap); rows skipped
  while waiting out a ``retry-after`` stay in: those runs really cost nothing.
* ``billed``: the rows whose answer reported ``usage`` (``prompt_tokens`` and
  ``completion_tokens`` both stored). Failed probes (errors, timeouts, 429s)
  report none and cost nothing, which is what the measured spend
  (``cost_usd``) counts too.
* the token sums are over the billed rows only, so the means are per answer.

``load_usage_history`` never raises and never creates or migrates anything:
no database, a database that does not answer (a short connect timeout), no
``probe_results`` table, or no row at all give None, and the caller prints
the worst case alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, not_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.errors import NexomonError
from monitor.outcome import Outcome
from monitor.store.db import make_engine, normalize_url, redact, sqlite_file
from monitor.store.models import ProbeResultRow

log = logging.getLogger("nexomon.store")

HISTORY_WINDOW = timedelta(hours=24)
MIN_PROBES = 10  # fewer rows than this are not a measurement worth printing
SPENDING_PROBES = ("chat", "stream")  # same prompt and max_tokens (monitor.spend.forecast)
BUDGET_SKIP = "daily budget%"  # monitor.spend.budget's refusal text
CONNECT_TIMEOUT_S = 3  # config check must answer quickly when PostgreSQL does not
STATEMENT_TIMEOUT_MS = 10_000

Key = tuple[str, str]  # (target, model)


@dataclass(frozen=True, slots=True)
class ProbeUsage:
    """What one (target, model) measured in the window."""

    target: str
    model: str
    probes: int  # rows counted (budget skips left out)
    billed: int  # rows with usage reported
    prompt_tokens: int  # summed over the billed rows
    completion_tokens: int

    @property
    def billed_share(self) -> Decimal:
        """Share of probes that reported usage, 0..1 (0 when there are no probes)."""
        return Decimal(self.billed) / self.probes if self.probes else Decimal(0)

    @property
    def mean_prompt_tokens(self) -> Decimal | None:
        """Mean prompt tokens per billed probe; None when none was billed."""
        return Decimal(self.prompt_tokens) / self.billed if self.billed else None

    @property
    def mean_completion_tokens(self) -> Decimal | None:
        return Decimal(self.completion_tokens) / self.billed if self.billed else None


@dataclass(frozen=True, slots=True)
class UsageHistory:
    """The measured rows of one location over ``window`` up to ``until``."""

    source: str  # the database URL, password hidden
    location: str
    window: timedelta
    until: datetime
    usage: Mapping[Key, ProbeUsage]
    min_probes: int = MIN_PROBES

    def measured(self, target: str, model: str) -> ProbeUsage | None:
        """The usage of (target, model) when it has at least ``min_probes`` rows, else None."""
        found = self.usage.get((target, model))
        return found if found is not None and found.probes >= self.min_probes else None


def probe_usage(session: Session, location: str, since: datetime) -> dict[Key, ProbeUsage]:
    """Per (target, model): spending rows of ``location`` since ``since`` (one GROUP BY)."""
    p = ProbeResultRow
    has_usage = and_(p.prompt_tokens.is_not(None), p.completion_tokens.is_not(None))
    budget_skip = and_(p.outcome == Outcome.SKIPPED.value, p.error.like(BUDGET_SKIP))
    query = (
        select(
            p.target,
            p.model,
            func.count(),
            # CASE, not FILTER: portable to every SQLite the package supports.
            func.sum(case((has_usage, 1), else_=0)),
            func.sum(case((has_usage, p.prompt_tokens), else_=0)),
            func.sum(case((has_usage, p.completion_tokens), else_=0)),
        )
        .where(
            p.location == location,
            p.probe.in_(SPENDING_PROBES),
            p.started_at >= since,
            not_(budget_skip),
        )
        .group_by(p.target, p.model)
    )
    return {
        (target, model): ProbeUsage(target, model, int(n), int(b), int(pt), int(ct))
        for target, model, n, b, pt, ct in session.execute(query)
    }


def load_usage_history(
    config: Any, now: datetime, window: timedelta = HISTORY_WINDOW
) -> UsageHistory | None:
    """The measured usage in ``config``'s database, or None (see the module docstring).

    Read-only: a missing SQLite file is not created, nothing is migrated.
    """
    url = config.monitor.database_url
    try:
        path = sqlite_file(url)
        if path is not None and not path.is_file():
            return None
        engine = _engine(url)
    except (SQLAlchemyError, NexomonError, OSError, ImportError, ValueError) as exc:
        log.debug("no usage history: %s", type(exc).__name__)
        return None
    try:
        with Session(engine) as session:
            usage = probe_usage(session, config.monitor.location, now - window)
    except (SQLAlchemyError, OSError) as exc:  # unreachable, no schema, locked
        log.debug("no usage history from %s: %s", redact(url), type(exc).__name__)
        return None
    finally:
        engine.dispose()
    if not usage:
        return None
    return UsageHistory(redact(url), config.monitor.location, window, now, usage)


def _engine(url: str) -> Any:
    if normalize_url(url).get_backend_name() == "postgresql":
        return make_engine(
            url,
            read_only=True,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_S,
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            },
        )
    return make_engine(url, read_only=True, busy_timeout_ms=1000)
