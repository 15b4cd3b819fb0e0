"""Helpers for the daemon tests: scenarios, the daemon's SQLite rows, metrics text.

Everything here reads real things (the simulator's request log, the
daemon's SQLite file, its ``/metrics`` text); nothing stands in for a part.
The daemon and Prometheus processes themselves come from ``tests/harness.py``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from monitor.simulator.tokens import complete, prompt_tokens

T = TypeVar("T")

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"


def eventually(check: Callable[[], T], timeout: float = 30.0, every: float = 0.2) -> T:
    """Calls ``check`` until it returns without an AssertionError; re-raises the last one.

    For conditions that a running daemon reaches at its own pace: the test
    waits for them with a generous deadline instead of sleeping.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(every)


# -- the daemon's database ------------------------------------------------------


@dataclass(frozen=True)
class Row:
    started_at: str
    probe: str
    model: str
    outcome: str
    request_id: str | None
    retry_after_s: float | None
    ratelimit_remaining: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    error: str | None
    ratelimit_reset_s: float | None = None
    ratelimit_remaining_tokens: int | None = None
    substituted_by: str | None = None


def db_rows(db_path: Path) -> list[Row]:
    """Every ``probe_results`` row of the daemon's SQLite file, oldest first."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        cursor = conn.execute(
            "SELECT started_at, probe, model, outcome, request_id, retry_after_s,"
            " ratelimit_remaining, prompt_tokens, completion_tokens, error,"
            " ratelimit_reset_s, ratelimit_remaining_tokens, substituted_by"
            " FROM probe_results ORDER BY started_at, id"
        )
        return [Row(*values) for values in cursor.fetchall()]
    finally:
        conn.close()


# -- the simulator's side -------------------------------------------------------


def sim_requests(sim: Any, path: str | None = None, model: str | None = None) -> list[dict]:
    """The simulator's request log (answered requests), optionally filtered."""
    entries = sim.simulator.stats.log()
    return [
        e
        for e in entries
        if (path is None or e["path"] == path) and (model is None or e["model"] == model)
    ]


def usage_per_answer(prompt: str, reply: str, max_tokens: int) -> tuple[int, int]:
    """(prompt, completion) tokens the simulator reports for one chat probe.

    The chat probe sends ``f"{prompt} [nx-xxxxxx]"`` (a 6-hex nonce); the
    simulator's tokenizer counts the nonce as 5 tokens whatever its digits.
    """
    messages = [{"role": "user", "content": f"{prompt} [nx-000000]"}]
    return prompt_tokens(messages), complete(reply, max_tokens)[1]


class ArrivalRecorder:
    """An ASGI wrapper around the simulator app that notes when chat requests arrive.

    The simulator logs a request once it is answered; a test that must act
    while a probe is in flight needs to know when the request came in.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.stats = app.stats
        self.chat_arrived = threading.Event()
        self.chat_arrivals = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("path") == CHAT_PATH:
            with self._lock:
                self.chat_arrivals += 1
            self.chat_arrived.set()
        await self.app(scope, receive, send)


# -- the daemon's /metrics ------------------------------------------------------


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """``{(sample name, frozenset(labels.items())): value}`` of a live ``/metrics``."""
    response = httpx.get(url + "/metrics", timeout=10)
    response.raise_for_status()
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def sample(samples: dict, name: str, **labels: str) -> float | None:
    """The one sample ``name`` whose labels are ``labels`` plus any ``location``."""
    for (n, got), value in samples.items():
        if n == name and {k: v for k, v in got if k != "location"} == labels:
            return value
    return None


def series_with(samples: dict, **labels: str) -> list[str]:
    """Names of the samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sorted(name for name, lbls in samples if wanted <= set(lbls))


def json_lines(text: str) -> list[dict]:
    """Parses every non-empty line as one JSON object (fails on the first that is not)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AssertionError(f"log line {number} is not JSON: {line!r}") from exc
    return out


def prom_value(result: list[dict]) -> float:
    """The value of a one-element Prometheus instant vector."""
    assert len(result) == 1, result
    return float(result[0]["value"][1])
