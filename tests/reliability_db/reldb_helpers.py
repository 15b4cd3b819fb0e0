"""Helpers for the database-reliability tests: a fault-free simulator, polling, row checks.

The simulator here answers every request quickly and correctly, so each
request it logs must become exactly one ``probe_results`` row: the tests
compare the simulator's request ids with the rows' ``request_id`` column.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from testutil import free_port

from monitor.simulator.scenario import Scenario
from monitor.store.db import normalize_url

# Two models, 5 ms each, no faults and no rate limit: one row per request.
SCENARIO = Scenario.from_dict(
    {
        "name": "reldb",
        "models": {
            "db-a": {"latency_ms": 5},
            "db-b": {"latency_ms": 5},
        },
    }
)
PROBE_PATHS = ("/v1/models", "/v1/chat/completions")


LOCATION = "test"  # every daemon_config daemon's [monitor] location

TEST_KEY = "sk-reldb-test-key"


def daemon_config(
    directory: Path,
    base_url: str,
    database_url: str,
    *,
    target: Mapping[str, Any] | None = None,
) -> Path:
    """nexomon.toml for a daemon probing every second, its spool in ``directory/spool``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "api.key").write_text(TEST_KEY + "\n")
    monitor = {
        "location": LOCATION,
        "database_url": database_url,
        "listen": f"127.0.0.1:{free_port()}",
        "spool_dir": str(directory / "spool"),
    }
    targets = {
        "name": "sim",
        "base_url": base_url,
        "api_key_file": "api.key",
        "timeout": "1s",
        "models_interval": "1s",
        "chat_interval": "1s",
        "models": ["*"],
        **(target or {}),
    }
    lines = ["[monitor]", *_pairs(monitor), "", "[[targets]]", *_pairs(targets)]
    path = directory / "nexomon.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _pairs(values: Mapping[str, Any]) -> list[str]:
    return [f"{key} = {json.dumps(value)}" for key, value in values.items()]


class Daemon:
    """``nexomon run -c CONFIG`` as a subprocess; the log goes to ``daemon.log`` beside it.

    Unlike tests/harness.py's DaemonProcess it can start without waiting
    for /readyz (a daemon started during a database outage is alive, not
    ready) and waits up to a minute on this slow, shared machine.
    """

    def __init__(self, config_path: Path) -> None:
        import tomllib

        self.config_path = config_path
        listen = tomllib.loads(config_path.read_text())["monitor"]["listen"]
        self.url = f"http://{listen}"
        self.log_path = config_path.parent / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True, timeout: float = 60) -> Daemon:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor.cli.main", "run", "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ),
            )
        if wait_ready:
            wait_until(lambda: self._answers("/readyz"), "the daemon to be ready", timeout)
        else:
            wait_until(lambda: self._answers("/healthz"), "the daemon to answer", timeout)
        return self

    def _answers(self, path: str) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
        return status_of(self.url + path) == 200

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Sends ``sig`` and waits for the exit code (kills after ``timeout``)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"daemon did not stop in {timeout}s:\n{self.log()}") from None
        return self.proc.returncode

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Polls ``predicate`` until it returns something truthy; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def status_of(url: str) -> int | None:
    """The HTTP status of GET ``url`` (None when nothing answers)."""
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return None


def sim_request_ids(sim: Any) -> list[str]:
    """Request ids of every /models and chat request the simulator answered."""
    return [e["request_id"] for e in sim.simulator.stats.log() if e["path"] in PROBE_PATHS]


def sim_requests(sim: Any) -> int:
    stats = sim.simulator.stats
    return stats.models_requests + stats.chat_requests()


@dataclass(frozen=True)
class Rows:
    """What ``probe_results`` holds: every row's (result_id, request_id, outcome)."""

    rows: list[tuple[str, str | None, str]]

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def result_ids(self) -> list[str]:
        return [r[0] for r in self.rows]

    @property
    def request_ids(self) -> list[str]:
        return [r[1] for r in self.rows if r[1] is not None]

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.rows if r[2] == "skipped")


def read_rows(database_url: str) -> Rows:
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            result = conn.execute(text("SELECT result_id, request_id, outcome FROM probe_results"))
            return Rows([(r[0], r[1], r[2]) for r in result])
    finally:
        engine.dispose()


def row_count(database_url: str) -> int:
    """Rows in probe_results; 0 when the table or the server is not there (yet)."""
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM probe_results")).scalar() or 0)
    except Exception:
        return 0
    finally:
        engine.dispose()


def assert_no_duplicates(rows: Rows) -> None:
    """Every result_id and every gateway request id appears once."""
    assert len(set(rows.result_ids)) == rows.count, "a result_id was stored twice"
    seen: dict[str, int] = {}
    for rid in rows.request_ids:
        seen[rid] = seen.get(rid, 0) + 1
    twice = {rid: n for rid, n in seen.items() if n > 1}
    assert not twice, f"request ids stored more than once: {twice}"


def spool_lines(spool_dir: Path) -> int:
    """Results waiting in the spool file(s) of ``spool_dir``."""
    if not spool_dir.exists():
        return 0
    return sum(
        len([line for line in path.read_text().splitlines() if line.strip()])
        for path in spool_dir.glob("*.jsonl")
    )
