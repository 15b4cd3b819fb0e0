"""The work behind each ``nexomon`` subcommand (main.py only parses).

Every handler takes the parsed arguments and the log scrubber (so API keys
it reads are registered for redaction) and returns an exit code, or a
coroutine that cli.main runs to an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from monitor.config import model as config_mod
from monitor.errors import UsageError
from monitor.logs import SecretScrubber


def _load(args: argparse.Namespace) -> config_mod.Config:
    return config_mod.load(config_mod.resolve_path(args.config))


def cmd_config_check(args: argparse.Namespace, scrubber: SecretScrubber) -> int:
    """Validate, read the keys, print the forecast: 0, or ConfigError (exit 2).

    The worst-case forecast always; then, when the configured database has
    chat rows of this location (monitor.store.usage_history), the expected
    figure from them (monitor.spend.expected). The database is only read.

    With ``--online``, one ``GET /models`` per target follows (monitor.cli.online),
    one line each; then 1 when any target failed its check, else 0.
    """
    from monitor.spend.expected import expected, render_expected
    from monitor.spend.forecast import forecast, render_forecast
    from monitor.store.usage_history import load_usage_history

    cfg = _load(args)
    for target in cfg.targets:
        scrubber.add(target.api_key())  # a missing key is a config error worth knowing now
    names = ", ".join(t.name for t in cfg.targets)
    print(f"{cfg.source}: ok ({len(cfg.targets)} target(s): {names})")
    worst = forecast(cfg)
    print(render_forecast(worst))
    # The expected figure needs measured rows; no database, or one that does
    # not answer, leaves the worst case alone (load_usage_history never raises).
    history = load_usage_history(cfg, datetime.now(UTC))
    if history is not None:
        print(render_expected(expected(worst, cfg, history)))
    if not getattr(args, "online", False):
        return 0
    import asyncio

    from monitor.cli.online import exit_code, render, run_online

    checks = asyncio.run(run_online(cfg, scrubber))
    print(render(checks, scrubber), flush=True)
    return exit_code(checks)


async def cmd_probe(args: argparse.Namespace, scrubber: SecretScrubber) -> int:
    """One round; the database is opened (created, migrated) only with ``--record``."""
    cfg = _load(args)
    if args.target is not None and args.target not in {t.name for t in cfg.targets}:
        raise UsageError(f"--target {args.target}: no such target in {cfg.source}")
    # Imported after the checks above: a usage or config error answers at once.
    from monitor.daemon.probe_round import render_json, render_table, run_round
    from monitor.daemon.root import build_runner

    store = None
    sinks = []
    if args.record:
        from monitor.store.startup import open_store

        store = open_store(cfg)
        sinks.append(store.writer.submit)
    runner, clients = build_runner(cfg, scrubber, sinks=sinks)
    try:
        results = await run_round(runner, cfg, target=args.target, model=args.model)
    finally:
        for client in clients.values():
            await client.aclose()
        if store is not None:
            store.close()
    done = [r for r in results if r is not None]
    print(render_json(done) if args.json else render_table(done))
    crashed = len(results) - len(done)
    if crashed:
        print(f"nexomon: {crashed} probe(s) crashed (a bug; see the log)", file=sys.stderr)
    return 0 if done and not crashed and all(r.success for r in done) else 1


def cmd_report(args: argparse.Namespace, scrubber: SecretScrubber) -> int:
    """Read-only: a missing database or an old schema is a ConfigError (exit 2)."""
    from monitor.cli.report import build_report, parse_since, render
    from monitor.store.reading import open_for_reading

    cfg = _load(args)
    try:
        since = parse_since(args.since, datetime.now(UTC))
    except ValueError as exc:
        raise UsageError(f"--since {args.since}: {exc}") from None
    reader = open_for_reading(cfg)  # read-only: never creates a file or migrates
    try:
        rows = build_report(reader, since=since, by=args.by, location=args.location)
    finally:
        reader.close()
    print(render(rows, args.format, wide=args.wide))
    return 0


def cmd_db_upgrade(args: argparse.Namespace, scrubber: SecretScrubber) -> int:
    from monitor.store.db import redact, upgrade

    cfg = _load(args)
    upgrade(cfg.monitor.database_url)
    print(f"database at head: {redact(cfg.monitor.database_url)}")
    return 0


def cmd_simulate(args: argparse.Namespace, scrubber: SecretScrubber) -> int:
    from monitor.simulator.server import DEFAULT_PORT, serve

    """Serve the fake gateway until Ctrl-C (exit 0); ``--api-key`` admits only that key."""
    port = DEFAULT_PORT if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: must be 0..65535")
    api_key = getattr(args, "api_key", None)
    if api_key is not None and (not api_key.strip() or any(c.isspace() for c in api_key)):
        raise UsageError("--api-key: must be non-empty without whitespace")
    serve(args.host, port, args.scenario, api_key=api_key)
    return 0


async def cmd_run(args: argparse.Namespace, scrubber: SecretScrubber) -> int:
    from monitor.daemon import runtime
    from monitor.daemon.root import Daemon

    runtime.tune_malloc()  # this process is the daemon: before it starts any thread
    cfg = _load(args)
    daemon = Daemon(cfg, scrubber=scrubber, config_path=cfg.source)
    return await daemon.run()


def cmd_demo(args: argparse.Namespace, scrubber: SecretScrubber) -> Any:
    from monitor.cli.demo import run_demo

    return run_demo(port=args.port, duration=args.duration, scrubber=scrubber)


HANDLERS: dict[str, Callable[[argparse.Namespace, SecretScrubber], Any]] = {
    "run": cmd_run,
    "probe": cmd_probe,
    "report": cmd_report,
    "db upgrade": cmd_db_upgrade,
    "config check": cmd_config_check,
    "simulate": cmd_simulate,
    "demo": cmd_demo,
}
