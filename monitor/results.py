"""ProbeResult: the one value a probe attempt produces.

The same frozen value is stored (one ``probe_results`` row), exported
(Prometheus metrics) and shown (``nexomon probe`` table and JSON).
Field names match the ``probe_results`` columns of docs/architecture.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from monitor.outcome import Outcome

PHASE_NAMES = ("resolve", "connect", "tls", "processing", "transfer")


@dataclass(frozen=True, slots=True)
class Phases:
    """Seconds spent in each phase of one HTTP exchange (blackbox_exporter's phases).

    A phase that did not happen (a reused connection has no connect or tls)
    is 0.0. None means "not measured apart": ``resolve`` when the transport
    folds name resolution into connect (httpcore), ``tls`` when it folds the
    TLS handshake into connect (AiohttpTransport, used behind a proxy, over
    https); that time is then in
    ``connect``. Time spent waiting for a free connection in the client's
    pool is in none of them.
    """

    resolve: float | None = None
    connect: float = 0.0
    tls: float | None = 0.0
    processing: float = 0.0
    transfer: float = 0.0

    def as_dict(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in PHASE_NAMES}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe attempt, skipped ones included.

    ``duration_s`` is gateway latency: the sum of the measured phases, never
    time spent queueing inside the client. ``error`` is short, single-line
    and redacted (no secrets). ``model`` is "" for the models probe.
    ``model_ids`` carries the listed ids for the models probe (None otherwise);
    it is not a column, the catalog consumes it. ``invalid_entries`` is how
    many entries of a successful listing were skipped as invalid (0 when
    none; None for other probes and failed listings); not a column either,
    the exporter consumes it. ``ratelimit_limit`` / ``ratelimit_remaining`` /
    ``ratelimit_reset_s`` are the requests kind, from whichever header family
    sent it; the ``_tokens`` fields the tokens kind; ``ratelimit_invalid``
    counts rate-limit header values that did not parse (not a column, the
    exporter counts it). ``substituted_by`` is the model that answered when it
    was not the one asked for (None: the same, or unknown).
    The ``stream`` probe (monitor.probes.stream) fills ``ttft_s`` (request
    sent to the first output chunk), ``output_tokens_per_s``, the gaps
    between output chunks (``chunk_gaps_s``, at most a few thousand kept,
    and their p50/p95) and ``output_chunks``; None for other probes. None of
    them is a column: the exporter and ``probe --json`` read them.
    Every string that came from the gateway (``request_id``, ``error``, ``finish_reason``,
    ``response_model``, ``substituted_by``, ``model_ids``) has passed
    monitor.untrusted.clean.
    """

    started_at: datetime  # UTC, timezone-aware
    location: str
    target: str
    probe: str
    model: str
    outcome: Outcome
    http_status: int | None = None
    duration_s: float | None = None
    phases: Phases = field(default_factory=Phases)
    request_id: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: Decimal | None = None
    ratelimit_limit: int | None = None
    ratelimit_remaining: int | None = None
    retry_after_s: float | None = None
    finish_reason: str | None = None
    response_model: str | None = None
    model_ids: tuple[str, ...] | None = None
    invalid_entries: int | None = None
    ratelimit_reset_s: float | None = None
    ratelimit_limit_tokens: int | None = None
    ratelimit_remaining_tokens: int | None = None
    ratelimit_reset_tokens_s: float | None = None
    ratelimit_invalid: int = 0
    substituted_by: str | None = None
    ttft_s: float | None = None
    output_tokens_per_s: float | None = None
    chunk_gap_p50_s: float | None = None
    chunk_gap_p95_s: float | None = None
    chunk_gaps_s: tuple[float, ...] | None = None
    output_chunks: int | None = None

    @property
    def success(self) -> bool:
        return self.outcome is Outcome.OK

    def replace(self, **changes: Any) -> ProbeResult:
        """A copy with ``changes``: what ``dataclasses.replace`` gives, at about half its
        cost (6 vs 11 µs; every priced probe makes one, monitor.spend.pricing)."""
        values = list(_ALL_FIELDS(self))
        for name, value in changes.items():
            index = _FIELD_INDEX.get(name)
            if index is None:
                raise TypeError(f"ProbeResult has no field {name!r}")
            values[index] = value
        return ProbeResult(*values)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``nexomon probe --json`` and ``/api/v1/status``."""
        return {
            "started_at": self.started_at.isoformat(),
            "location": self.location,
            "target": self.target,
            "probe": self.probe,
            "model": self.model,
            "outcome": self.outcome.value,
            "success": self.success,
            "http_status": self.http_status,
            "duration_s": self.duration_s,
            "phases": self.phases.as_dict(),
            "request_id": self.request_id,
            "error": self.error,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
            "ratelimit_limit": self.ratelimit_limit,
            "ratelimit_remaining": self.ratelimit_remaining,
            "ratelimit_reset_s": self.ratelimit_reset_s,
            "ratelimit_limit_tokens": self.ratelimit_limit_tokens,
            "ratelimit_remaining_tokens": self.ratelimit_remaining_tokens,
            "ratelimit_reset_tokens_s": self.ratelimit_reset_tokens_s,
            "retry_after_s": self.retry_after_s,
            "finish_reason": self.finish_reason,
            "response_model": self.response_model,
            "substituted_by": self.substituted_by,
            "models_listed": None if self.model_ids is None else len(self.model_ids),
            "invalid_entries": self.invalid_entries,
            "ttft_s": self.ttft_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "chunk_gap_p50_s": self.chunk_gap_p50_s,
            "chunk_gap_p95_s": self.chunk_gap_p95_s,
            "output_chunks": self.output_chunks,
        }


# Every field in order (all of them init fields): ``ProbeResult.replace``'s positional copy.
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(ProbeResult))
_ALL_FIELDS = attrgetter(*_FIELD_NAMES)
_FIELD_INDEX = {name: index for index, name in enumerate(_FIELD_NAMES)}
