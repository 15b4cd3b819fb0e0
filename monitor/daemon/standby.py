"""Active or hot standby: which ``nexomon run`` of a location probes (PostgreSQL).

``ProberGate`` holds a ``LocationLock`` (monitor.store.lease) and calls the
daemon's ``activate`` / ``deactivate`` as the lock comes and goes. Every
``period()`` seconds (half the shortest probe interval, see
monitor.daemon.wiring.lock_period_s):

- standby: try the lock; got it -> take over (log, ``activate``). So a
  standby takes over within one probe interval of the active one's death
  (the server drops a killed holder's session, and its lock, at once).
- active: check the lock's session. Lost -> log an error and try again at
  once: got it back -> go on; another session holds it -> stop probing at
  once (``deactivate``) and stand by. Two instances of a location probe
  together for one period at most.
- the database does not answer at all: an instance that has not seen
  another holder probes on ("unfenced"), its rows going to the spool, as
  an instance without a lock always did during an outage; one that is on
  standby stays on standby. The first try that reaches the database
  settles it. So an outage never blinds the monitor, at the price that an
  instance cut off from the database (a partition) may probe beside the
  one that took over until it reaches the database again.

State changes are serialised with the daemon's reloads by ``switch`` (an
asyncio.Lock the daemon shares).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable

from monitor.store.lease import Attempt, LocationLock

log = logging.getLogger("nexomon.daemon")


class Role(enum.Enum):
    ACTIVE = "active"  # holds the lock, probes
    UNFENCED = "unfenced"  # database unreachable, probes without the lock
    STANDBY = "standby"  # another instance holds the lock; no probe, no write


class ProberGate:
    """Decides, and keeps deciding, whether this process probes its location."""

    def __init__(
        self,
        lock: LocationLock,
        *,
        period: Callable[[], float],
        activate: Callable[[], Awaitable[None]],
        deactivate: Callable[[], Awaitable[None]],
        switch: asyncio.Lock,
    ) -> None:
        self.lock = lock
        self.period = period
        self._activate = activate
        self._deactivate = deactivate
        self._switch = switch
        self.role = Role.STANDBY
        self.takeovers = 0  # times this process went from standby to active

    @property
    def active(self) -> bool:
        """Whether this process probes now (holding the lock, or unfenced)."""
        return self.role is not Role.STANDBY

    @property
    def location(self) -> str:
        return self.lock.location

    async def start(self) -> None:
        """The first decision; probing has started when it returns if the role is active."""
        attempt = await asyncio.to_thread(self.lock.try_acquire)
        async with self._switch:
            if attempt is Attempt.TAKEN:
                self._log_standby()
                return
            if attempt is Attempt.UNREACHABLE:
                log.warning(
                    "cannot take the lock for location %s (the database does not answer);"
                    " probing without it until the database answers",
                    self.location,
                )
                self.role = Role.UNFENCED
            else:
                self.role = Role.ACTIVE
            await self._activate()

    async def run(self) -> None:
        """Poll the lock forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self.period())
            await self.tick()

    async def tick(self) -> None:
        """One look at the lock, acting on what it finds."""
        if self.role is Role.ACTIVE:
            if await asyncio.to_thread(self.lock.check):
                return
            log.error(
                "lost the database session holding the lock for location %s; checking"
                " whether another nexomon took over",
                self.location,
            )
        try:
            attempt = await asyncio.to_thread(self.lock.try_acquire)
        except Exception as exc:  # e.g. a password rotated under us: no answer is no lock
            log.error("cannot try the lock for location %s: %s", self.location, type(exc).__name__)
            attempt = Attempt.UNREACHABLE
        async with self._switch:
            await self._apply(attempt)

    async def _apply(self, attempt: Attempt) -> None:
        if attempt is Attempt.HELD:
            if self.role is Role.STANDBY:
                log.info("taking over as the active nexomon for location %s", self.location)
                self.takeovers += 1
                self.role = Role.ACTIVE
                await self._activate()
            else:
                log.warning("holding the lock for location %s again; probing on", self.location)
            self.role = Role.ACTIVE
        elif attempt is Attempt.TAKEN:
            if self.role is not Role.STANDBY:
                log.error(
                    "another nexomon holds the lock for location %s; stopping probes",
                    self.location,
                )
                self.role = Role.STANDBY
                await self._deactivate()
                self._log_standby()
        elif self.role is Role.ACTIVE:
            log.warning(
                "the database does not answer; probing on without the lock for location %s"
                " until it does (rows go to the spool)",
                self.location,
            )
            self.role = Role.UNFENCED

    def _log_standby(self) -> None:
        self.role = Role.STANDBY
        log.info("another nexomon for location %s is active; standing by", self.location)

    def ready_reason(self) -> str | None:
        """The /readyz reason while on standby; None while this process probes."""
        if self.active:
            return None
        return f"standby: another nexomon for location {self.location} is active"

    async def close(self) -> None:
        """Release the lock (its session closes; a standby elsewhere takes over)."""
        await asyncio.to_thread(self.lock.release)
