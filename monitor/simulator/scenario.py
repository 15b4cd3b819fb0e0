"""Scenario: what the simulated gateway serves and how it misbehaves.

A scenario is a TOML file (or a dict, for tests) read once and validated
into frozen dataclasses. Every problem raises ``ScenarioError`` with one
line worded ``SOURCE: key.path: rule``, like ``ConfigError``.

Shape (all keys optional except ``models``)::

    name = "default"                   # shown when the simulator starts; default: file stem
    seed = 42                          # deterministic fault/latency draws
    reply = "Hello from the simulator."
    api_keys = ["sk-a"]                # non-empty: only these keys pass (else 401)
    revoked_keys = ["sk-old"]          # 403
    retry_after_format = "seconds"     # or "http-date"
    ratelimit_headers = "nexorouter"   # or epoch, openai, ietf, ietf-structured, invalid
    contract_breaks = ["cors_preflight"]  # documented commitments broken (CONTRACT_BREAKS)
    ratelimit = {limit = 10000, per_s = 10000.0}   # default bucket for every model
    models_latency_ms = 0              # latency of GET /models
    models_faults = []                 # faults of GET /models (no usage/choices kinds)

    [models.sim-fast]
    latency_ms = {dist = "lognormal", median = 250, p99 = 1200}  # or a number (fixed)
    error_rate = 0.05                  # answered 500/502/503
    faults = [{kind = "hang", rate = 0.01}, {kind = "server_error", rate = 0.01, status = 504}]
    # any fault may add only_user_agent = "location=eu": it then applies only to requests
    # whose User-Agent contains that text (nexomon sends "nexomon/V (location=L)")
    ratelimit = {limit = 60, per_s = 1.0}
    disappear_after_s = 60             # gone from /models and chat 404s from then on
    reappear_after_s = 120             # ...until this many seconds after start
    answer_as = "sim-cheap"            # answers name this model: a silent substitution
    ratelimit_headers = "openai"       # this model's header family (default: the scenario's)
    stream = {ttft_ms = 300, tokens_per_s = 50}  # serves stream: true (simulator.streamspec)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from monitor.simulator.latency import Latency
from monitor.simulator.scenario_parser import ScenarioParser
from monitor.simulator.scenario_types import (
    CHAT_ONLY_FAULTS,
    CONTRACT_BREAKS,
    DEFAULT_REPLY,
    FAULT_COMMON_PARAMS,
    FAULT_KINDS,
    FAULT_PARAMS,
    MODEL_KEYS,
    RATELIMIT_FAMILIES,
    SCENARIO_KEYS,
    STREAM_ONLY_FAULTS,
    Fault,
    ModelSpec,
    RateLimit,
    ScenarioError,
)

# Re-exported: the simulator and its tests import the scenario vocabulary from here.
__all__ = [
    "CHAT_ONLY_FAULTS",
    "CONTRACT_BREAKS",
    "FAULT_COMMON_PARAMS",
    "FAULT_KINDS",
    "FAULT_PARAMS",
    "MODEL_KEYS",
    "RATELIMIT_FAMILIES",
    "SCENARIO_KEYS",
    "STREAM_ONLY_FAULTS",
    "Fault",
    "Latency",
    "ModelSpec",
    "RateLimit",
    "Scenario",
    "ScenarioError",
]


@dataclass(frozen=True)
class Scenario:
    name: str
    models: tuple[ModelSpec, ...]
    api_keys: tuple[str, ...] = ()
    revoked_keys: tuple[str, ...] = ()
    retry_after_format: str = "seconds"
    ratelimit_headers: str = "nexorouter"
    contract_breaks: frozenset[str] = frozenset()
    seed: int | None = None
    reply: str = DEFAULT_REPLY
    models_latency: Latency = Latency()  # noqa: RUF009 - frozen, shared safely
    models_faults: tuple[Fault, ...] = ()

    def model(self, model_id: str) -> ModelSpec | None:
        for spec in self.models:
            if spec.id == model_id:
                return spec
        return None

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<scenario>") -> Scenario:
        """Validate a parsed scenario; raises ScenarioError naming ``source``."""
        return cls(**ScenarioParser(source).scenario_fields(data))

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read and validate a TOML scenario file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read scenario: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{path}: invalid TOML: {exc}") from exc
        data.setdefault("name", path.stem)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def packaged(cls, name: str = "default") -> Scenario:
        """A scenario shipped in this package: ``default`` or ``demo``."""
        text = resources.files(__package__).joinpath(f"{name}.toml").read_text(encoding="utf-8")
        data = tomllib.loads(text)
        data.setdefault("name", name)
        return cls.from_dict(data, source=f"{name}.toml")
