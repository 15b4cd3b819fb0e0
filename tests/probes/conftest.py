"""Probe fixtures: the raw test server and a ProbeContext factory (tests/gwfixtures.py)."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/ has no __init__.py: make its helper module importable however pytest
# was started (a run of tests/probes alone included).
_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from gwfixtures import (  # noqa: E402, F401 - the fixtures
    make_ctx_fixture,
    serve_fixture,
    start_sim_fixture,
)
