"""The parts ``nexomon run`` and ``nexomon probe`` build the same way.

``build_runner`` makes one GatewayClient per target (each API key goes to
the log scrubber) and the ProbeRunner every attempt goes through.
The rest are the daemon's small rules that need no Daemon: the listen
error line, the SQLite lock, the lock period, bearer tokens, the first
round's length and the series a reload drops.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import httpx
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute

from monitor.config.model import Config
from monitor.daemon.runner import ProbeRunner, Sink
from monitor.daemon.scheduler import FIRST_LISTING_WINDOW_S, ProbeScheduler
from monitor.errors import ConfigError
from monitor.exporter.exporter import Exporter
from monitor.gateway.client import USER_AGENT, GatewayClient
from monitor.logs import SecretScrubber
from monitor.results import ProbeResult
from monitor.spend.budget import Budget
from monitor.statuspage.queries import PageReader
from monitor.statuspage.routes import status_routes
from monitor.store import queries
from monitor.store.db import sqlite_file
from monitor.store.lease import FileLock, FileLockHeld

log = logging.getLogger("nexomon.daemon")

# Bounds of how often the location lock is checked (see lock_period_s).
LOCK_PERIOD_MIN_S = 0.5
LOCK_PERIOD_MAX_S = 30.0
_UA_UNSAFE = re.compile(r"[^A-Za-z0-9._:@+-]")


def listen_error(config: Config, exc: OSError) -> str:
    """One line naming ``monitor.listen`` for a socket that could not be bound."""
    where = f"{config.source}: monitor.listen: {config.monitor.listen}"
    reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is in use ({reason})"
    return f"{where} cannot be listened on ({reason})"


def lock_sqlite(config: Config) -> FileLock | None:
    """The SQLite database's lock, held for the process's life; None for PostgreSQL.

    Raises ConfigError (exit 2, before any probe) naming the holder's pid
    when another ``nexomon run`` has it.
    """
    url = config.monitor.database_url
    path = sqlite_file(url)
    if path is None:
        return None
    try:
        return FileLock.for_database(path)
    except FileLockHeld as held:
        raise ConfigError(
            f"{config.source}: monitor.database_url: {url} is in use by another"
            f" nexomon run (pid {held.pid})"
        ) from None


def lock_period_s(config: Config) -> float:
    """How often the location lock is tried (standby) or checked (active).

    Half the shortest probe interval, so a standby takes over within one
    interval of the active one's death and a holder that lost its session
    stops within one interval; kept within 0.5-30 s.
    """
    shortest = min(
        (min(t.models_interval, t.chat_interval) for t in config.targets),
        default=2 * LOCK_PERIOD_MAX_S,
    )
    return min(max(shortest / 2, LOCK_PERIOD_MIN_S), LOCK_PERIOD_MAX_S)


def user_agent(location: str) -> str:
    """``nexomon/V (location=L)``, so gateway logs (and the simulator's regional
    faults) tell the instances apart; characters outside a safe set become ``_``."""
    return f"{USER_AGENT} (location={_UA_UNSAFE.sub('_', location)})"


def build_clients(config: Config, scrubber: SecretScrubber) -> dict[str, GatewayClient]:
    """One GatewayClient per target; each key read is registered for log redaction.

    The https targets share one TLS context (CA bundle loaded once: ~0.8 MB and
    ~10 ms each otherwise, 80 MB at 100 targets); without one, none is made.
    """
    clients = {}
    https = any(t.base_url.lower().startswith("https:") for t in config.targets)
    verify: ssl.SSLContext | bool = httpx.create_ssl_context(trust_env=True) if https else True
    for target in config.targets:
        key = target.api_key()
        scrubber.add(key)
        clients[target.name] = GatewayClient(
            target.base_url,
            key,
            timeout=target.timeout,
            max_body_bytes=target.max_body_bytes,
            user_agent=user_agent(config.monitor.location),
            verify=verify,
        )
    return clients


def build_runner(
    config: Config,
    scrubber: SecretScrubber,
    *,
    sinks: Sequence[Sink] = (),
    budget: Budget | None = None,
    exporter: Exporter | None = None,
) -> tuple[ProbeRunner, dict[str, GatewayClient]]:
    """The runner of ``config``'s targets and the clients it sends through."""
    clients = build_clients(config, scrubber)
    runner = ProbeRunner(
        location=config.monitor.location,
        targets={t.name: t for t in config.targets},
        clients=clients,
        pricing=config.pricing,
        budget=budget,
        sinks=sinks,
        on_bug=exporter.probe_error if exporter else (lambda: None),
        on_unpriced=exporter.mark_unpriced if exporter else None,
    )
    return runner, clients


