"""Helpers of the CLI tests (imported as ``cli_helpers``).

``nexomon(...)`` runs the real command as a subprocess
(``python -m monitor.cli.main``), ``write_config`` writes a config file the way a
user would, ``parse_table`` reads the ``nexomon probe`` table back by its
header's column offsets, and ``SimulateProcess`` is ``nexomon simulate`` as a
subprocess, stopped with SIGINT like Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from testutil import toml_table

REPO = Path(__file__).resolve().parents[2]
TABLE_COLUMNS = (
    "TARGET",
    "PROBE",
    "MODEL",
    "OUTCOME",
    "HTTP",
    "LATENCY_MS",
    "TOKENS_IN",
    "TOKENS_OUT",
    "RL_REMAINING",
    "REQUEST_ID",
    "ERROR",
)
# The keys `nexomon probe --json` documents (README, issue 2); more are allowed.
JSON_KEYS = {
    "target",
    "probe",
    "model",
    "outcome",
    "success",
    "http_status",
    "duration_s",
    "phases",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "ratelimit_limit",
    "ratelimit_remaining",
    "retry_after_s",
    "request_id",
    "finish_reason",
    "response_model",
    "error",
}
COMMAND_TIMEOUT_S = 90  # generous: the CI machine is shared and slow


def unique_secret() -> str:
    """An API key no output could contain by chance."""
    return f"sk-nxtest-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Ran:
    """A finished ``nexomon`` subprocess."""

    args: tuple[str, ...]
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:  # shown by pytest when an assertion on it fails
        head = f"nexomon {' '.join(self.args)} -> {self.rc}"
        return f"{head}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def nexomon(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    prelude: str | None = None,
    timeout: float = COMMAND_TIMEOUT_S,
) -> Ran:
    """Run ``nexomon ARGS`` to completion.

    ``prelude`` is Python run in the child before ``monitor.cli.main.main`` (to
    inject a fault the real parts cannot produce); without it the child is
    exactly ``python -m monitor.cli.main ARGS``.
    """
    if prelude is None:
        command = [sys.executable, "-m", "monitor.cli.main", *args]
    else:
        code = (
            prelude
            + "\nimport sys\nfrom monitor.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
        )
        command = [sys.executable, "-c", code, *args]
    full_env = {**os.environ, **(env or {})}
    full_env.pop("NEXOMON_CONFIG", None)
    full_env.pop("NEXOMON_DATABASE_URL", None)
    full_env.pop("NEXOMON_DATA_DIR", None)
    proc = subprocess.run(
        command,
        env=full_env,
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(tuple(args), proc.returncode, proc.stdout, proc.stderr)


def target(name: str, base_url: str, **keys: Any) -> dict[str, Any]:
    """A [[targets]] table; the key source (api_key_env/api_key_file) is in ``keys``."""
    return {
        "name": name,
        "base_url": base_url,
        "timeout": "5s",
        "models": ["*"],
        **keys,
    }


def write_config(
    directory: Path,
    targets: Sequence[Mapping[str, Any]],
    *,
    monitor: Mapping[str, Any] | None = None,
    extra: str = "",
    name: str = "nexomon.toml",
) -> Path:
    """Writes a config with ``targets``; SQLite in ``directory`` unless ``monitor`` says."""
    monitor_table = {
        "location": "cli-test",
        "database_url": f"sqlite:///{directory / 'nexomon.db'}",
        **(monitor or {}),
    }
    parts = ["[monitor]\n" + toml_table(monitor_table)]
    parts += ["[[targets]]\n" + toml_table(t) for t in targets]
    path = directory / name
    path.write_text("\n".join(parts) + "\n" + extra, encoding="utf-8")
    return path


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of the ``nexomon probe`` table as dicts keyed by column title.

    Cells are cut at the header's column offsets (the table is left-aligned),
    so an ERROR cell may hold spaces.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    titles = header.split()
    starts = []
    at = 0
    for title in titles:
        at = header.index(title, at)
        starts.append(at)
        at += len(title)
    rows = []
    for line in lines[1:]:
        cells = [
            line[start : starts[i + 1] if i + 1 < len(starts) else None].strip()
            for i, start in enumerate(starts)
        ]
        rows.append(dict(zip(titles, cells, strict=True)))
    return rows


def header_titles(text: str) -> list[str]:
    return text.splitlines()[0].split()


def assert_absent(secret: str, *outputs: str) -> None:
    """``secret`` (or its first half, in case it was cut) appears in no output."""
    half = secret[: len(secret) // 2]
    for output in outputs:
        assert secret not in output, f"the API key leaked:\n{output}"
        assert half not in output, f"part of the API key leaked:\n{output}"


def sim_request_ids(stats: Any, path_suffix: str | None = None) -> set[str]:
    return {
        e["request_id"]
        for e in stats.log()
        if path_suffix is None or e["path"].endswith(path_suffix)
    }


class SimulateProcess:
    """``nexomon simulate --port PORT [ARGS]`` as a subprocess; a context manager.

    Enter waits until ``/v1/models`` answers (any status); exit sends SIGINT
    (Ctrl-C) and, if it is still running after a deadline, kills it.
    """

    def __init__(self, port: int, *args: str, cwd: Path | None = None) -> None:
        self.port = port
        self.args = ("simulate", "--port", str(port), *args)
        self.cwd = cwd or REPO
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SimulateProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli.main", *self.args],
            cwd=self.cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"nexomon simulate exited {self.proc.returncode}:\n{out}{err}")
            try:
                httpx.get(self.base_url + "/models", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("nexomon simulate did not start within 60s")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> tuple[int, str, str]:
        """Sends ``sig``; returns (exit code, stdout, stderr). Kills after ``timeout``."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"nexomon simulate ignored {sig!r}:\n{out}{err}") from None
        return self.proc.returncode, out, err

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def by_model(results: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """JSON results keyed by model ("" for the models probe); models unique per target."""
    return {r["model"]: r for r in results}
