"""The probe registry: one module per probe kind, one signature.

The kind name is the module name, the config key and the ``probe`` label.
"""

from __future__ import annotations

from monitor.probes import chat, contract, models, stream
from monitor.probes.base import ProbeContext, ProbeFn, ProbeTarget

PROBES: dict[str, ProbeFn] = {
    "models": models.probe,
    "chat": chat.probe,
    "contract": contract.probe,
    "stream": stream.probe,  # opt-in: stream_interval
}

__all__ = ["PROBES", "ProbeContext", "ProbeFn", "ProbeTarget"]
