"""The outage spool: an append-only JSON-lines file of results not yet in the database.

One line per result: ``{"result_id": ..., "result": {...}}``. The file is
created with mode 0600 (results may carry request ids and error text) and
fsynced on every append, so rows survive a crash while the database is down.
A torn last line (a crash mid-write) is skipped on reading. ``clear()``
removes the file only after its rows are committed; a crash in between
replays rows the database already has, which the writer's unique
``result_id`` turns into no-ops: exactly once either way.

The same line form (``encode_item``, ``read_items``) is used by the results
journal (``journal.py``) and the dead-letter file (``deadletter.py``).

One spool, one instance (issue 17): ``hold_spool`` takes an exclusive,
non-blocking ``flock`` on ``nexomon-spool.lock`` in the folder (the spool file
itself is unlinked by ``clear()``, so it cannot carry the lock) and writes the
holder's pid into it. A second process asking for the same folder gets a
ConfigError naming ``monitor.spool_dir`` and the holder's pid, before it
replays (and clears) rows the holder is still appending. The lock goes with the
process: a ``kill -9`` frees it, and the next start replays what was left.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError
from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.store.db import make_private_dirs

# In the "nexomon" tree: formatted, scrubbed of secrets, JSON when asked.
log = logging.getLogger("nexomon.store.spool")

SPOOL_NAME = "nexomon-spool.jsonl"
LOCK_NAME = "nexomon-spool.lock"

_no_default = json.JSONEncoder().default  # raises TypeError, as json.dumps does

# json_chunks(obj, 0): the pieces of json.dumps(obj, separators=(",", ":")),
# joined by the caller. json.dumps with separators builds a JSONEncoder and a
# C encoder per call (12 µs a result); one C encoder made once does the same
# in 6 µs (the journal encodes every result on the event loop). Same output:
# ASCII escapes (ensure_ascii), NaN allowed, no indent, insertion order.
json_chunks: Callable[[Any, int], Any] = (
    # (markers, default, encoder, indent, key_sep, item_sep, sort_keys, skipkeys, allow_nan)
    c_make_encoder(None, _no_default, encode_basestring_ascii, None, ":", ",", 0, 0, 1)
    if c_make_encoder is not None
    else (lambda obj, _level: json.JSONEncoder(separators=(",", ":")).iterencode(obj))
)
Item = tuple[str, ProbeResult]  # (result_id, result)


def result_to_dict(result: ProbeResult) -> dict[str, Any]:
    """A lossless JSON-able form of a ProbeResult (Decimal as text, aware ISO time)."""
    p = result.phases  # spelled out: Phases.as_dict() costs 3 µs per journaled result
    return {
        "started_at": result.started_at.isoformat(),
        "location": result.location,
        "target": result.target,
        "probe": result.probe,
        "model": result.model,
        "outcome": result.outcome.value,
        "http_status": result.http_status,
        "duration_s": result.duration_s,
        "phases": {
            "resolve": p.resolve,
            "connect": p.connect,
            "tls": p.tls,
            "processing": p.processing,
            "transfer": p.transfer,
        },
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
        "ratelimit_reset_s": result.ratelimit_reset_s,
        "ratelimit_limit_tokens": result.ratelimit_limit_tokens,
        "ratelimit_remaining_tokens": result.ratelimit_remaining_tokens,
        "ratelimit_reset_tokens_s": result.ratelimit_reset_tokens_s,
        "substituted_by": result.substituted_by,
    }


def result_from_dict(data: dict[str, Any]) -> ProbeResult:
    """The inverse of ``result_to_dict``."""
    fields = dict(data)
    fields["started_at"] = datetime.fromisoformat(fields["started_at"])
    fields["outcome"] = Outcome(fields["outcome"])
    fields["phases"] = Phases(**fields["phases"])
    if fields["cost_usd"] is not None:
        fields["cost_usd"] = Decimal(fields["cost_usd"])
    if fields["model_ids"] is not None:
        fields["model_ids"] = tuple(fields["model_ids"])
    return ProbeResult(**fields)


def encode_item(result_id: str, result: ProbeResult) -> bytes:
    """One JSON line (newline included) for ``(result_id, result)``: the spool's,
    the journal's and the dead-letter file's form.

    Pure ASCII (``json.dumps`` escapes everything else), so any text a
    ProbeResult holds, a lone surrogate included, can be written and read back
    unchanged. Raises TypeError or ValueError for a value JSON cannot hold.
    """
    chunks = json_chunks({"result_id": result_id, "result": result_to_dict(result)}, 0)
    return "".join(chunks).encode("ascii") + b"\n"


def read_items(path: Path) -> Iterator[Item]:
    """Every readable item of a JSON-lines file in order; unreadable lines
    (a torn last line after a crash) are logged and skipped."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                data = json.loads(raw)
                yield str(data["result_id"]), result_from_dict(data["result"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s line %d unreadable, skipped: %s", path, number, exc)


def append_synced(directory: Path, path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (created 0600, ``directory`` 0700) and fsync it.

    Raises OSError.
    """
    make_private_dirs(directory)  # parents too: mkdir(mode=) sets only the last
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        view = memoryview(data)
        while view:  # a regular file may take less than asked (a full disk)
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """The spool file in ``directory``; used by one writer thread at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / SPOOL_NAME

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def append(self, items: Iterable[Item]) -> int:
        """Append and fsync; returns the number of lines written. Raises OSError."""
        lines = [encode_item(rid, r) for rid, r in items]
        if lines:
            append_synced(self.directory, self.path, b"".join(lines))
        return len(lines)

    def read(self) -> Iterator[Item]:
        """Every readable item in order; unreadable lines are logged and skipped."""
        if self.path.exists():
            yield from read_items(self.path)

    def clear(self) -> None:
        """Remove the spool (after its rows are committed)."""
        self.path.unlink(missing_ok=True)


class SpoolLock:
    """The exclusive hold of a spool folder; ``release()`` (or process exit) frees it."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Free the lock (idempotent). The lock file stays: unlinking it would let
        a waiter lock a file that a third process no longer finds."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def spool_holder(directory: Path) -> int | None:
    """The pid written in ``directory``'s lock file, if it holds a number."""
    try:
        text = (directory / LOCK_NAME).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def hold_spool(directory: Path, source: Path | str) -> SpoolLock:
    """Lock ``directory`` (created 0700) for this process, or raise ConfigError.

    ``source`` is the config file, for the message: ``FILE: monitor.spool_dir:
    DIR is in use by another nexomon (pid N): ...``. A folder that cannot be
    created or a lock file that cannot be opened is a ConfigError too.
    """
    where = f"{source}: monitor.spool_dir"
    try:
        make_private_dirs(directory)
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(f"{where}: cannot create {directory} ({reason})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError when held; anything else is no lock either
        os.close(fd)
        pid = spool_holder(directory)
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        raise ConfigError(
            f"{where}: {directory} is in use by another nexomon ({holder}); "
            "give each instance its own location or spool_dir"
        ) from None
    # Written only once locked: the pid in the file is the holder's (or empty, briefly).
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return SpoolLock(directory, fd)
