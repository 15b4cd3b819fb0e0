"""The outage spool: an append-only JSON-lines file of results not yet in the database.

One line per result: ``{"result_id": ..., "result": {...}}``. The file is
created with mode 0600 (results may carry request ids and error text) and
fsynced on every append, so rows survive a crash while the database is down.
A torn last line (a crash mid-write) is skipped on reading. ``clear()``
removes the file only after its rows are committed; a crash in between
replays rows the database already has, which the writer's unique
``result_id`` turns into no-ops: exactly once either way.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.store.db import make_private_dirs

# In the "nexomon" tree: formatted, scrubbed of secrets, JSON when asked.
log = logging.getLogger("nexomon.store.spool")

SPOOL_NAME = "nexomon-spool.jsonl"
Item = tuple[str, ProbeResult]  # (result_id, result)


def result_to_dict(result: ProbeResult) -> dict[str, Any]:
    """A lossless JSON-able form of a ProbeResult (Decimal as text, aware ISO time)."""
    return {
        "started_at": result.started_at.isoformat(),
        "location": result.location,
        "target": result.target,
        "probe": result.probe,
        "model": result.model,
        "outcome": result.outcome.value,
        "http_status": result.http_status,
        "duration_s": result.duration_s,
        "phases": result.phases.as_dict(),
        "request_id": result.request_id,
        "error": result.error,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.total_tokens,
        "cost_usd": None if result.cost_usd is None else str(result.cost_usd),
        "ratelimit_limit": result.ratelimit_limit,
        "ratelimit_remaining": result.ratelimit_remaining,
        "retry_after_s": result.retry_after_s,
        "finish_reason": result.finish_reason,
        "response_model": result.response_model,
        "model_ids": None if result.model_ids is None else list(result.model_ids),
    }


def result_from_dict(data: dict[str, Any]) -> ProbeResult:
    fields = dict(data)
    fields["started_at"] = datetime.fromisoformat(fields["started_at"])
    fields["outcome"] = Outcome(fields["outcome"])
    fields["phases"] = Phases(**fields["phases"])
    if fields["cost_usd"] is not None:
        fields["cost_usd"] = Decimal(fields["cost_usd"])
    if fields["model_ids"] is not None:
        fields["model_ids"] = tuple(fields["model_ids"])
    return ProbeResult(**fields)


class Spool:
    """The spool file in ``directory``; used by one writer thread at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / SPOOL_NAME

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def append(self, items: Iterable[Item]) -> int:
        """Append and fsync; returns the number of lines written. Raises OSError."""
        lines = [
            json.dumps({"result_id": rid, "result": result_to_dict(r)}, separators=(",", ":"))
            for rid, r in items
        ]
        if not lines:
            return 0
        make_private_dirs(self.directory)  # parents too: mkdir(mode=) sets only the last
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, ("\n".join(lines) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return len(lines)

    def read(self) -> Iterator[Item]:
        """Every readable item in order; unreadable lines are logged and skipped."""
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    data = json.loads(raw)
                    yield str(data["result_id"]), result_from_dict(data["result"])
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("spool %s line %d unreadable, skipped: %s", self.path, number, exc)

    def clear(self) -> None:
        """Remove the spool (after its rows are committed)."""
        self.path.unlink(missing_ok=True)
