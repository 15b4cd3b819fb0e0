"""The ``nexomon`` command group: ``main(argv) -> exit code``; ``console()`` is the script.

Exit codes: 0 fine, 1 probe failures (or a store failure), 2 usage or config
error. Errors print as one line on stderr; a traceback only with ``--debug``.
Each command only parses its arguments and calls the module that does the
work, so everything here stays thin.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from monitor import __version__
from monitor.cli.bundled import scenario_arg
from monitor.errors import NexomonError, UsageError
from monitor.logs import setup_logging


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other error."""

    # Built only for --help: the simulate epilog imports the simulator, about
    # 15 ms of every command's start-up (nexomon report's included) otherwise.
    lazy_epilog: Callable[[], str] | None = None

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def format_help(self) -> str:
        if self.lazy_epilog is not None and self.epilog is None:
            self.epilog = self.lazy_epilog()
        return super().format_help()


def _simulate_epilog() -> str:
    from monitor.simulator.help import simulate_epilog

    return simulate_epilog()


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "-c", "--config", help="config file (default: $NEXOMON_CONFIG or ./nexomon.toml)"
    )
    common.add_argument("--debug", action="store_true", help="print tracebacks, log at debug")
    common.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    common.add_argument("--log-format", default="text", choices=["text", "json"])

    parser = _Parser(
        prog="nexomon",
        description="Monitor an OpenAI-compatible LLM gateway: uptime, latency, limits, spend.",
    )
    parser.add_argument("--version", action="version", version=f"nexomon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", parents=[common], help="run the daemon")
    sub.add_parser(
        "health", parents=[common], help="exit 0 when the daemon's /healthz answers ok (4 s)"
    )

    probe = sub.add_parser("probe", parents=[common], help="run one round of probes now")
    probe.add_argument("--target", help="only this target")
    probe.add_argument("--model", help="only this model (chat probe)")
    probe.add_argument("--json", action="store_true", help="print JSON instead of a table")
    probe.add_argument("--record", action="store_true", help="also store the round in the database")

    report = sub.add_parser(
        "report", parents=[common], help="availability, latency and spend report"
    )
    report.add_argument("--since", default="7d", help="24h, 7d, 30d or an ISO date (default 7d)")
    report.add_argument(
        "--by",
        default="model",
        choices=["model", "day", "location"],
        help="model: per target/probe/model; day: per UTC day, target, probe kind; "
        "location: per location, target, probe kind, plus a combined '*' row",
    )
    report.add_argument(
        "--location", metavar="NAME", help="only the probes measured by this location"
    )
    report.add_argument("--format", default="table", choices=["table", "json", "csv"])
    report.add_argument(
        "--wide",
        action="store_true",
        help="table: every column, one per outcome (default: the columns that fit 120)",
    )

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_sub.add_parser("upgrade", parents=[common], help="apply migrations")

    config = sub.add_parser("config", help="config file tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    check = config_sub.add_parser(
        "check", parents=[common], help="validate and print the cost forecast"
    )
    check.add_argument(
        "--online",
        action="store_true",
        help="also send one GET /models per target (no chat): key, base_url, models; "
        "exit 1 when a check fails",
    )

    simulate = sub.add_parser(
        "simulate",
        parents=[common],
        help="run the fake gateway",
        description="Run the fake OpenAI-compatible gateway (GET /v1/models, "
        "POST /v1/chat/completions).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.lazy_epilog = _simulate_epilog  # type: ignore[attr-defined]
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=None, help="default 8080")
    simulate.add_argument(
        "--scenario",
        type=scenario_arg,
        help="scenario TOML, or a bundled one by name: default, demo (default: default)",
    )
    simulate.add_argument(
        "--api-key",
        metavar="KEY",
        help="admit only 'Authorization: Bearer KEY'; any other key gets 401 "
        "(replaces the scenario's api_keys)",
    )

    demo = sub.add_parser(
        "demo", parents=[common], help="simulator + daemon on SQLite in a temp dir"
    )
    demo.add_argument(
        "--port", type=int, default=9464, help="HTTP port of the daemon (0 = any free)"
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return _run(_parser().parse_args(argv))


def console() -> NoReturn:
    """The ``nexomon`` console script (pyproject) and ``python -m monitor.cli.main``.

    ``main()`` then ``sys.exit``, except after ``report``, a one-shot read:
    once stdout, stderr and the log handlers are flushed it ends the process
    at once (``os._exit``). The interpreter's teardown of what the command
    leaves (SQLAlchemy, pydantic, a year's groups) was ~0.1 s of a one-second
    report; nothing else runs at exit there (no file written, no database
    change, no child). A flush that fails (a closed pipe) exits 120, as
    CPython does.
    """
    args = _parser().parse_args()
    code = _run(args)
    if args.command != "report":
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: the output is lost
            code = 120
    os._exit(code)


def _run(args: argparse.Namespace) -> int:
    # A one-shot read: the cycle collector would only re-walk the objects of the
    # modules it imports (SQLAlchemy, pydantic) over and over, 6-8 % of a year's
    # report (benchmarks/history.py). Enabled again after, for in-process callers.
    pause_gc = args.command == "report" and gc.isenabled()
    if pause_gc:
        gc.disable()
    try:
        return _main(args)
    finally:
        if pause_gc:
            gc.enable()


def _main(args: argparse.Namespace) -> int:
    level = "debug" if args.debug else args.log_level
    scrubber = setup_logging(level, args.log_format)
    try:
        return _dispatch(args, scrubber)
    except NexomonError as exc:
        print(scrubber.scrub(f"nexomon: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            # Not a bare ``raise``: the interpreter would print the traceback
            # unscrubbed, and an exception message may carry an API key.
            print(scrubber.scrub(traceback.format_exc()), end="", file=sys.stderr)
            return 1
        text = scrubber.scrub(f"{type(exc).__name__}: {exc}")
        print(f"nexomon: unexpected error: {text} (run with --debug for details)", file=sys.stderr)
        logging.getLogger("nexomon").debug("unexpected error", exc_info=True)
        return 1


def _dispatch(args: argparse.Namespace, scrubber) -> int:  # type: ignore[no-untyped-def]
    from monitor.cli import commands

    command = args.command
    if command == "health":  # monitor/cli/health.py: no daemon, store or probe imports
        from monitor.cli.health import cmd_health

        return cmd_health(args.config)
    if command == "db":
        command = f"db {args.db_command}"
    elif command == "config":
        command = f"config {args.config_command}"
    handler = commands.HANDLERS.get(command)
    if handler is None:  # pragma: no cover - argparse rejects unknown commands first
        raise UsageError(f"unknown command {command!r}")
    result = handler(args, scrubber)
    if isinstance(result, int):
        return result
    # Only the long-running commands are coroutines; asyncio is imported for
    # them alone (~25 ms of a one-second nexomon report otherwise).
    import asyncio

    return asyncio.run(result)


if __name__ == "__main__":  # pragma: no cover
    console()
