"""The results journal: every accepted result is on disk before the writer's batch holds it.

Contracts:

- ``append(line)`` (``ResultWriter.submit``, under the writer's lock) is one
  ``os.write`` of one line (``encode_entry``) to the current segment, opened
  ``O_APPEND``; no fsync. Once it returns, the bytes belong to the kernel's
  page cache: a process killed at any point (``kill -9``, the OOM killer, a
  crash) loses nothing appended.
- A line is a JSON array, not the spool's object: ``[1, result_id,
  started_at as a POSIX timestamp, cost as text or null, [the other fields
  in JOURNAL_FIELDS order]]``, the leading 1 being the format. It is built
  on the event loop for every result, and positional values skip the key
  strings, the ISO time and the per-field dict (about half the CPU of
  ``spool.encode_item``, measured by benchmarks/journal.py). Pure ASCII, so
  any text survives; ``decode_entry(encode_entry(i, r)) == (i, r)`` for every
  field the spool keeps (microseconds exact: a timestamp's float rounds back
  to its microsecond until the year 2242; the time comes back in UTC).
- ``sync()`` fsyncs every segment written since the last sync; the writer
  calls it every ``fsync_interval``. That is the power-loss bound: a power
  failure (or a kernel crash), unlike a process kill, can lose the results
  appended since the last sync.
- Segments are ``nexomon-journal-<owner>-<seq>.log`` (mode 0600, in the spool
  folder, 0700). ``new_segment()`` opens the next one (outside the writer's
  lock: it is a file creation), ``install()`` makes it current and seals the
  old one (under the lock, so every row is in the buffer iff its line is in a
  segment the writer knows), and ``release_sealed()`` deletes the sealed
  segments once the writer has committed or spooled every row written to them.
- Ownership: ``nexomon-journal-<owner>.lock`` is ``flock``-ed from ``open()``
  to ``close()``, before any segment exists. ``claim_leftovers()`` takes the
  segments of owners whose lock it can take (their process is gone) and
  leaves a live writer's segments alone (a daemon and a
  ``nexomon probe --record`` may share the folder). A torn last line (a kill
  mid-write) is skipped on reading.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from pathlib import Path

from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.store.db import make_private_dirs
from monitor.store.spool import Item, json_chunks

# In the "nexomon" tree: formatted, scrubbed of secrets, JSON when asked.
log = logging.getLogger("nexomon.store.journal")

PREFIX = "nexomon-journal-"
SEGMENT_SUFFIX = ".log"
LOCK_SUFFIX = ".lock"

# Format 2 added the rate-limit kinds and substituted_by (migration 0004); a
# format-1 line left by an older version is still read (those fields None).
FORMAT = 2
_FORMAT_1_FIELDS = 23
# Every field spool.result_to_dict keeps, but started_at and cost_usd (encoded
# apart), in line order. ``_value_`` is Enum's documented value attribute
# (``.value`` is a property, slower on this hot path).
JOURNAL_FIELDS = (
    "location", "target", "probe", "model", "outcome._value_", "http_status", "duration_s",
    "phases.resolve", "phases.connect", "phases.tls", "phases.processing", "phases.transfer",
    "request_id", "error", "prompt_tokens", "completion_tokens", "total_tokens",
    "ratelimit_limit", "ratelimit_remaining", "retry_after_s", "finish_reason",
    "response_model", "model_ids", "ratelimit_reset_s", "ratelimit_limit_tokens",
    "ratelimit_remaining_tokens", "ratelimit_reset_tokens_s", "substituted_by",
)  # fmt: skip
_fields = attrgetter(*JOURNAL_FIELDS)  # one C call for all of them


def encode_entry(result_id: str, result: ProbeResult) -> bytes:
    """One journal line (newline included). Raises TypeError or ValueError for a
    value JSON cannot hold."""
    at = result.started_at
    if at.tzinfo is None:  # naive means UTC here (UTCDateTime), not local time
        at = at.replace(tzinfo=UTC)
    cost = result.cost_usd
    entry = [FORMAT, result_id, at.timestamp(), None if cost is None else str(cost)]
    entry.append(_fields(result))
    return "".join(json_chunks(entry, 0)).encode("ascii") + b"\n"


def decode_entry(line: bytes) -> Item:
    """The (result_id, result) of one journal line. Raises ValueError, KeyError or
    TypeError for a line that is not one (torn, or another format)."""
    form, result_id, at, cost, values = json.loads(line)
    if form == 1 and len(values) == _FORMAT_1_FIELDS:
        values = [*values, None, None, None, None, None]
    elif form != FORMAT:
        raise ValueError(f"journal format {form!r}, expected {FORMAT}")
    (location, target, probe, model, outcome, http_status, duration_s,
     resolve, connect, tls, processing, transfer, request_id, error,
     prompt_tokens, completion_tokens, total_tokens, ratelimit_limit, ratelimit_remaining,
     retry_after_s, finish_reason, response_model, model_ids, ratelimit_reset_s,
     ratelimit_limit_tokens, ratelimit_remaining_tokens, ratelimit_reset_tokens_s,
     substituted_by) = values  # fmt: skip
    return str(result_id), ProbeResult(
        started_at=datetime.fromtimestamp(at, UTC),
        location=location,
        target=target,
        probe=probe,
        model=model,
        outcome=Outcome(outcome),
        http_status=http_status,
        duration_s=duration_s,
        phases=Phases(resolve, connect, tls, processing, transfer),
        request_id=request_id,
        error=error,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=total_tokens,
        cost_usd=None if cost is None else Decimal(cost),
        ratelimit_limit=ratelimit_limit,
        ratelimit_remaining=ratelimit_remaining,
        retry_after_s=retry_after_s,
        finish_reason=finish_reason,
        response_model=response_model,
        model_ids=None if model_ids is None else tuple(model_ids),
        ratelimit_reset_s=ratelimit_reset_s,
        ratelimit_limit_tokens=ratelimit_limit_tokens,
        ratelimit_remaining_tokens=ratelimit_remaining_tokens,
        ratelimit_reset_tokens_s=ratelimit_reset_tokens_s,
        substituted_by=substituted_by,
    )


def read_entries(path: Path) -> Iterator[Item]:
    """Every readable entry of a segment in order; an unreadable line (a kill
    mid-write leaves a torn last line) is logged and skipped."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield decode_entry(raw)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s line %d unreadable, skipped: %s", path, number, exc)


