"""End-to-end harness: the daemon as a real subprocess, and a real Prometheus.

Used by the daemon, deploy, budget and reliability tests. Everything binds
127.0.0.1 on ports chosen at run time, and every process is stopped (and
waited for) by the context managers, also when a test fails.
"""

from __future__ import annotations

import os
import signal as signals
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from testutil import free_port, need_binary, toml_table

TEST_KEY = "sk-test-harness-key"


def write_config(
    directory: Path,
    base_url: str,
    *,
    port: int | None = None,
    database_url: str | None = None,
    target: Mapping[str, Any] | None = None,
    monitor: Mapping[str, Any] | None = None,
    extra: str = "",
    key: str = TEST_KEY,
) -> Path:
    """Writes nexomon.toml (+ the key file) for a daemon against ``base_url``.

    ``target`` and ``monitor`` override keys of the default target and
    [monitor] tables; ``extra`` is appended verbatim (pricing, budget).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "api.key").write_text(key + "\n")
    monitor_table = {
        "location": "test",
        "database_url": database_url or f"sqlite:///{directory / 'nexomon.db'}",
        "listen": f"127.0.0.1:{port or free_port()}",
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
    path.write_text(text + "\n" + textwrap.dedent(extra))
    return path


def listen_url(config_path: Path) -> str:
    import tomllib

    listen = tomllib.loads(config_path.read_text())["monitor"]["listen"]
    return f"http://{listen}"


class DaemonProcess:
    """``nexomon run -c CONFIG`` as a subprocess, its log in ``log_path``."""

    def __init__(self, config_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.config_path = config_path
        self.url = listen_url(config_path)
        self.log_path = config_path.parent / "daemon.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, wait_ready: bool = True, timeout: float = 30) -> DaemonProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli.main", "run", "-c", str(self.config_path), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        log.close()
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready after {timeout}s:\n{self.log()}")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5, **kwargs)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signals.SIGTERM, timeout: float = 30) -> int:
        """Sends ``sig`` and waits; kills after ``timeout``. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon did not stop within {timeout}s:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def running_daemon(
    config_path: Path, env: Mapping[str, str] | None = None
) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(config_path, env).start()
    try:
        yield daemon
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


class PrometheusProcess:
    """A real Prometheus scraping ``targets`` every ``interval``, TSDB in ``directory``."""

    def __init__(
        self,
        directory: Path,
        targets: list[str],
        *,
        interval: str = "1s",
        rule_files: list[Path] | None = None,
    ) -> None:
        self.binary = need_binary("prometheus")
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(p) for p in rule_files or []],
            "scrape_configs": [{"job_name": "nexomon", "static_configs": [{"targets": targets}]}],
        }
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusProcess:
        log = (self.directory / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise AssertionError("prometheus did not become ready")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; returns the result vector."""
        response = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, expr: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Polls until ``expr`` returns a non-empty vector."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        raise AssertionError(f"no result for {expr!r} within {timeout}s")
