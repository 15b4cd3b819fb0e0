"""The probe registry: one module per probe kind, one signature.

The kind name is the module name, the config key and the ``probe`` label.
"""

from __future__ import annotations

from monitor.probes import chat, models
from monitor.probes.base import ProbeContext, ProbeFn, ProbeTarget

PROBES: dict[str, ProbeFn] = {"models": models.probe, "chat": chat.probe}

__all__ = ["PROBES", "ProbeContext", "ProbeFn", "ProbeTarget"]
