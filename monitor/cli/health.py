"""``nexomon health``: is the daemon of this config answering ``/healthz``?

Contract: reads the config (``-c``, ``$NEXOMON_CONFIG``, ``./nexomon.toml``),
sends ``GET /healthz`` to the configured ``monitor.listen`` address (a
wildcard host, ``0.0.0.0`` or ``::``, is asked on loopback: the check runs
beside the daemon, as a container HEALTHCHECK does) and returns 0 when the
answer is 200 with the body ``ok``; otherwise it prints one line on stderr
(connection refused, a timeout after 4 s, another status) and returns 1.
A config error is exit 2 as for every command; ``listen`` with port 0 (any
free port) cannot be checked and is a config error naming ``monitor.listen``.

The request goes straight to the socket (``http.client``): no proxy from the
environment, nothing the daemon's own HTTP stack could share a fault with.
"""

from __future__ import annotations

import http.client
import socket
import sys

from monitor.config.model import Config, load, resolve_path
from monitor.errors import ConfigError

__all__ = ["TIMEOUT_S", "check", "health_url", "probe_host"]

TIMEOUT_S = 4.0
# What /healthz answers while the process serves HTTP (daemon/web.py).
HEALTHY_BODY = b"ok"
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def probe_host(listen_host: str) -> str:
    """The host to ask: loopback for a wildcard bind, else the bound host."""
    return _WILDCARDS.get(listen_host, listen_host)


def health_url(config: Config) -> tuple[str, int, str]:
    """``(host, port, url)`` of the daemon's ``/healthz``; ConfigError for port 0."""
    port = config.monitor.listen_port
    if port == 0:
        raise ConfigError(
            f"{config.source}: monitor.listen: port 0 (any free port) cannot be checked; "
            "set a fixed port"
        )
    host = probe_host(config.monitor.listen_host)
    shown = f"[{host}]" if ":" in host else host
    return host, port, f"http://{shown}:{port}/healthz"


def check(config: Config, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    """One ``GET /healthz``: ``(healthy, one line saying what was seen)``."""
    host, port, url = health_url(config)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/healthz", headers={"User-Agent": "nexomon-health"})
        response = connection.getresponse()
        body = response.read(256)
    except TimeoutError:
        return False, f"{url}: no answer within {timeout:g}s"
    except ConnectionRefusedError:
        return False, f"{url}: connection refused (is nexomon run listening there?)"
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, socket.gaierror):
            reason = f"cannot resolve {host}: {reason}"
        return False, f"{url}: {reason or type(exc).__name__}"
    finally:
        connection.close()
    if response.status == 200 and body.strip() == HEALTHY_BODY:
        return True, f"{url}: ok"
    shown = body[:80].decode("ascii", "replace").strip()
    shown = "".join(ch if ch.isprintable() else "?" for ch in shown)
    return False, f"{url}: HTTP {response.status} {shown!r}"


def cmd_health(config_path: str | None) -> int:
    """Load the config at ``-c`` (or its default), check, print the line (stdout
    when healthy, stderr otherwise); 0 healthy, 1 not. Raises ConfigError."""
    healthy, line = check(load(resolve_path(config_path)))
    if healthy:
        print(line, flush=True)
        return 0
    print(f"nexomon: health: {line}", file=sys.stderr, flush=True)
    return 1
