"""A throwaway test CA and a leaf for 127.0.0.1 (openssl CLI), and the simulator over TLS.

``make_pki(folder, leaf_days)`` writes a CA and a leaf signed by it, valid
for ``leaf_days`` from now (openssl's ``-days``), and reads the leaf's
``notAfter`` back with ``openssl x509 -enddate``: an answer independent of
the code under test. EC P-256 keys: a 2-core machine makes them in
milliseconds. The leaf passes Python's strict X.509 checks (SAN, key
identifiers, key usage). ``TlsSimulator`` serves the simulator's app
(``monitor.simulator``, the packaged default scenario) with that leaf on a
real socket, uvicorn in a thread, as RunningSimulator does over plain http.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import uvicorn
from testutil import need_binary

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import build_app

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
_LEAF_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate (PEM): what a client trusts
    cert: Path  # the leaf (PEM)
    key: Path  # the leaf's key
    not_before: float  # the leaf's notBefore and notAfter in epoch seconds, as openssl reads them
    not_after: float

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def leaf_der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.cert.read_text())


def _openssl(*args: str) -> str:
    result = subprocess.run(
        [need_binary("openssl"), *args], check=True, capture_output=True, text=True, timeout=60
    )
    return result.stdout


def make_pki(folder: Path, leaf_days: int) -> Pki:
    """A CA (valid 100 years) and a leaf for 127.0.0.1 valid ``leaf_days`` days, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "leaf.pem", folder / "leaf.key", folder / "leaf.csr"
    extensions = folder / "leaf.ext"
    extensions.write_text(_LEAF_EXTENSIONS)
    _openssl("req", "-x509", *_EC, "-days", "36500", "-subj", "/CN=nexomon test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    _openssl("req", "-new", *_EC, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", str(leaf_days), "-extfile", str(extensions),
             "-out", str(cert))  # fmt: skip
    text = _openssl("x509", "-startdate", "-enddate", "-noout", "-in", str(cert))
    dates = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    start, end = (float(ssl.cert_time_to_seconds(dates[k])) for k in ("notBefore", "notAfter"))
    return Pki(ca, cert, key, start, end)


class TlsSimulator:
    """The simulator over https on 127.0.0.1 (a free port); ``base_url`` ends in ``/v1``."""

    def __init__(self, pki: Pki, scenario: Scenario | None = None) -> None:
        app = build_app(scenario or Scenario.packaged("default"))
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            ssl_certfile=str(pki.cert),
            ssl_keyfile=str(pki.key),
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> TlsSimulator:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "no TLS simulator"
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
