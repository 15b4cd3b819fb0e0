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
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from monitor.errors import NexomonError
from monitor.simulator.latency import Latency

__all__ = ["FAULT_KINDS", "Fault", "Latency", "ModelSpec", "RateLimit", "Scenario", "ScenarioError"]

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
)
# Kinds that edit a chat completion; they mean nothing for GET /models.
CHAT_ONLY_FAULTS = ("missing_usage", "empty_choices")
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
    "ratelimit",
    "models_latency_ms",
    "models_faults",
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
)
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

    def listed_at(self, uptime_s: float) -> bool:
        """Whether the model is served ``uptime_s`` seconds after the simulator started."""
        if self.disappear_after_s is None or uptime_s < self.disappear_after_s:
            return True
        return self.reappear_after_s is not None and uptime_s >= self.reappear_after_s


@dataclass(frozen=True)
class Scenario:
    name: str
    models: tuple[ModelSpec, ...]
    api_keys: tuple[str, ...] = ()
    revoked_keys: tuple[str, ...] = ()
    retry_after_format: str = "seconds"
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
        return _Parser(source).scenario(data)

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


class _Parser:
    """Turns raw TOML values into dataclasses; every error names its key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, rule: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {where}: {rule}")

    def table(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(f"{where}.{unknown[0]}" if where else unknown[0], "unknown key")
        return value

    def number(self, value: Any, where: str, low: float = 0.0, high: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.fail(where, "must be a number")
        if value < low or (high is not None and value > high):
            bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise self.fail(where, f"must be {bound} (got {value})")
        return float(value)

    def integer(self, value: Any, where: str, low: int, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, "must be an integer")
        self.number(value, where, low, high)
        return value

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(where, "must be a list of non-empty strings")
        return tuple(value)

    def scenario(self, data: dict[str, Any]) -> Scenario:
        data = self.table(data, "", set(SCENARIO_KEYS))
        name = data.get("name", "scenario")
        if not isinstance(name, str) or not name:
            raise self.fail("name", "must be a non-empty string")
        reply = data.get("reply", DEFAULT_REPLY)
        if not isinstance(reply, str) or not reply.strip():
            raise self.fail("reply", "must be a non-empty string")
        fmt = data.get("retry_after_format", "seconds")
        if fmt not in ("seconds", "http-date"):
            raise self.fail("retry_after_format", 'must be "seconds" or "http-date"')
        seed = data.get("seed")
        if seed is not None:
            seed = self.integer(seed, "seed", low=0)
        default_rl = self.ratelimit(data.get("ratelimit", {}), "ratelimit", RateLimit())
        models_raw = data.get("models")
        if models_raw is None:
            raise self.fail("models", "is required (at least one [models.ID] table)")
        if not isinstance(models_raw, dict) or not models_raw:
            raise self.fail("models", "must be a table with at least one model")
        models = tuple(self.model(mid, raw, default_rl) for mid, raw in models_raw.items())
        models_faults = self.faults(data.get("models_faults", []), "models_faults")
        for i, fault in enumerate(models_faults):
            if fault.kind in CHAT_ONLY_FAULTS:
                raise self.fail(f"models_faults[{i}].kind", f"{fault.kind} applies to chat only")
        self.total_rate(0.0, models_faults, "models_faults")
        return Scenario(
            name=name,
            models=models,
            api_keys=self.strings(data.get("api_keys", []), "api_keys"),
            revoked_keys=self.strings(data.get("revoked_keys", []), "revoked_keys"),
            retry_after_format=fmt,
            seed=seed,
            reply=reply,
            models_latency=self.latency(data.get("models_latency_ms", 0), "models_latency_ms"),
            models_faults=models_faults,
        )

    def model(self, model_id: str, raw: Any, default_rl: RateLimit) -> ModelSpec:
        where = f"models.{model_id}"
        if not model_id.strip() or any(c.isspace() for c in model_id):
            raise self.fail(where, "model id must be non-empty without whitespace")
        raw = self.table(raw, where, set(MODEL_KEYS))
        error_rate = self.number(raw.get("error_rate", 0.0), f"{where}.error_rate", 0.0, 1.0)
        faults = self.faults(raw.get("faults", []), f"{where}.faults")
        self.total_rate(error_rate, faults, where)
        disappear = raw.get("disappear_after_s")
        if disappear is not None:
            disappear = self.number(disappear, f"{where}.disappear_after_s")
        reappear = raw.get("reappear_after_s")
        if reappear is not None:
            reappear = self.number(reappear, f"{where}.reappear_after_s")
            if disappear is None:
                raise self.fail(f"{where}.reappear_after_s", "needs disappear_after_s")
            if reappear <= disappear:
                raise self.fail(f"{where}.reappear_after_s", "must be after disappear_after_s")
        return ModelSpec(
            id=model_id,
            latency=self.latency(raw.get("latency_ms", 0), f"{where}.latency_ms"),
            error_rate=error_rate,
            faults=faults,
            ratelimit=self.ratelimit(raw.get("ratelimit", {}), f"{where}.ratelimit", default_rl),
            disappear_after_s=disappear,
            reappear_after_s=reappear,
            created=self.integer(raw.get("created", DEFAULT_CREATED), f"{where}.created", low=0),
        )

    def latency(self, raw: Any, where: str) -> Latency:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return Latency(value=self.number(raw, where))
        raw = self.table(raw, where, {"dist", "value", "min", "max", "median", "p99"})
        dist = raw.get("dist", "fixed")
        needed = {"fixed": ("value",), "uniform": ("min", "max"), "lognormal": ("median", "p99")}
        if dist not in needed:
            raise self.fail(f"{where}.dist", 'must be "fixed", "uniform" or "lognormal"')
        for key in raw:
            if key != "dist" and key not in needed[dist]:
                raise self.fail(f"{where}.{key}", f"does not apply to dist {dist!r}")
        for key in needed[dist]:
            if key not in raw:
                raise self.fail(f"{where}.{key}", f"is required for dist {dist!r}")
        values = {k: self.number(raw[k], f"{where}.{k}") for k in needed[dist]}
        if dist == "uniform" and values["max"] < values["min"]:
            raise self.fail(f"{where}.max", "must be at least min")
        if dist == "lognormal" and (values["median"] <= 0 or values["p99"] < values["median"]):
            raise self.fail(f"{where}.p99", "needs median > 0 and p99 >= median")
        return Latency(dist=dist, **values)

    def ratelimit(self, raw: Any, where: str, default: RateLimit) -> RateLimit:
        raw = self.table(raw, where, {"limit", "per_s"})
        limit = self.integer(raw.get("limit", default.limit), f"{where}.limit", low=1)
        per_s = raw.get("per_s", default.per_s)
        per_s = self.number(per_s, f"{where}.per_s")
        if per_s <= 0:
            raise self.fail(f"{where}.per_s", "must be greater than 0")
        return RateLimit(limit=limit, per_s=per_s)

    def faults(self, raw: Any, where: str) -> tuple[Fault, ...]:
        if not isinstance(raw, list):
            raise self.fail(where, "must be a list of {kind, rate} tables")
        faults = []
        for i, item in enumerate(raw):
            at = f"{where}[{i}]"
            kind = item.get("kind") if isinstance(item, dict) else None
            if kind not in FAULT_KINDS:
                raise self.fail(f"{at}.kind", f"must be one of {', '.join(FAULT_KINDS)}")
            allowed = {"kind", "rate", *FAULT_COMMON_PARAMS, *FAULT_PARAMS.get(kind, ())}
            item = self.table(item, at, allowed)
            if "rate" not in item:
                raise self.fail(f"{at}.rate", "is required")
            extra: dict[str, Any] = {}
            if "status" in item:
                extra["status"] = self.integer(item["status"], f"{at}.status", 500, 599)
            if "interval_s" in item:
                extra["interval_s"] = self.number(item["interval_s"], f"{at}.interval_s", 0.0, 60.0)
            if "size_bytes" in item:
                extra["size_bytes"] = self.integer(item["size_bytes"], f"{at}.size_bytes", 1024)
            if "only_user_agent" in item:
                agent = item["only_user_agent"]
                if not isinstance(agent, str) or not agent.strip():
                    raise self.fail(f"{at}.only_user_agent", "must be a non-empty string")
                extra["only_user_agent"] = agent
            rate = self.number(item["rate"], f"{at}.rate", 0.0, 1.0)
            faults.append(Fault(kind, rate, **extra))
        return tuple(faults)

    def total_rate(self, error_rate: float, faults: tuple[Fault, ...], where: str) -> None:
        total = error_rate + sum(f.rate for f in faults)
        if total > 1.0 + 1e-9:
            raise self.fail(where, f"error_rate plus fault rates must not exceed 1 (got {total:g})")
