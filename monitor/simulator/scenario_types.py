"""The parts of a simulator scenario: fault kinds, keys, and the frozen specs.

monitor.simulator.scenario re-exports all of it (and holds ``Scenario``);
monitor.simulator.scenario_parser builds these from raw TOML values.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.errors import NexomonError
from monitor.simulator.latency import Latency
from monitor.simulator.streamspec import StreamSpec

FAULT_KINDS = (
    "hang",
    "reset",
    "server_error",
    "malformed_json",
    "html_200",
    "missing_usage",
    "error_in_200",
    "empty_choices",
    "slow_drip",
    "oversized",
    "stream_stall",
    "stream_no_done",
)
# Kinds that act on streams only (a plain chat is answered normally).
STREAM_ONLY_FAULTS = ("stream_stall", "stream_no_done")
# Kinds that edit a chat completion; they mean nothing for GET /models.
CHAT_ONLY_FAULTS = ("missing_usage", "empty_choices", *STREAM_ONLY_FAULTS)
FAULT_PARAMS = {
    "server_error": {"status"},
    "slow_drip": {"interval_s"},
    "oversized": {"size_bytes"},
}
# Parameters every kind accepts.
FAULT_COMMON_PARAMS = ("only_user_agent",)
# Keys the parser accepts, in the order the help lists them (nexomon simulate --help).
SCENARIO_KEYS = (
    "name",
    "seed",
    "reply",
    "api_keys",
    "revoked_keys",
    "retry_after_format",
    "ratelimit_headers",
    "ratelimit",
    "models_latency_ms",
    "models_faults",
    "contract_breaks",
    "models",
)
MODEL_KEYS = (
    "latency_ms",
    "error_rate",
    "faults",
    "ratelimit",
    "created",
    "disappear_after_s",
    "reappear_after_s",
    "answer_as",
    "ratelimit_headers",
    "stream",
)
# What the gateway can break of its documented contract: the names of
# monitor.probes.contract.CHECKS (a test holds them equal).
CONTRACT_BREAKS = (
    "cors_preflight",
    "cors_expose_headers",
    "models_shape",
    "request_id",
    "invalid_temperature",
    "invalid_top_p",
    "invalid_max_tokens",
    "empty_messages",
)
# monitor.simulator.ratelimit_headers.FAMILIES (not imported: that module imports this one)
RATELIMIT_FAMILIES = ("nexorouter", "epoch", "openai", "ietf", "ietf-structured", "invalid")
DEFAULT_CREATED = 1735689600  # 2025-01-01T00:00:00Z, a stable `created` for listings
DEFAULT_REPLY = "This is a simulated reply from the nexomon simulator."


class ScenarioError(NexomonError):
    """A scenario problem, worded ``SOURCE: key.path: rule``."""

    exit_code = 2


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, chosen for a fraction ``rate`` of requests."""

    kind: str
    rate: float
    status: int = 500  # server_error
    interval_s: float = 1.0  # slow_drip: seconds between bytes
    size_bytes: int = 50_000_000  # oversized
    only_user_agent: str | None = None  # applies only where the User-Agent contains this

    def applies_to(self, user_agent: str) -> bool:
        """Whether a request with this User-Agent can draw the fault (a regional fault)."""
        return self.only_user_agent is None or self.only_user_agent in user_agent


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``limit`` requests of burst, refilled at ``per_s`` per second."""

    limit: int = 10_000
    per_s: float = 10_000.0


@dataclass(frozen=True)
class ModelSpec:
    id: str
    latency: Latency = Latency()  # noqa: RUF009 - frozen, shared safely
    error_rate: float = 0.0
    faults: tuple[Fault, ...] = ()
    ratelimit: RateLimit = RateLimit()
    disappear_after_s: float | None = None
    reappear_after_s: float | None = None
    created: int = DEFAULT_CREATED
    answer_as: str | None = None  # the model answers name; None: the requested one
    ratelimit_headers: str | None = None  # None: the scenario's family
    stream: StreamSpec | None = None  # None: stream requests are refused (400)

    def listed_at(self, uptime_s: float) -> bool:
        """Whether the model is served ``uptime_s`` seconds after the simulator started."""
        if self.disappear_after_s is None or uptime_s < self.disappear_after_s:
            return True
        return self.reappear_after_s is not None and uptime_s >= self.reappear_after_s
