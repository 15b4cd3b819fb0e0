"""Run a benchmark with httpx's own transport (the httpcore pool) under GatewayClient.

    python benchmarks/with_httpcore.py benchmarks/latency.py --probes 500

The "before" rows of the first transport comparison (benchmarks/README.md,
session 2): the same script, in the same session, with
``httpx.AsyncHTTPTransport`` (max_connections 100, keep-alive 100) in place
of the default monitor.http.transport.Http11Transport.
"""

from __future__ import annotations

import runpy
import sys

import httpx

import monitor.gateway.client


def httpcore_transport(*, max_connections: int, trust_env: bool) -> httpx.AsyncHTTPTransport:
    n = max_connections
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    return httpx.AsyncHTTPTransport(limits=limits, trust_env=trust_env)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    monitor.gateway.client.Http11Transport = httpcore_transport  # type: ignore[assignment,misc]
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, script.rsplit("/", 1)[0] if "/" in script else ".")
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
