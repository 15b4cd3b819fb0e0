"""ScenarioParser: raw TOML values of a scenario into monitor.simulator.scenario's dataclasses
(``Scenario`` takes ``scenario_fields``' result).

Every problem raises ``ScenarioError`` worded ``SOURCE: key.path: rule``
(the shape is in monitor.simulator.scenario's docstring).
"""

from __future__ import annotations

import math
from typing import Any

from monitor.simulator.latency import Latency
from monitor.simulator.scenario_types import (
    CHAT_ONLY_FAULTS,
    CONTRACT_BREAKS,
    DEFAULT_CREATED,
    DEFAULT_REPLY,
    FAULT_COMMON_PARAMS,
    FAULT_KINDS,
    FAULT_PARAMS,
    MODEL_KEYS,
    RATELIMIT_FAMILIES,
    SCENARIO_KEYS,
    Fault,
    ModelSpec,
    RateLimit,
    ScenarioError,
)
from monitor.simulator.streamspec import parse_stream


class ScenarioParser:
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

    def breaks(self, value: Any) -> frozenset[str]:
        names = self.strings(value, "contract_breaks")
        for i, name in enumerate(names):
            if name not in CONTRACT_BREAKS:
                raise self.fail(
                    f"contract_breaks[{i}]", f"must be one of {', '.join(CONTRACT_BREAKS)}"
                )
        return frozenset(names)

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(where, "must be a list of non-empty strings")
        return tuple(value)

    def scenario_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of a ``Scenario``, validated."""
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
        family = self.family(data.get("ratelimit_headers"), "ratelimit_headers") or "nexorouter"
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
        return dict(
            name=name,
            models=models,
            api_keys=self.strings(data.get("api_keys", []), "api_keys"),
            revoked_keys=self.strings(data.get("revoked_keys", []), "revoked_keys"),
            retry_after_format=fmt,
            ratelimit_headers=family,
            contract_breaks=self.breaks(data.get("contract_breaks", [])),
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
            answer_as=self.answer_as(raw.get("answer_as"), f"{where}.answer_as"),
            ratelimit_headers=self.family(
                raw.get("ratelimit_headers"), f"{where}.ratelimit_headers"
            ),
            stream=parse_stream(self, raw.get("stream"), f"{where}.stream"),
        )

    def family(self, raw: Any, where: str) -> str | None:
        if raw is not None and raw not in RATELIMIT_FAMILIES:
            raise self.fail(where, f"must be one of {', '.join(RATELIMIT_FAMILIES)}")
        return raw

    def answer_as(self, raw: Any, where: str) -> str | None:
        if raw is not None and (not isinstance(raw, str) or not raw.strip()):
            raise self.fail(where, "must be a non-empty model id")
        return raw

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
