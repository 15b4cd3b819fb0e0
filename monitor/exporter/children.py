"""The cached prometheus_client children of one job and of one (target, model).

The exporter looks a result's children up once, when first needed, and keeps
them here until ``forget()``, so observing a result costs no ``labels()``
call and no label dict. Every attribute is None (or empty) until first
needed; the exporter's lock guards them.
"""

from __future__ import annotations

from typing import Any

from monitor.outcome import Outcome


class JobChildren:
    """The children of one job (target, probe, model); None until first needed."""

    __slots__ = ("duration", "http_status", "interval", "last_run", "probes", "success", "values")

    def __init__(self, values: tuple[str, str, str], probes: dict[Outcome, Any]) -> None:
        self.values = values
        self.probes = probes  # every outcome, created at 0 with the job
        self.last_run: Any = None
        self.success: Any = None
        self.http_status: Any = None
        self.duration: Any = None
        self.interval: Any = None


class ModelChildren:
    """The children of one (target, model) and of its jobs; None until first needed."""

    __slots__ = (
        "cost",
        "jobs",
        "listed",
        "retry_after",
        "signals",
        "tokens",
        "unpriced",
        "unpriced_value",
        "values",
    )

    def __init__(self, values: tuple[str, str]) -> None:
        self.values = values
        self.jobs: dict[str, JobChildren] = {}
        self.tokens: tuple[Any, Any] | None = None  # (input, output)
        self.cost: Any = None
        self.retry_after: Any = None
        # (metric, kind) -> child, for the rate-limit gauges by kind and the
        # substitution pair (kind ""): made on first value.
        self.signals: dict[tuple[Any, str], Any] = {}
        self.listed: Any = None
        self.unpriced: Any = None
        self.unpriced_value: bool | None = None
