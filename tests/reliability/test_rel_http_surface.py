"""The daemon's HTTP surface under abuse: the /metrics token, junk and slow clients.

One daemon with ``metrics_token_env`` set probes a healthy raw-socket
gateway. The tests talk to its port over plain sockets where httpx would
refuse to send the bytes: garbage, oversized heads, unknown methods, path
traversal, and connections that open and then say nothing (or half a
request) — more of them than uvicorn's connection limit. Afterwards, and
during the slow clients, the daemon must still serve and still probe.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gwfixtures import RawServer, reply
from rel_helpers import (
    DEADLINE_S,
    DaemonProcess,
    assert_still_probing,
    completion,
    db_rows,
    gateway,
    listing_body,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(240)

TOKEN = "rel-metrics-token-3c9f0b1e"
TOKEN_ENV = "NEXOMON_REL_METRICS_TOKEN"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SLOW_CLIENTS = 120  # beyond uvicorn's limit_concurrency of 100


@dataclass
class Surface:
    daemon: DaemonProcess
    db: Path
    host: str
    port: int


@pytest.fixture(scope="module")
def surface(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Surface]:
    directory = tmp_path_factory.mktemp("http-surface")
    server = RawServer(
        responder=gateway(lambda: listing_body(["ok"]), {"ok": reply(200, completion("ok"))})
    )
    config = write_config(
        directory,
        server.base_url,
        target={"name": "gw", "timeout": "1s", "chat_interval": "1s", "models_interval": "1s"},
        monitor={"metrics_token_env": TOKEN_ENV},
    )
    daemon = DaemonProcess(config, env={TOKEN_ENV: TOKEN})
    try:
        daemon.start()
        host, port = daemon.url.removeprefix("http://").rsplit(":", 1)
        yield Surface(daemon, directory / "nexomon.db", host, int(port))
    finally:
        code = daemon.stop()
        server.close()
    assert code == 0, daemon.log()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer"],
    ids=["missing", "wrong", "longer", "basic", "no-scheme", "empty"],
)
def test_metrics_refuses_a_missing_or_wrong_token(
    surface: Surface, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = surface.daemon.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "nexomon_" not in response.text and TOKEN not in response.text


def test_metrics_accepts_the_right_token(surface: Surface) -> None:
    response = surface.daemon.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert "nexomon_build_info" in response.text
    # The probes of an orchestrator need no token.
    assert surface.daemon.get("/healthz").status_code == 200
    assert surface.daemon.get("/readyz").status_code == 200


def test_status_follows_the_metrics_token(surface: Surface) -> None:
    # /api/v1/status shows errors, request ids, tokens and cost: as private as /metrics.
    refused = surface.daemon.get("/api/v1/status")
    assert refused.status_code == 401 and "last_results" not in refused.text
    allowed = surface.daemon.get("/api/v1/status", headers=AUTH)
    assert allowed.status_code == 200 and "last_results" in allowed.json()


CLOSED = 0  # the server hung up without an answer
# name -> (bytes sent, statuses it may answer). 200 only where the junk is
# still a request the server may lawfully answer (/healthz with odd headers).
JUNK: dict[str, tuple[bytes, set[int]]] = {
    "garbage": (bytes(range(256)) * 8 + b"\r\n\r\n", {400, CLOSED}),
    "tls-hello-on-http": (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
        {400, CLOSED},
    ),
    "huge-header": (
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"a" * 200_000 + b"\r\n\r\n",
        {400, 431, CLOSED},
    ),
    "many-headers": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: y\r\n" % i for i in range(5000))
        + b"\r\n",
        {200, 400, 431, CLOSED},
    ),
    "bad-method": (b"BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n", {400, 405}),
    "delete": (b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", {405}),
    "traversal": (b"GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", {400, 404}),
    "encoded-traversal": (
        b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        {400, 404},
    ),
    "absolute-uri": (b"GET http://evil.example/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", {400, 404}),
    "bad-version": (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", {200, 400, 505, CLOSED}),
    "no-host": (b"GET /healthz HTTP/1.1\r\n\r\n", {200, 400}),
    "two-lengths": (
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Content-Length: 50\r\n\r\nhello",
        {400},
    ),
    "negative-length": (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", {400}),
    "nul-in-path": (b"GET /metrics\x00 HTTP/1.1\r\nHost: x\r\n\r\n", {400, 404}),
}


def _complete(data: bytes) -> bool:
    """True once ``data`` holds a whole response (head plus content-length body)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return True


def _exchange(surface: Surface, payload: bytes) -> bytes:
    """Sends ``payload``; returns the answer (empty when the server just hung up)."""
    with socket.create_connection((surface.host, surface.port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may close before reading it all
            sock.sendall(payload)
        received = b""
        with contextlib.suppress(OSError):
            while not _complete(received):
                data = sock.recv(65536)
                if not data:
                    break
                received += data
        return received


@pytest.mark.parametrize("name", list(JUNK))
def test_junk_request_gets_no_data_and_no_crash(surface: Surface, name: str) -> None:
    payload, allowed = JUNK[name]
    answer = _exchange(surface, payload)
    status = CLOSED
    if answer:
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
        status = int(status_line.split()[1])
    assert status in allowed, answer[:300]
    assert b"root:" not in answer
    assert b"nexomon_" not in answer, "metrics leaked without the token"
    assert surface.daemon.get("/healthz").status_code == 200


def test_serving_and_probing_continue_after_the_junk(surface: Surface) -> None:
    for payload, _ in JUNK.values():
        _exchange(surface, payload)
    assert_still_probing(surface.daemon, [("gw", "models", ""), ("gw", "chat", "ok")], headers=AUTH)
    log = surface.daemon.log()
    assert "Traceback" not in log


def _rows(surface: Surface) -> int:
    return db_rows(surface.db, "SELECT count(*) FROM probe_results")[0][0]


def test_slow_clients_do_not_stop_probing_or_serving(surface: Surface) -> None:
    socks: list[socket.socket] = []
    try:
        for i in range(SLOW_CLIENTS):
            sock = socket.create_connection((surface.host, surface.port), timeout=10)
            socks.append(sock)
            if i % 2:  # half of them start a request and never finish it
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        before = _rows(surface)
        # Probing goes on while every slot is held.
        wait_until(lambda: _rows(surface) >= before + 4, "probes while slow clients hold on")
        # The daemon drops the idle connections itself and serves again,
        # although this side never closes them.
        wait_until(
            lambda: _status(surface, "/healthz") == 200,
            "/healthz to answer 200 with slow clients connected",
            surface.daemon,
        )
        for sock in socks:
            sock.settimeout(DEADLINE_S)
            assert sock.recv(1024) == b"", "the server should have closed the idle connection"
    finally:
        for sock in socks:
            sock.close()
    assert_still_probing(surface.daemon, [("gw", "chat", "ok")], headers=AUTH)


def _status(surface: Surface, path: str) -> int:
    try:
        return surface.daemon.get(path).status_code
    except httpx.HTTPError:
        return 0
