"""``nexomon simulate --scenario NAME``: the scenarios shipped in the package by name.

Contract: ``scenario_arg(value)`` returns ``value`` unchanged when it names an
existing file or is not a bundled name; a bundled name (``default``, ``demo``)
with no such file in the working directory becomes the packaged file's path.
So a container or a wheel install can say ``--scenario demo`` instead of a
``site-packages/...`` path that changes with the Python version.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["BUNDLED", "scenario_arg"]

BUNDLED = ("default", "demo")


def scenario_arg(value: str) -> str:
    """The scenario path for ``--scenario``: a file as given, else a bundled name's file."""
    if value in BUNDLED and not Path(value).exists():
        return str(resources.files("monitor.simulator").joinpath(f"{value}.toml"))
    return value