def bearer_token(config: Config, key: str, scrubber: SecretScrubber) -> str | None:
    """The bearer token named by ``[monitor] key`` (an environment variable), or None."""
    name = getattr(config.monitor, key)
    if not name:
        return None
    token = os.environ.get(name)
    if not token:
        raise ConfigError(f"{config.source}: monitor.{key}: environment variable {name} is not set")
    scrubber.add(token)
    return token


def seed_budget(budget: Budget, engine: Engine, location: str, now: datetime) -> None:
    """Seed ``budget`` with ``location``'s spend today (blocking: call it off the loop).

    A database that does not answer leaves the budget at zero (logged): probing goes on.
    """
    try:
        with Session(engine) as session:
            usd, tokens = queries.spend_today(session, location, now)
    except Exception as exc:  # database down at startup: probe on, spend unknown
        reason = type(exc).__name__
        log.warning("cannot read today's spend (%s); the budget starts from zero", reason)
        return
    budget.seed(usd, tokens)


def first_round_s(config: Config) -> float:
    """Seconds until every configured job has run once (listing window + chat interval)."""
    chat = max((t.chat_interval for t in config.targets), default=0.0)
    return FIRST_LISTING_WINDOW_S + min(chat, 3600.0) + 1.0


def forget_dropped(
    exporter: Exporter, old_config: Config, new_config: Config, old_scheduler: ProbeScheduler
) -> None:
    """Drops the series of targets and models a reload removed (no stale gauges)."""
    now = {t.name: t for t in new_config.targets}
    for old_target in old_config.targets:
        target = now.get(old_target.name)
        if target is None:
            exporter.forget_target(old_target.name)
        elif "*" not in target.models:  # with "*" the next listing decides
            for model in old_scheduler.chat_jobs(target.name) - set(target.models):
                exporter.forget(target.name, model)


def page_routes(
    config: Config,
    metrics_token: str | None,
    *,
    engine: Callable[[], Engine | None],
    live: Callable[[], Mapping[tuple[str, str, str], ProbeResult]],
    now: Callable[[], datetime],
    reader: PageReader | None = None,
) -> list[BaseRoute]:
    """The status page's routes (monitor.statuspage) under ``[monitor] status_page``.

    Unset, the page asks for the metrics token when there is one, else it is
    public; ``badges`` default to the page's mode. "token" with no metrics
    token set is a config error naming the key.
    """
    monitor = config.monitor
    access = monitor.status_page or ("token" if metrics_token else "public")
    badges = monitor.badges or access
    for key, mode in (("status_page", access), ("badges", badges)):
        if mode == "token" and not metrics_token:
            raise ConfigError(
                f'{config.source}: monitor.{key}: "token" needs monitor.metrics_token_env'
            )
    return status_routes(
        engine=engine,
        live=live,
        location=monitor.location,
        access=access,
        token=metrics_token,
        badge_access=badges,
        degraded_latency={
            t.name: t.degraded_latency for t in config.targets if t.degraded_latency is not None
        },
        now=now,
        reader=reader,
    )


def page_primer(
    reader: PageReader, location: str, now: Callable[[], datetime]
) -> Callable[[Engine], None]:
    """What maintenance runs after each rollup refresh: the status page's read, so
    the cold read (about 1.2 s at 1,000 models) is never a visitor's."""

    def prime(engine: Engine) -> None:
        with engine.connect() as conn:
            reader.read(conn, location, now())

    return prime
