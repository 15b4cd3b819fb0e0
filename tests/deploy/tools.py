"""Shared helpers of the deployment tests: repository paths and required binaries."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from testutil import need_binary

__all__ = [
    "DASHBOARDS",
    "DASHBOARD_FILES",
    "DEPLOY",
    "REPO",
    "load_dashboard",
    "need_binary",
    "run",
]

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
DEPLOY = REPO / "deploy"
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))


def run(
    argv: list[str], cwd: Path = REPO, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; output captured as text, never raises on exit status."""
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
