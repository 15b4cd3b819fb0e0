"""The composition root: everything ``nexomon run`` wires together lives here.

``Daemon(config).run()`` upgrades the database, starts the writer, the
exporter, the scheduler and the HTTP routes, and runs until SIGTERM or
SIGINT: then it stops scheduling, lets probes in flight finish within their
timeout, flushes the writer and returns 0. SIGHUP reloads the config; a bad
file keeps the old config running and sets
``nexomon_config_last_reload_successful`` to 0.

One active prober per location: on SQLite the daemon holds the database's
lock file (a second ``run`` on the file is a ConfigError naming the holder's
pid); on PostgreSQL a ``ProberGate`` (monitor.daemon.standby) holds the
location's advisory lock, and without it the process is a hot standby that
serves HTTP, writes nothing and takes over when the lock comes free.

``build_runner`` (monitor.daemon.wiring, re-exported here) and
monitor.store.startup's ``open_store`` are the same wiring for
``nexomon probe``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.config import model as config_mod
from monitor.config.model import Config
from monitor.daemon import runtime
from monitor.daemon.answers import readiness, status_document
from monitor.daemon.catalog_log import CatalogLog
from monitor.daemon.jsonbody import ResultsJson
from monitor.daemon.last_results import LastResults
from monitor.daemon.maintenance import maintenance_loop
from monitor.daemon.runner import ProbeRunner, RetryAfterHolds
from monitor.daemon.scheduler import ProbeScheduler
from monitor.daemon.standby import ProberGate
from monitor.daemon.statelog import StateLog
from monitor.daemon.status_window import StatusWindow
from monitor.daemon.substitution_log import SubstitutionLog
from monitor.daemon.web import WebServer, build_app, connection_limit
from monitor.daemon.wiring import (
    bearer_token,
    build_clients,
    build_runner,
    first_round_s,
    forget_dropped,
    listen_error,
    lock_period_s,
    lock_sqlite,
    page_primer,
    page_routes,
    seed_budget,
)
from monitor.errors import ConfigError
from monitor.exporter.exporter import Exporter
from monitor.exporter.tls import TlsWatch
from monitor.gateway.client import GatewayClient
from monitor.logs import SecretScrubber
from monitor.results import ProbeResult
from monitor.spend.budget import Budget
from monitor.statuspage.queries import PageReader
from monitor.store.db import normalize_url
from monitor.store.lease import FileLock, LocationLock
from monitor.store.startup import Store, catalog_limits, open_store, summary_level

__all__ = ["Daemon", "build_clients", "build_runner"]

log = logging.getLogger("nexomon.daemon")


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
        self.exporter = Exporter(
            self.registry,
            version=__version__,
            location=config.monitor.location,
            compact=config.monitor.model_metrics == "compact",
        )
        self.catalog_log = CatalogLog(self.exporter)
        # TLS expiry of the https targets, from the connection of each /models probe.
        self.tls = TlsWatch(config.monitor.location)
        self.registry.register(self.tls)
        # One for the daemon's life: a reload is not a state change of the jobs.
        self.state_log = StateLog()
        self.substitution_log = SubstitutionLog()
        self.last_results = LastResults()  # read by the status routes' worker threads
        self.results_json = ResultsJson()  # /api/v1/status: each last result encoded once
        self.status_window = StatusWindow(
            lambda: self.store,
            now=self.now,
            warm=lambda: self.results_json.refresh(self.last_results.snapshot()),
        )
        self._stop = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self.store: Store | None = None
        self.web: WebServer | None = None
        self.scheduler: ProbeScheduler | None = None
        self.runner: ProbeRunner | None = None
        self.clients: dict[str, GatewayClient] = {}
        self.page_reader = PageReader()  # the status page's reads, primed by maintenance
        self.gate: ProberGate | None = None  # PostgreSQL only: the location lock
        self._file_lock: FileLock | None = None  # SQLite only: the database's lock file
        self._switch = asyncio.Lock()  # one of activate, deactivate, reload at a time
        self._maintenance: asyncio.Task[None] | None = None

    # -- wiring -----------------------------------------------------------
    def _make_budget(self, config: Config) -> Budget:
        return Budget(config.budget.daily_usd, config.budget.daily_tokens, now=self.now)

    def _on_result(self, result: ProbeResult) -> None:
        self.last_results.put(result)
        self.exporter.observe(result)
        if self.runner is not None and self.runner.budget is not None:
            budget = self.runner.budget
            self.exporter.set_budget(budget.spent_usd, budget.limit_usd)
        if result.probe == "models":
            client = self.clients.get(result.target)
            self.tls.observe(result.target, None if client is None else client.tls)
        if result.probe == "models" and self.scheduler is not None:
            target = self.config.target(result.target)
            self.scheduler.sync_chat_jobs(target, result.model_ids)

    def _ready(self) -> tuple[bool, str]:
        return readiness(self.gate, self.scheduler, self.store)

    def _status(self) -> bytes:
        location = self.config.monitor.location
        now = self.now()
        return status_document(
            location,
            now,
            self.last_results.snapshot(),
            self.status_window,
            self.results_json,
            tls=self.tls.rows(now),
        )

    def _start_probing(
        self, config: Config, budget: Budget, holds: RetryAfterHolds | None = None
    ) -> None:
        self.runner, self.clients = build_runner(
            config,
            self.scrubber,
            sinks=[
                self._on_result,
                self.store.writer.submit,  # type: ignore[union-attr]
                self.state_log,
                self.substitution_log,
            ],
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

    # -- one active prober per location ------------------------------------
    async def _start_gate(self) -> asyncio.Task[None] | None:
        """Probe now (SQLite), or once the location's lock is ours (PostgreSQL)."""
        url = self.config.monitor.database_url
        if normalize_url(url).get_backend_name() != "postgresql":
            await self._activate()
            return None
        self.gate = ProberGate(
            LocationLock(url, self.config.monitor.location),
            period=lambda: lock_period_s(self.config),
            activate=self._activate,
            deactivate=self._deactivate,
            switch=self._switch,
        )
        await self.gate.start()
        return asyncio.create_task(self.gate.run())

    async def _activate(self) -> None:
        """Start probing: the store, today's spend from the database, the scheduler,
        maintenance."""
        if self.store is None:
            await self._open_store()
        assert self.store is not None
        budget = self._make_budget(self.config)
        location = self.config.monitor.location
        await asyncio.to_thread(seed_budget, budget, self.store.engine, location, self.now())
        self.exporter.set_budget(budget.spent_usd, budget.limit_usd)
        self._start_probing(self.config, budget)
        self._maintenance = asyncio.create_task(self._maintenance_loop())
        self.exporter.set_prober_active(True)

    async def _deactivate(self) -> None:
        """Stop probing at once (probes in flight get 1 s), then close the store so
        the instance taking over gets the spool."""
        await self._stop_probing(1.0)
        self.exporter.set_prober_active(False)
        if self.store is not None:
            store, self.store = self.store, None
            summary = await asyncio.to_thread(store.close)
            log.log(summary_level(summary), "standing by, store closed: %s", summary)

    async def _stop_probing(self, grace_s: float) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            self._maintenance = None
        if self.scheduler is not None:
            self.scheduler.shutdown()
            left = await self.scheduler.drain(grace_s)
            if left:
                log.warning("%d probe(s) still running were abandoned", left)
            self.scheduler = None
        for client in self.clients.values():
            await client.aclose()
        self.clients = {}

    # -- lifecycle --------------------------------------------------------
    async def _open(self) -> asyncio.Task[None] | None:
        """Bind HTTP, open the store, then probe or stand by (see run)."""
        assert self.web is not None
        try:
            await self.web.start()
        except OSError as exc:
            raise ConfigError(listen_error(self.config, exc)) from None
        self.exporter.set_reload_ok(True)
        return await self._start_gate()

    async def _open_store(self) -> None:
        """Open the store (its writer, journal and spool, held with a lock) to probe.

        Only the active prober opens it: a standby of the same location would
        otherwise replay, and clear, the spool the active one appends to.
        """
        self.store = await asyncio.to_thread(
            open_store, self.config, self.catalog_log, wait_for_database=True
        )
        writer = self.store.writer
        self.exporter.bind_writer(lambda: writer)

    async def _abort_start(self) -> None:
        """Undo a failed start: nothing stays bound, open or locked in this process."""
        if self.web is not None:
            await self.web.stop()
            self.web = None
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None
        if self.gate is not None:
            await self.gate.close()
        if self._file_lock is not None:
            self._file_lock.release()

    async def run(self) -> int:
        """Serve, open the store, then probe; returns 0 after SIGTERM or SIGINT.

        Start-up order: the HTTP socket first, then the store, then the
        scheduler, so a listen address in use or a database that cannot be
        opened is a ConfigError (exit 2) before any probe is sent.
        """
        loop = asyncio.get_running_loop()
        monitor_cfg = self.config.monitor
        self._file_lock = lock_sqlite(self.config)
        metrics_token = bearer_token(self.config, "metrics_token_env", self.scrubber)
        self.web = WebServer(
            build_app(
                registry=self.registry,
                ready=self._ready,
                status=self._status,
                page_routes=page_routes(
                    self.config,
                    metrics_token,
                    engine=lambda: self.store.engine if self.store is not None else None,
                    live=self.last_results.snapshot,
                    now=self.now,
                    reader=self.page_reader,
                ),
                metrics_token=metrics_token,
                status_token=bearer_token(self.config, "status_token_env", self.scrubber),
                render_metrics=self.exporter.render_async,
            ),
            monitor_cfg.listen_host,
            monitor_cfg.listen_port,
            max_connections=connection_limit(runtime.raise_open_file_limit()),
        )
        try:
            gate_task = await self._open()
        except BaseException:
            await self._abort_start()
            raise
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
        # GIL hand-off and heap freezing (see monitor.daemon.runtime): the heap is
        # settled once every job has run once, then hourly, and frozen again
        # after any slow full collection.
        switch_interval = runtime.tune()
        settler = asyncio.create_task(runtime.HeapSettler(first_round_s(self.config)).run())
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
            if gate_task is not None:
                gate_task.cancel()
            settler.cancel()
            freezer.__exit__()
            runtime.restore(switch_interval)
            await self.shutdown()
        return 0

    def request_stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        timeout = max((t.timeout for t in self.config.targets), default=30.0)
        await self._stop_probing(timeout + 1)
        if self.gate is not None:
            await self.gate.close()
        if self._file_lock is not None:
            self._file_lock.release()
        if self.web is not None:
            await self.web.stop()
        self.status_window.close()
        if self.store is None:
            log.info("nexomon stopped")
            return
        summary = await asyncio.to_thread(self.store.close)
        log.log(summary_level(summary), "nexomon stopped: %s", summary)

    async def reload(self) -> bool:
        """Re-reads the config file; a bad file keeps the old config running."""
        async with self._switch:
            return await self._reload()

    async def _reload(self) -> bool:
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
        if self.gate is None or self.gate.active:  # a standby only keeps the new config
            self._start_probing(self.config, budget, old_holds)
        if old_scheduler is not None:
            forget_dropped(self.exporter, old_config, self.config, old_scheduler)
        https = (t.name for t in self.config.targets if urlsplit(t.base_url).scheme == "https")
        self.tls.retain(https)  # a target gone or now plain http has no certificate
        self.exporter.set_reload_ok(True)
        log.info("config reloaded: %d target(s)", len(self.config.targets))
        return True

    async def _maintenance_loop(self) -> None:
        assert self.store is not None
        await maintenance_loop(
            self.store.engine,
            self.now,
            self.config.monitor.retention_days,
            after_refresh=page_primer(self.page_reader, self.config.monitor.location, self.now),
        )
