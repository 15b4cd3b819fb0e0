"""Shared helpers of the deployment tests: repository paths and required binaries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
DEPLOY = REPO / "deploy"
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))


def need_binary(name: str) -> str:
    """Path of ``name``; skip when it is absent, but fail when ``$CI`` is set."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must install it)")
        pytest.skip(message)
    return path


def run(
    argv: list[str], cwd: Path = REPO, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; output captured as text, never raises on exit status."""
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
