"""The daily probe budget: caps the probes' own spend per UTC day.

``[budget] daily_usd`` and/or ``daily_tokens`` cap what the chat probes
spend in one UTC day. Today's spend is read from the database at start
(``seed``) so a restart does not reset it, and kept live from each chat
result. Once a cap is reached, chat probes are skipped (outcome
``skipped``, no request sent, error ``reason()``) until the next UTC day;
the free models probe is never capped.

Two ways to use it:

* simple: ``allows_chat()`` before a probe, ``record(result)`` after. Chat
  probes in flight when the cap is reached all finish, so spend can exceed
  the cap by up to the cost of every probe in flight at that moment.
* reserving (preferred): ``reserve(expected_usd, expected_tokens)`` before a
  probe (None means skip), ``settle(reservation, result)`` after, also when
  the probe failed or raised (``settle(reservation, None)``). A probe is
  admitted only while settled spend plus outstanding reservations is below
  the cap, so, as long as a probe costs no more than it reserved (expected
  tokens use ``max_tokens`` as the worst case), spend ends below
  ``cap + one probe's expected cost``, however many probes run concurrently.

Spend is counted per UTC day of the result's ``started_at``, the same rule
the database query for today's spend uses; a probe that started before
midnight and finished after belongs to the old day. An unpriced chat result
(``cost_usd`` None) adds tokens but no dollars: a dollar cap cannot see it,
a token cap can.

Logging (logger ``nexomon.budget``): one WARNING when ``reserve`` first
refuses a probe on a UTC day ("daily budget of $1.00 reached: chat probes
skipped until 00:00 UTC ..."), and one INFO when probes may run again: at the
first call after 00:00 UTC ("daily budget reset ..."), or on a reload whose
new caps admit probes again. Never a line per skipped probe.

Used from one asyncio loop only: every method runs to completion without
awaiting, so no lock is needed. It is not thread-safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from monitor.results import ProbeResult

ZERO = Decimal(0)

log = logging.getLogger("nexomon.budget")


@dataclass(frozen=True, slots=True)
class Reservation:
    """Spend held for one admitted chat probe until it settles."""

    day: date  # the UTC day it was taken on; a rollover drops it
    usd: Decimal
    tokens: int


def format_usd(amount: Decimal) -> str:
    """``$1.00``, ``$0.50``, ``$0.005``: cents at least, more digits only when set."""
    if amount == amount.quantize(Decimal("0.01")):
        return f"${amount:.2f}"
    return f"${amount.normalize():f}"


class Budget:
    """Today's probe spend against the configured daily caps.

    ``now`` returns the current time as an aware datetime; it is converted
    to UTC, and a change of UTC date resets the counters. A cap of None is
    no cap; with both None every probe is allowed (spend is still counted
    for the ``nexomon_budget_spent_usd`` gauge).
    """

    def __init__(
        self,
        daily_usd: Decimal | None,
        daily_tokens: int | None,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self._limit_usd = daily_usd
        self._limit_tokens = daily_tokens
        self._now = now
        self._day = self._today()
        self._spent_usd = ZERO
        self._spent_tokens = 0
        self._reserved_usd = ZERO
        self._reserved_tokens = 0
        self._reached = False  # reserve refused a probe today (and said so once)

    # -- configuration ---------------------------------------------------

    def reconfigure(self, daily_usd: Decimal | None, daily_tokens: int | None) -> None:
        """New caps after a config reload; today's spend is kept."""
        self._limit_usd = daily_usd
        self._limit_tokens = daily_tokens
        if self._reached and self.allows_chat():
            self._reached = False
            log.info("daily budget raised by the reload: chat probes resume")

    def seed(self, spent_usd: Decimal, spent_tokens: int) -> None:
        """Set today's settled spend (read from the database at start).

        Replaces the counters rather than adding, so calling it twice is
        harmless. Outstanding reservations are kept.
        """
        self._roll()
        self._spent_usd = spent_usd
        self._spent_tokens = spent_tokens

    # -- reading ---------------------------------------------------------

    @property
    def limit_usd(self) -> Decimal | None:
        return self._limit_usd

    @property
    def limit_tokens(self) -> int | None:
        return self._limit_tokens

    @property
    def spent_usd(self) -> Decimal:
        """Today's settled dollar spend (the ``nexomon_budget_spent_usd`` gauge)."""
        self._roll()
        return self._spent_usd

    @property
    def spent_tokens(self) -> int:
        """Today's settled token spend."""
        self._roll()
        return self._spent_tokens

    @property
    def reserved_usd(self) -> Decimal:
        """Dollars held by chat probes in flight."""
        self._roll()
        return self._reserved_usd

    @property
    def reserved_tokens(self) -> int:
        """Tokens held by chat probes in flight."""
        self._roll()
        return self._reserved_tokens

    @property
    def exhausted(self) -> bool:
        """True once today's settled spend has reached either cap."""
        self._roll()
        return self._over(self._spent_usd, self._spent_tokens)

    def allows_chat(self) -> bool:
        """True while settled plus reserved spend is below every cap."""
        self._roll()
        return not self._over(
            self._spent_usd + self._reserved_usd, self._spent_tokens + self._reserved_tokens
        )

    def reason(self) -> str:
        """The ``error`` of a skipped row: which cap was reached."""
        self._roll()
        usd = self._spent_usd + self._reserved_usd
        tokens = self._spent_tokens + self._reserved_tokens
        reached = []
        if self._limit_usd is not None and usd >= self._limit_usd:
            reached.append(format_usd(self._limit_usd))
        if self._limit_tokens is not None and tokens >= self._limit_tokens:
            reached.append(f"{self._limit_tokens:,} tokens")
        if not reached:
            return "daily budget not reached"
        return f"daily budget of {' and '.join(reached)} reached"

    # -- spending --------------------------------------------------------

    def record(self, result: ProbeResult) -> None:
        """Add a finished result's ``cost_usd`` and ``total_tokens`` (if set).

        Results that started on an earlier UTC day are ignored: they belong
        to that day's total, which has been reset.
        """
        self._roll()
        if result.started_at.astimezone(UTC).date() < self._day:
            return
        if result.cost_usd is not None:
            self._spent_usd += result.cost_usd
        tokens = _tokens_of(result)
        if tokens is not None:
            self._spent_tokens += tokens

    def reserve(self, expected_usd: Decimal | None, expected_tokens: int) -> Reservation | None:
        """Admit one chat probe and hold its expected spend, or None to skip it.

        ``expected_usd`` None (unpriced model) holds no dollars. Admission
        uses the spend before this reservation, so a single probe is never
        refused only for being expensive.
        """
        if not self.allows_chat():
            if not self._reached:
                self._reached = True
                log.warning(
                    "%s: chat probes skipped until 00:00 UTC (spent %s and %s tokens today)",
                    self.reason(),
                    format_usd(self._spent_usd),
                    f"{self._spent_tokens:,}",
                )
            return None
        held = Reservation(self._day, expected_usd or ZERO, expected_tokens)
        self._reserved_usd += held.usd
        self._reserved_tokens += held.tokens
        return held

    def settle(self, reservation: Reservation, result: ProbeResult | None) -> None:
        """Release ``reservation`` and record ``result`` (None: nothing was spent)."""
        self._roll()
        if reservation.day == self._day:
            self._reserved_usd -= reservation.usd
            self._reserved_tokens -= reservation.tokens
        if result is not None:
            self.record(result)

    # -- internals -------------------------------------------------------

    def _today(self) -> date:
        return self._now().astimezone(UTC).date()

    def _roll(self) -> None:
        """Reset every counter when a new UTC day has begun.

        Only forward: a clock stepped back across midnight keeps today's
        spend rather than granting a fresh budget.
        """
        today = self._today()
        if today > self._day:
            self._day = today
            self._spent_usd = ZERO
            self._spent_tokens = 0
            self._reserved_usd = ZERO
            self._reserved_tokens = 0
            if self._reached:
                self._reached = False
                log.info("daily budget reset for %s (UTC): chat probes resume", today)

    def _over(self, usd: Decimal, tokens: int) -> bool:
        if self._limit_usd is not None and usd >= self._limit_usd:
            return True
        return self._limit_tokens is not None and tokens >= self._limit_tokens


def _tokens_of(result: ProbeResult) -> int | None:
    """``total_tokens``, else prompt + completion when both are known."""
    if result.total_tokens is not None:
        return result.total_tokens
    if result.prompt_tokens is not None and result.completion_tokens is not None:
        return result.prompt_tokens + result.completion_tokens
    return None
