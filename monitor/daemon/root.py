"""The composition root: everything ``nexomon run`` wires together lives here.

``Daemon(config).run()`` upgrades the database, starts the writer, the
exporter, the scheduler and the HTTP routes, and runs until SIGTERM or
SIGINT: then it stops scheduling, lets probes in flight finish within their
timeout, flushes the writer and returns 0. SIGHUP reloads the config; a bad
file keeps the old config running and sets
``nexomon_config_last_reload_successful`` to 0.

``build_runner`` (and monitor.store.startup's ``open_store``) are the same
wiring for ``nexomon probe``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from monitor import __version__
from monitor.config import model as config_mod
from monitor.config.model import Config
from monitor.daemon import runtime
from monitor.daemon.catalog_log import CatalogLog
from monitor.daemon.runner import ProbeRunner, RetryAfterHolds, Sink
from monitor.daemon.scheduler import FIRST_LISTING_WINDOW_S, ProbeScheduler
from monitor.daemon.statelog import StateLog
from monitor.daemon.web import WebServer, build_app, connection_limit
from monitor.errors import ConfigError
from monitor.exporter.exporter import Exporter
from monitor.gateway.client import GatewayClient
from monitor.logs import SecretScrubber
from monitor.results import ProbeResult
from monitor.spend.budget import Budget
from monitor.store import queries
from monitor.store.startup import Store, catalog_limits, open_store, summary_level

log = logging.getLogger("nexomon.daemon")

MAINTENANCE_INTERVAL_S = 3600.0


def _listen_error(config: Config, exc: OSError) -> str:
    """One line naming ``monitor.listen`` for a socket that could not be bound."""
    where = f"{config.source}: monitor.listen: {config.monitor.listen}"
    reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is in use ({reason})"
    return f"{where} cannot be listened on ({reason})"


def build_clients(config: Config, scrubber: SecretScrubber) -> dict[str, GatewayClient]:
    """One GatewayClient per target; each key read is registered for log redaction."""
    clients = {}
    for target in config.targets:
        key = target.api_key()
        scrubber.add(key)
        clients[target.name] = GatewayClient(
            target.base_url,
            key,
            timeout=target.timeout,
            max_body_bytes=target.max_body_bytes,
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


class Daemon:
    """``nexomon run``: see the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        scrubber: SecretScrubber,
        config_path: Path | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.scrubber = scrubber
        self.now = now
        self.registry = CollectorRegistry()
        self.exporter = Exporter(self.registry, version=__version__)
        self.catalog_log = CatalogLog(self.exporter)
        # One for the daemon's life: a reload is not a state change of the jobs.
        self.state_log = StateLog()
        self.last_results: dict[tuple[str, str, str], ProbeResult] = {}
        self._stop = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self.store: Store | None = None
        self.web: WebServer | None = None
        self.scheduler: ProbeScheduler | None = None
        self.runner: ProbeRunner | None = None
        self.clients: dict[str, GatewayClient] = {}

    # -- wiring -----------------------------------------------------------
    def _make_budget(self, config: Config) -> Budget:
        return Budget(config.budget.daily_usd, config.budget.daily_tokens, now=self.now)

    def _seed_budget(self, budget: Budget, engine: Engine) -> None:
        try:
            with Session(engine) as session:
                usd, tokens = queries.spend_today(session, self.config.monitor.location, self.now())
        except Exception as exc:  # database down at startup: probe on, spend unknown
            log.warning(
                "cannot read today's spend (%s); the budget starts from zero",
                type(exc).__name__,
            )
            return
        budget.seed(usd, tokens)
        self.exporter.set_budget(budget.spent_usd, budget.limit_usd)

    def _on_result(self, result: ProbeResult) -> None:
        self.last_results[(result.target, result.probe, result.model)] = result
        self.exporter.observe(result)
        if self.runner is not None and self.runner.budget is not None:
            budget = self.runner.budget
            self.exporter.set_budget(budget.spent_usd, budget.limit_usd)
        if result.probe == "models" and self.scheduler is not None:
            target = self.config.target(result.target)
            self.scheduler.sync_chat_jobs(target, result.model_ids)

    def _ready(self) -> tuple[bool, str]:
        if self.scheduler is None or not self.scheduler.running:
            return False, "scheduler not running"
        if self.store is None:
            return False, "database not open"
        trouble = self.store.writer.health()  # dead or stalled: rows are not being written
        if trouble is not None:
            return False, trouble
        try:
            with self.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means not ready
            return False, f"database unreachable: {type(exc).__name__}"
        return True, "ready"

    def _status(self) -> dict[str, Any]:
        since = self.now() - timedelta(hours=24)
        summary: list[dict[str, Any]] = []
        if self.store is not None:
            try:
                with Session(self.store.engine) as session:
                    summary = [row.to_json() for row in queries.status_summary(session, since)]
            except Exception as exc:
                log.warning("status: database query failed: %s", type(exc).__name__)
        return {
            "version": __version__,
            "location": self.config.monitor.location,
            "generated_at": self.now().isoformat(),
            "last_results": [r.to_json() for r in self.last_results.values()],
            "window_24h": summary,
        }

    def _start_probing(
        self, config: Config, budget: Budget, holds: RetryAfterHolds | None = None
    ) -> None:
        self.runner, self.clients = build_runner(
            config,
            self.scrubber,
            sinks=[self._on_result, self.store.writer.submit, self.state_log],  # type: ignore[union-attr]
            budget=budget,
            exporter=self.exporter,
        )
        if holds is not None:
            # A reload must not cut a gateway's retry-after short.
            self.runner.holds = holds
        self.scheduler = ProbeScheduler(self.runner, self.exporter)
        for target in config.targets:
            self.scheduler.add_target(target)
        self.scheduler.start()

    # -- lifecycle --------------------------------------------------------
    async def run(self) -> int:
        """Serve, open the store, then probe; returns 0 after SIGTERM or SIGINT.

        Start-up order: the HTTP socket first, then the store, then the
        scheduler, so a listen address in use or a database that cannot be
        opened is a ConfigError (exit 2) before any probe is sent.
        """
        loop = asyncio.get_running_loop()
        monitor_cfg = self.config.monitor
        self.web = WebServer(
            build_app(
                registry=self.registry,
                ready=self._ready,
                status=self._status,
                metrics_token=self._token("metrics_token_env"),
                status_token=self._token("status_token_env"),
                render_metrics=self.exporter.render_async,
            ),
            monitor_cfg.listen_host,
            monitor_cfg.listen_port,
            max_connections=connection_limit(runtime.raise_open_file_limit()),
        )
        try:
            await self.web.start()
        except OSError as exc:
            self.web = None
            raise ConfigError(_listen_error(self.config, exc)) from None
        try:
            self.store = await asyncio.to_thread(
                open_store, self.config, self.catalog_log, wait_for_database=True
            )
        except BaseException:
            await self.web.stop()
            raise
        writer = self.store.writer
        self.exporter.bind_writer(lambda: writer)
        self.exporter.set_reload_ok(True)
        budget = self._make_budget(self.config)
        await asyncio.to_thread(self._seed_budget, budget, self.store.engine)
        self._start_probing(self.config, budget)
        log.info(
            "nexomon %s running: %d target(s), metrics on http://%s:%d/metrics",
            __version__,
            len(self.config.targets),
            monitor_cfg.listen_host,
            self.web.port,
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested.set)
        maintenance = asyncio.create_task(self._maintenance_loop())
        # GIL hand-off and heap freezing (see monitor.daemon.runtime): the heap is
        # settled once every job has run once, then hourly, and frozen again
        # after any slow full collection.
        switch_interval = runtime.tune()
        settler = asyncio.create_task(runtime.HeapSettler(self._first_round_s()).run())
        freezer = runtime.SurvivorFreezer(loop).__enter__()
        try:
            while not self._stop.is_set():
                waiter = asyncio.create_task(self._reload_requested.wait())
                stopper = asyncio.create_task(self._stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                if self._reload_requested.is_set() and not self._stop.is_set():
                    self._reload_requested.clear()
                    await self.reload()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            maintenance.cancel()
            settler.cancel()
            freezer.__exit__()
            runtime.restore(switch_interval)
            await self.shutdown()
        return 0

    def _first_round_s(self) -> float:
        """Seconds until every configured job has run once (listing window + chat interval)."""
        chat = max((t.chat_interval for t in self.config.targets), default=0.0)
        return FIRST_LISTING_WINDOW_S + min(chat, 3600.0) + 1.0

    def request_stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
            timeout = max((t.timeout for t in self.config.targets), default=30.0)
            left = await self.scheduler.drain(timeout + 1)
            if left:
                log.warning("%d probe(s) still running at shutdown were abandoned", left)
        for client in self.clients.values():
            await client.aclose()
        if self.web is not None:
            await self.web.stop()
        if self.store is None:
            log.info("nexomon stopped")
            return
        summary = await asyncio.to_thread(self.store.close)
        log.log(summary_level(summary), "nexomon stopped: %s", summary)

    async def reload(self) -> bool:
        """Re-reads the config file; a bad file keeps the old config running."""
        if self.config_path is None:
            return False
        try:
            new = config_mod.load(self.config_path)
            for target in new.targets:
                target.api_key()
        except ConfigError as exc:
            log.error("config reload failed, keeping the running config: %s", exc)
            self.exporter.set_reload_ok(False)
            return False
        if new.monitor != self.config.monitor:
            log.warning("config reload: [monitor] changes take effect after a restart")
        old_scheduler, old_clients, old_config = self.scheduler, self.clients, self.config
        old_holds = self.runner.holds if self.runner is not None else None
        if old_scheduler is not None:
            old_scheduler.shutdown()
            await old_scheduler.drain(max((t.timeout for t in old_config.targets), default=5) + 1)
        for client in old_clients.values():
            await client.aclose()
        budget = self._make_budget(new)
        old_budget = self.runner.budget if self.runner else None
        if old_budget is not None:
            budget.seed(old_budget.spent_usd, old_budget.spent_tokens)
        # [monitor] (database, listen, location) changes need a restart; keep the running one.
        self.config = new.model_copy(update={"monitor": self.config.monitor})
        if self.store is not None:
            self.store.writer.catalog_limits = catalog_limits(self.config)
        self._start_probing(self.config, budget, old_holds)
        if old_scheduler is not None:
            self._forget_dropped(old_config, old_scheduler)
        self.exporter.set_reload_ok(True)
        log.info("config reloaded: %d target(s)", len(self.config.targets))
        return True

    def _forget_dropped(self, old_config: Config, old_scheduler: ProbeScheduler) -> None:
        """Drops the series of targets and models a reload removed (no stale gauges)."""
        now = {t.name: t for t in self.config.targets}
        for old_target in old_config.targets:
            target = now.get(old_target.name)
            if target is None:
                self.exporter.forget_target(old_target.name)
            elif "*" not in target.models:  # with "*" the next listing decides
                for model in old_scheduler.chat_jobs(target.name) - set(target.models):
                    self.exporter.forget(target.name, model)

    def _token(self, key: str) -> str | None:
        """The bearer token named by ``[monitor] key`` (an environment variable), or None."""
        name = getattr(self.config.monitor, key)
        if not name:
            return None
        token = os.environ.get(name)
        if not token:
            raise ConfigError(
                f"{self.config.source}: monitor.{key}: environment variable {name} is not set"
            )
        self.scrubber.add(token)
        return token

    async def _maintenance_loop(self) -> None:
        from monitor.store import retention, rollup

        assert self.store is not None
        while True:
            try:
                await asyncio.to_thread(rollup.refresh, self.store.engine, self.now())
                await asyncio.to_thread(
                    retention.prune, self.store.engine, self.config.monitor.retention_days
                )
            except Exception as exc:
                # The exception's type and the first line of its message (bounded);
                # the log pipeline scrubs secrets (a database URL's password).
                detail = (str(exc).strip().splitlines() or [""])[0][:300]
                log.warning(
                    "maintenance (rollup/retention) failed: %s%s",
                    type(exc).__name__,
                    f": {detail}" if detail else "",
                )
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
