"""A model's streaming behaviour (scenario key ``stream``) and its validation.

``stream = {ttft_ms = 300, tokens_per_s = 50}`` in a ``[models.ID]`` table
makes the model answer ``stream: true`` requests with an SSE stream
(monitor.simulator.stream): the first output token ``ttft_ms`` after the
request (a number, or a distribution table as ``latency_ms`` takes), then
one token every ``1 / tokens_per_s`` seconds. A model without the key
refuses ``stream: true`` with a 400 (``unsupported_value``), as a gateway
without streaming does. For a stream request the model's ``latency_ms``
is not applied: ``ttft_ms`` is its latency.

Kept apart from monitor.simulator.scenario, which calls ``parse_stream``
with its parser (the error wording ``SOURCE: key.path: rule`` is the
parser's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from monitor.errors import NexomonError
from monitor.simulator.latency import Latency

STREAM_KEYS = ("ttft_ms", "tokens_per_s")
DEFAULT_TOKENS_PER_S = 50.0
MAX_TOKENS_PER_S = 100_000.0


@dataclass(frozen=True)
class StreamSpec:
    """How a model streams: time to the first token and the token rate after it."""

    ttft: Latency = Latency()  # noqa: RUF009 - frozen, shared safely
    tokens_per_s: float = DEFAULT_TOKENS_PER_S


class _Parser(Protocol):
    """The part of monitor.simulator.scenario's parser this module uses."""

    def fail(self, where: str, rule: str) -> NexomonError: ...

    def table(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]: ...

    def number(
        self, value: Any, where: str, low: float = 0.0, high: float | None = None
    ) -> float: ...

    def latency(self, raw: Any, where: str) -> Latency: ...


def parse_stream(parser: _Parser, raw: Any, where: str) -> StreamSpec | None:
    """The validated ``stream`` table at ``where``; None when absent."""
    if raw is None:
        return None
    raw = parser.table(raw, where, set(STREAM_KEYS))
    rate = parser.number(
        raw.get("tokens_per_s", DEFAULT_TOKENS_PER_S),
        f"{where}.tokens_per_s",
        0.0,
        MAX_TOKENS_PER_S,
    )
    if rate <= 0:
        raise parser.fail(f"{where}.tokens_per_s", "must be greater than 0")
    return StreamSpec(
        ttft=parser.latency(raw.get("ttft_ms", 0), f"{where}.ttft_ms"), tokens_per_s=rate
    )
