"""Helpers of the reliability tests: a scripted gateway, metric reading, waits, /proc.

``gateway(listing, chat)`` is a Responder for gwfixtures.RawServer: GET
``/v1/models`` answers ``listing()`` (a callable, so a test can change the
catalog while the daemon runs), and POST ``/v1/chat/completions`` hands the
request to ``chat[model]`` (404 for an unknown model). One server can so
give every model its own fault, and one daemon run covers the whole matrix.

Everything here reads the daemon from outside, as an operator would: the
``/metrics`` text, the SQLite file, ``/proc/PID/status``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
from gwfixtures import RawRequest, Responder, _head, reply
from prometheus_client.parser import text_string_to_metric_families
from testutil import free_port, toml_table

DEADLINE_S = 60.0  # generous: the CI box is small and shared


def completion(model: str, *, usage: bool = True) -> dict[str, Any]:
    """A documented-shape chat completion (``usage`` left out on request)."""
    body: dict[str, Any] = {
        "id": "chatcmpl-rel",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "OK"}, "finish_reason": "stop"}
        ],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    return body


def listing_body(ids: Iterable[Any]) -> bytes:
    return json.dumps(
        {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}
    ).encode()


def gateway(listing: Callable[[], bytes], chat: Mapping[str, Responder]) -> Responder:
    """A Responder routing /models to ``listing()`` and chat requests to ``chat[model]``."""
    missing = reply(404, {"error": {"message": "no such model"}})

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        if req.method == "GET" and req.path.endswith("/models"):
            return reply(200, listing())(req, conn, stop)
        try:
            model = req.json().get("model", "")
        except ValueError:
            model = ""
        return chat.get(model, missing)(req, conn, stop)

    return respond


def retry_after_date(seconds: float) -> Responder:
    """A 429 whose ``retry-after`` is an HTTP-date ``seconds`` from the moment it is sent."""

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        date = formatdate(time.time() + seconds, usegmt=True)
        body = {"error": {"message": "slow down"}}
        return reply(429, body, headers={"retry-after": date})(req, conn, stop)

    return respond


def huge_chunked(total: int, chunk: int = 64 * 1024) -> Responder:
    """A 200 streaming ``total`` bytes chunked (no content-length), made lazily."""
    piece = b"x" * chunk

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        conn.sendall(
            _head(200, {"content-type": "application/json", "transfer-encoding": "chunked"})
        )
        sent = 0
        while sent < total and not stop.is_set():
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))  # OSError once the client hangs up
            sent += len(piece)
        conn.sendall(b"0\r\n\r\n")
        return True

    return respond


def huge_declared(total: int, chunk: int = 64 * 1024) -> Responder:
    """A 200 declaring ``content-length: total`` and really sending it."""
    piece = b"x" * chunk

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        conn.sendall(_head(200, {"content-type": "application/json", "content-length": str(total)}))
        sent = 0
        while sent < total and not stop.is_set():
            conn.sendall(piece[: total - sent])
            sent += len(piece)
        return True

    return respond


# -- the daemon as a subprocess ----------------------------------------------
# tests/harness.py has the same two pieces, but it cannot be imported as it
# stands (its ``stop(sig=signal.SIGTERM)`` default resolves ``signal`` to the
# method defined just above it in the class body). Until it is fixed these
# minimal copies keep the reliability tests running.

TEST_KEY = "sk-test-harness-key"


def write_config(
    directory: Path,
    base_url: str,
    *,
    target: Mapping[str, Any] | None = None,
    monitor: Mapping[str, Any] | None = None,
    extra: str = "",
    key: str = TEST_KEY,
) -> Path:
    """nexomon.toml (+ ``api.key``) in ``directory`` for a daemon against ``base_url``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "api.key").write_text(key + "\n")
    monitor_table = {
        "location": "test",
        "database_url": f"sqlite:///{directory / 'nexomon.db'}",
        "listen": f"127.0.0.1:{free_port()}",
        **(monitor or {}),
    }
    target_table = {
        "name": "sim",
        "base_url": base_url,
        "api_key_file": "api.key",
        # no timeout: it defaults to the shorter interval (at most 30 s)
        "models_interval": "2s",
        "chat_interval": "2s",
        "models": ["*"],
        **(target or {}),
    }
    text = "[monitor]\n" + toml_table(monitor_table) + "\n[[targets]]\n" + toml_table(target_table)
    path = directory / "nexomon.toml"
    path.write_text(text + extra)
    return path


def extra_target(name: str, base_url: str, **keys: Any) -> str:
    """TOML text of one more [[targets]] table (appended through write_config's ``extra``)."""
    table = {
        "name": name,
        "base_url": base_url,
        "api_key_file": "api.key",
        "timeout": "2s",
        "models_interval": "2s",
        "chat_interval": "2s",
        **keys,
    }
    return "\n[[targets]]\n" + toml_table(table)


class DaemonProcess:
    """``nexomon run -c CONFIG [ARGS]`` as a subprocess, stdout+stderr in ``daemon.log``."""

    def __init__(self, config_path: Path, env: Mapping[str, str] | None = None) -> None:
        listen = tomllib.loads(config_path.read_text())["monitor"]["listen"]
        self.url = f"http://{listen}"
        self.log_path = config_path.parent / "daemon.log"
        self.config_path = config_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, timeout: float = DEADLINE_S) -> DaemonProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "monitor.cli.main",
                    "run",
                    "-c",
                    str(self.config_path),
                    *args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"daemon not ready after {timeout}s:\n{self.log()}")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Sends ``sig`` and waits; kills (and fails) after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"daemon did not stop within {timeout}s:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# -- /metrics ----------------------------------------------------------------


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text exposition as (name, labels, value)."""
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.append((sample.name, dict(sample.labels), sample.value))
    return out


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the one sample ``name{labels...}`` (a subset match), None if absent."""
    found = [v for n, lb, v in samples(text) if n == name and labels.items() <= lb.items()]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def scrape(daemon: DaemonProcess, **kwargs: Any) -> str:
    response = daemon.get("/metrics", **kwargs)
    assert response.status_code == 200, response.text
    return response.text


def wait_until(
    check: Callable[[], Any],
    what: str,
    daemon: DaemonProcess | None = None,
    timeout: float = DEADLINE_S,
) -> Any:
    """Polls ``check()`` until it returns something truthy; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = "\n" + daemon.log()[-4000:] if daemon is not None else ""
            raise AssertionError(f"timed out waiting for {what}{tail}")
        time.sleep(0.25)


def last_run(daemon: DaemonProcess, target: str, probe: str, model: str = "", **kw: Any) -> float:
    value = metric(
        scrape(daemon, **kw),
        "nexomon_probe_last_run_timestamp_seconds",
        target=target,
        probe=probe,
        model=model,
    )
    return value or 0.0


def assert_still_probing(
    daemon: DaemonProcess, jobs: Iterable[tuple[str, str, str]], **kw: Any
) -> None:
    """/healthz and /readyz answer 200 and every job's last-run timestamp moves on."""
    assert daemon.get("/healthz").status_code == 200
    assert daemon.get("/readyz").status_code == 200, daemon.get("/readyz").text
    for target, probe, model in jobs:
        before = last_run(daemon, target, probe, model, **kw)
        wait_until(
            lambda t=target, p=probe, m=model, b=before: last_run(daemon, t, p, m, **kw) > b,
            f"{target}/{probe}/{model} to probe again",
            daemon,
        )
    assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()


# -- the daemon from outside -------------------------------------------------


def proc_status_kib(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` field in KiB (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def db_rows(db_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` from the daemon's SQLite file (WAL: readers do not block it)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
