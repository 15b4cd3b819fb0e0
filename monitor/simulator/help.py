"""The ``nexomon simulate --help`` epilog, built from the simulator's own tables.

Scenario keys come from ``scenario.SCENARIO_KEYS`` / ``MODEL_KEYS`` (what the
parser accepts) and fault kinds from ``scenario.FAULT_KINDS`` with the effects
in ``faults.FAULT_EFFECTS`` and parameters from the parser's table, so the help
cannot drift from the code: a kind without an effect line still appears.
"""

from __future__ import annotations

import textwrap

from monitor.simulator.faults import FAULT_EFFECTS
from monitor.simulator.scenario import (
    FAULT_COMMON_PARAMS,
    FAULT_KINDS,
    FAULT_PARAMS,
    MODEL_KEYS,
    SCENARIO_KEYS,
)


def simulate_epilog() -> str:
    """Plain text listing every scenario key, model key and fault kind."""
    width = max(len(kind) for kind in FAULT_KINDS)
    faults = []
    for kind in FAULT_KINDS:
        params = ", ".join(["rate", *sorted(FAULT_PARAMS.get(kind, ()))])
        effect = FAULT_EFFECTS.get(kind, "")
        faults.append(f"  {kind:<{width}}  {effect} [{params}]")
    return "\n".join(
        [
            "scenario keys (top level of the --scenario TOML):",
            _wrapped(SCENARIO_KEYS),
            "model keys ([models.ID] tables):",
            _wrapped(MODEL_KEYS),
            "fault kinds (faults = [{kind = ..., rate = ...}], models_faults likewise):",
            *faults,
            f"  every kind also takes: {', '.join(FAULT_COMMON_PARAMS)} (the fault applies only",
            "  to requests whose User-Agent contains that text; nexomon sends",
            '  "nexomon/VERSION (location=LOCATION)", so only_user_agent = "location=eu"',
            "  is a fault seen from location eu only)",
            "--api-key KEY admits only that bearer key; any other gets 401 invalid_api_key.",
        ]
    )


def _wrapped(keys: tuple[str, ...]) -> str:
    return textwrap.fill(
        ", ".join(keys),
        width=79,
        initial_indent="  ",
        subsequent_indent="  ",
        break_long_words=False,
        break_on_hyphens=False,
    )
