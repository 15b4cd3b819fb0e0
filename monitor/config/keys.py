"""Reading an API key at use, from an environment variable or a file.

Contract: ``read_api_key(where, env_name, file)`` returns the key with
surrounding whitespace stripped, or raises :class:`~monitor.errors.ConfigError`
naming the variable or the file (``where`` is the target's key path, such as
``nexomon.toml: targets[0]``), never the key itself. A key must be one
printable ASCII token: httpx would refuse anything else as a header value and
might echo it. A key file readable by group or others is logged as a WARNING
at each read (``rules.warn_if_shared``), as ssh does.
"""

from __future__ import annotations

import os
from pathlib import Path

from monitor.config.rules import warn_if_shared
from monitor.errors import ConfigError

__all__ = ["read_api_key"]


def read_api_key(where: str, env_name: str | None, file: str | None) -> str:
    """The key from ``$env_name`` when set, else from ``file`` (exactly one is given)."""
    if env_name is not None:
        origin = f"{where}.api_key_env: environment variable {env_name}"
        raw = os.environ.get(env_name)
        if raw is None:
            raise ConfigError(f"{origin} is not set")
    else:
        origin = f"{where}.api_key_file: {file}"
        warn_if_shared(Path(str(file)), origin)
        try:
            raw = Path(str(file)).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{origin}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{origin}: is not UTF-8 text") from None
    key = raw.strip()
    if not key:
        raise ConfigError(f"{origin} is empty")
    # Non-ASCII too: an HTTP header value is ASCII, httpx raises on anything else.
    if not key.isascii() or not key.isprintable() or any(ch.isspace() for ch in key):
        raise ConfigError(f"{origin} must hold one key without spaces or control characters")
    return key
