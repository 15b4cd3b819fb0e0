"""``nexomon health`` (issue 16 point 2): the container HEALTHCHECK, as real processes.

It reads the config and asks the configured listen address: 0 when the
daemon answers ``/healthz`` with 200 ``ok`` (a wildcard bind is asked on
loopback, IPv6 in brackets), 1 with one line for a refused connection, no
answer within 4 s or another status, 2 for a listen address it cannot check.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_helpers import REPO, Ran, nexomon
from harness import running_daemon, write_config
from testutil import free_port

from monitor.simulator.server import RunningSimulator


def one_line(ran: Ran, rc: int) -> str:
    """The only line on stderr, after checking the exit code."""
    assert ran.rc == rc, ran
    lines = [line for line in ran.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in ran.err, ran
    return lines[0]


@contextmanager
def answering(status: int, body: bytes) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 answering every GET with ``status`` and ``body``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def health_config(tmp_path: Path, listen: str) -> Path:
    return write_config(tmp_path, "http://127.0.0.1:9/v1", monitor={"listen": listen})


def test_a_running_daemon_is_healthy(simulator: RunningSimulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, simulator.base_url)
    with running_daemon(config) as daemon:
        ran = nexomon("health", "-c", str(config))
        daemon.stop()
    assert ran.rc == 0, ran
    assert ran.out == f"{daemon.url}/healthz: ok\n" and ran.err == ""


def test_a_wildcard_listen_is_checked_on_loopback(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path, simulator.base_url, monitor={"listen": f"0.0.0.0:{port}"})
    with running_daemon(config) as daemon:
        ran = nexomon("health", "-c", str(config))
        daemon.stop()
    assert ran.rc == 0, ran
    assert ran.out == f"http://127.0.0.1:{port}/healthz: ok\n"


def test_an_ipv6_wildcard_is_checked_on_ipv6_loopback(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with socket.socket(socket.AF_INET6) as listener:  # accepts, never answers: we see the URL
        listener.bind(("::1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        ran = nexomon("health", "-c", str(health_config(tmp_path, f"[::]:{port}")))
    assert one_line(ran, 1) == f"nexomon: health: http://[::1]:{port}/healthz: no answer within 4s"


def test_nothing_listening_is_one_line_exit_1(tmp_path: Path) -> None:
    port = free_port()
    ran = nexomon("health", "-c", str(health_config(tmp_path, f"127.0.0.1:{port}")))
    assert one_line(ran, 1) == (
        f"nexomon: health: http://127.0.0.1:{port}/healthz: connection refused "
        "(is nexomon run listening there?)"
    )
    assert ran.out == ""


@pytest.mark.parametrize(("status", "body"), [(503, b"not ready"), (200, b"maybe")])
def test_any_other_answer_is_unhealthy(tmp_path: Path, status: int, body: bytes) -> None:
    with answering(status, body) as port:
        ran = nexomon("health", "-c", str(health_config(tmp_path, f"127.0.0.1:{port}")))
    assert one_line(ran, 1) == (
        f"nexomon: health: http://127.0.0.1:{port}/healthz: HTTP {status} {body.decode()!r}"
    )


def test_port_0_cannot_be_checked_and_names_monitor_listen(tmp_path: Path) -> None:
    config = health_config(tmp_path, "127.0.0.1:0")
    assert one_line(nexomon("health", "-c", str(config)), 2) == (
        f"nexomon: {config}: monitor.listen: port 0 (any free port) cannot be checked; "
        "set a fixed port"
    )


def test_without_c_health_reads_the_default_config(tmp_path: Path) -> None:
    # ./nexomon.toml here; $NEXOMON_CONFIG (the image's way) is in test_container_layout.
    port = free_port()
    health_config(tmp_path, f"127.0.0.1:{port}")
    ran = nexomon("health", cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert f"127.0.0.1:{port}/healthz: connection refused" in one_line(ran, 1)