@dataclass
class Segment:
    """One open segment file; ``size`` and ``dirty`` change under the writer's lock."""

    path: Path
    fd: int
    size: int = 0
    dirty: bool = False


@dataclass
class Leftovers:
    """Segments of writers that are gone, locked by this process until ``release``."""

    claims: list[tuple[Path, int, list[Path]]] = field(default_factory=list)  # lock, fd, segments

    def items(self) -> Iterator[Item]:
        """Every readable item, segment by segment in write order."""
        for _, _, segments in self.claims:
            for path in segments:
                yield from read_entries(path)

    def release(self, *, delete: bool) -> None:
        """Delete the segments (once their items are safe elsewhere) and drop the locks."""
        for lock_path, fd, segments in self.claims:
            if delete:
                for path in segments:
                    path.unlink(missing_ok=True)
                lock_path.unlink(missing_ok=True)
            os.close(fd)
        self.claims.clear()


class Journal:
    """The journal of one writer (``owner``: its result-id prefix) in ``directory``."""

    def __init__(self, directory: Path, owner: str) -> None:
        self.directory = directory
        self.owner = owner
        self.current: Segment | None = None
        self._sealed: list[Segment] = []
        self._seq = 0
        self._lock_fd: int | None = None

    def _lock_path(self, owner: str) -> Path:
        return self.directory / f"{PREFIX}{owner}{LOCK_SUFFIX}"

    def open(self) -> None:
        """Take this owner's lock and open the first segment. Raises OSError."""
        make_private_dirs(self.directory)
        fd = os.open(self._lock_path(self.owner), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._lock_fd = fd
            self.current = self.new_segment()
        except BaseException:
            self._lock_fd = None
            os.close(fd)
            raise

    def new_segment(self) -> Segment:
        """Create the next segment file (not yet current). Raises OSError."""
        self._seq += 1
        path = self.directory / f"{PREFIX}{self.owner}-{self._seq:06d}{SEGMENT_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        return Segment(path, os.open(path, flags, 0o600))

    def install(self, segment: Segment) -> None:
        """Make ``segment`` current and seal the old one (caller holds the writer's lock)."""
        if self.current is not None:
            self._sealed.append(self.current)
        self.current = segment

    @property
    def has_sealed(self) -> bool:
        return bool(self._sealed)

    def append(self, line: bytes) -> None:
        """Write one line to the current segment (caller holds the writer's lock).

        Raises OSError; after a short write (a full disk) the segment ends in a
        torn line, so the caller stops appending until the next ``install``.
        """
        segment = self.current
        if segment is None:
            raise OSError(errno.EBADF, "journal not open")
        written = os.write(segment.fd, line)
        segment.size += written
        segment.dirty = True
        if written != len(line):
            raise OSError(errno.ENOSPC, f"short write to {segment.path}")

    def sync(self) -> None:
        """fsync every segment written since its last sync (writer thread). Raises OSError."""
        for segment in [*self._sealed, self.current]:
            if segment is not None and segment.dirty:
                # Cleared first: an append racing this fsync sets it again.
                segment.dirty = False
                os.fsync(segment.fd)

    def release_sealed(self) -> None:
        """Delete the sealed segments: every row in them is committed or spooled."""
        sealed, self._sealed = self._sealed, []
        for segment in sealed:
            os.close(segment.fd)
            segment.path.unlink(missing_ok=True)

    def close(self, *, delete: bool) -> None:
        """Close every segment and drop the lock; ``delete`` removes the files (every
        row is safe), else they stay for the next start's ``claim_leftovers``."""
        segments = [*self._sealed, *([self.current] if self.current else [])]
        self._sealed, self.current = [], None
        for segment in segments:
            os.close(segment.fd)
            if delete:
                segment.path.unlink(missing_ok=True)
        if self._lock_fd is not None:
            if delete:
                self._lock_path(self.owner).unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    def claim_leftovers(self) -> Leftovers:
        """Lock and return the segments of every other owner whose process is gone."""
        owners: set[str] = set()
        for path in self.directory.glob(f"{PREFIX}*"):
            name = path.name.removeprefix(PREFIX)
            if name.endswith(SEGMENT_SUFFIX):
                owner, _, seq = name.removesuffix(SEGMENT_SUFFIX).rpartition("-")
                if seq.isdigit():
                    owners.add(owner)
            elif name.endswith(LOCK_SUFFIX):
                owners.add(name.removesuffix(LOCK_SUFFIX))
        # Owners are result-id prefixes (hex); anything else is not ours to touch.
        owners = {o for o in owners if o and not o.strip("0123456789abcdef")}
        owners.discard(self.owner)
        leftovers = Leftovers()
        for owner in sorted(owners):
            lock_path = self._lock_path(owner)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live writer's journal
                os.close(fd)
                continue
            # Listed again now that nobody writes them: the owner may have
            # rotated or closed between the glob and the lock. The sequence
            # number is zero-padded, so name order is write order.
            segments = sorted(self.directory.glob(f"{PREFIX}{owner}-*{SEGMENT_SUFFIX}"))
            leftovers.claims.append((lock_path, fd, segments))
        return leftovers
