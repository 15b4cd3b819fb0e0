"""Plain helpers shared by tests: free ports and required binaries.

A module of its own (not conftest.py) so that ``from testutil import ...``
means the same thing however many conftest modules pytest has loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Mapping
from typing import Any

import pytest

IN_CI = bool(os.environ.get("CI"))


def need_localhost(port: int) -> None:
    """Skip locally when the name ``localhost`` does not resolve; fail in CI."""
    try:
        socket.getaddrinfo("localhost", port)
    except OSError:
        if IN_CI:
            pytest.fail("localhost does not resolve on this CI machine")
        pytest.skip("localhost does not resolve here")


def need_binary(name: str) -> str:
    """Path of a required binary; skip locally when absent, fail in CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if IN_CI:
            pytest.fail(f"{message} (CI must install it)")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def toml_table(values: Mapping[str, Any]) -> str:
    """``key = value`` lines: JSON strings, numbers, booleans and arrays are valid TOML."""
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
