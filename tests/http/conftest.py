"""tests/http: no proxy from the machine's environment reaches a transport under test.

Both transports honour HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY (and
their lower-case names); a test that wants a proxy sets one itself.
"""

from __future__ import annotations

import pytest

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_environment_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
