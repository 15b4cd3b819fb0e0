"""A raw-socket HTTP/1.1 test server for the gateway client and the probes.

Real sockets on 127.0.0.1 (a free port per server), one thread per
connection, and exact control over the bytes: fixed delays, slow drips,
resets (SO_LINGER 0), oversized and chunked bodies, non-HTTP answers, TLS
with a throwaway self-signed certificate.

Import the fixtures into a test module or a conftest
(``from gwfixtures import serve_fixture``); they are named ``serve`` and
``self_signed``, so the import does not shadow the test's argument.
Every server is closed and its threads joined at teardown.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from testutil import need_binary

from monitor.gateway.client import GatewayClient
from monitor.probes import ProbeContext

POLL_S = 0.05  # how often blocked server threads look at the stop flag


@dataclass(frozen=True)
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# A responder answers one request on ``conn``; it returns True to keep the
# connection open for the next request. ``stop`` is set when the server closes.
Responder = Callable[[RawRequest, socket.socket, threading.Event], bool]
# A raw handler owns the connection from accept on (no HTTP parsing).
RawHandler = Callable[[socket.socket, threading.Event], None]


def _recv(conn: socket.socket, stop: threading.Event) -> bytes:
    while not stop.is_set():
        try:
            return conn.recv(65536)
        except TimeoutError:
            continue
    return b""


def read_request(conn: socket.socket, stop: threading.Event, buf: bytearray) -> RawRequest | None:
    """One request from ``conn`` (leftover bytes stay in ``buf``); None on EOF or stop."""
    while b"\r\n\r\n" not in buf:
        data = _recv(conn, stop)
        if not data:
            return None
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < length:
        data = _recv(conn, stop)
        if not data:
            return None
        body += data
    buf[:] = body[length:]
    return RawRequest(method, path, headers, bytes(body[:length]))


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Status"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _as_bytes(body: bytes | str | Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def reply(
    status: int = 200,
    body: bytes | str | Any = b"",
    *,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    delay: float = 0.0,
    chunked: bool = False,
) -> Responder:
    """A complete answer after ``delay`` seconds; JSON-encodes dicts and lists."""
    payload = _as_bytes(body)

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        if delay and stop.wait(delay):
            return False
        extra = {"content-type": content_type, **(headers or {})}
        if chunked:
            extra["transfer-encoding"] = "chunked"
            step = 1024
            chunks = [payload[i : i + step] for i in range(0, len(payload), step)]
            data = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        else:
            extra["content-length"] = str(len(payload))
            data = payload
        conn.sendall(_head(status, extra) + data)
        return True

    return respond


def drip(body: bytes, interval: float) -> Responder:
    """A 200 whose body arrives one byte every ``interval`` seconds."""

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        conn.sendall(_head(200, {"content-length": str(len(body))}))
        for i in range(len(body)):
            if stop.wait(interval):
                return False
            conn.sendall(body[i : i + 1])
        return True

    return respond


def reset_mid_body(partial: bytes = b'{"object": "li') -> Responder:
    """Headers promising 1000 bytes, part of the body, then a TCP reset."""

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        conn.sendall(_head(200, {"content-length": "1000"}) + partial)
        reset(conn)
        return False

    return respond


def reset(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def answer_garbage(conn: socket.socket, stop: threading.Event) -> None:
    """A raw handler: read whatever comes (a TLS ClientHello), answer plain HTTP, close."""
    _recv(conn, stop)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")


@dataclass
class RawServer:
    """A threaded server; ``responder`` answers every request unless ``raw`` is set."""

    responder: Responder | None = None
    raw: RawHandler | None = None
    tls: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    requests: list[RawRequest] = field(default_factory=list)
    connections: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _socks: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(POLL_S)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}/v1"

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._socks.append(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn.settimeout(2.0)
                conn = self.tls.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._socks.append(conn)
            conn.settimeout(POLL_S)
            if self.raw is not None:
                self.raw(conn, self._stop)
                return
            assert self.responder is not None
            buf = bytearray()
            while not self._stop.is_set():
                request = read_request(conn, self._stop, buf)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                if not self.responder(request, conn, self._stop):
                    return
        except OSError:
            return  # the client went away (reset, TLS refusal): nothing to serve
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        while True:
            with self._lock:
                pending = [t for t in self._threads if t.is_alive()]
            if not pending:
                return
            for thread in pending:
                thread.join(timeout=5)
                assert not thread.is_alive(), "a test server thread did not stop"


ServeFn = Callable[..., RawServer]


@pytest.fixture(name="serve")
def serve_fixture() -> Iterator[ServeFn]:
    """``serve(responder)`` or ``serve(raw=handler)`` starts a RawServer, closed at teardown."""
    servers: list[RawServer] = []

    def start(
        responder: Responder | None = None,
        *,
        raw: RawHandler | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> RawServer:
        server = RawServer(responder=responder, raw=raw, tls=tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class SelfSigned:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(name="self_signed", scope="session")
def self_signed_fixture(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    """A certificate for 127.0.0.1 made with the openssl CLI (skip locally if absent)."""
    openssl = need_binary("openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return SelfSigned(cert, key)


@dataclass(frozen=True)
class FakeTarget:
    """The attributes of monitor.config.model's target that the gateway and probes read."""

    name: str = "gw"
    base_url: str = "http://127.0.0.1:9/v1"
    timeout: float = 2.0
    max_tokens: int = 8
    prompt: str = "Reply with OK."
    max_body_bytes: int = 1 << 20
    key: str = "sk-test-key"
    models: tuple[str, ...] = ("*",)

    def api_key(self) -> str:
        return self.key


PROBE_KEY = "sk-probe-test-5e8a1d77c2"
PROBE_LOCATION = "test-lab"

MakeContext = Callable[..., ProbeContext]


@pytest.fixture(name="make_ctx")
async def make_ctx_fixture() -> AsyncIterator[MakeContext]:
    """``make_ctx(base_url, **target_fields)``: a ProbeContext whose client closes at teardown."""
    clients: list[GatewayClient] = []

    def make(base_url: str, **fields: Any) -> ProbeContext:
        target = FakeTarget(base_url=base_url, key=PROBE_KEY, **fields)
        client = GatewayClient(
            target.base_url,
            target.api_key(),
            timeout=target.timeout,
            max_body_bytes=target.max_body_bytes,
        )
        clients.append(client)
        return ProbeContext(client=client, target=target, location=PROBE_LOCATION)

    yield make
    for client in clients:
        await client.aclose()


StartSim = Callable[..., Any]


@pytest.fixture(name="start_sim")
def start_sim_fixture() -> Iterator[StartSim]:
    """``start_sim(**scenario_keys)``: a simulator (model ``sim-a`` unless ``models``
    is given) on a socket, stopped at teardown."""
    from monitor.simulator.scenario import Scenario
    from monitor.simulator.server import RunningSimulator

    running: list[RunningSimulator] = []

    def start(**scenario: Any) -> RunningSimulator:
        data = {"name": "probe-test", "models": {"sim-a": {}}, **scenario}
        sim = RunningSimulator(Scenario.from_dict(data)).start()
        running.append(sim)
        return sim

    yield start
    for sim in running:
        sim.stop()
