"""Decompression bombs against the running daemon: memory stays flat, others stay on time.

One daemon, three targets on one raw-socket gateway (routed by path prefix):

* ``double``: ``/models`` answers 1,827 bytes with ``Content-Encoding: gzip,
  gzip``, a 1 GiB bomb in two layers (on main it took RSS from 95 MB to
  2.2 GB and blocked the event loop while it inflated);
* ``single``: one gzip layer of the same 1 GiB (about 1 MB on the wire);
* ``healthy``: an ordinary listing.

Contract checked: peak RSS (VmHWM) stays under 200 MB across several bombs
of each kind, both bombs are ``invalid_response`` with a clear error, and the
healthy target goes on probing.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from bombs import gzip_bomb
from gwfixtures import RawRequest, RawServer, reply
from rel_helpers import (
    DaemonProcess,
    assert_still_probing,
    completion,
    extra_target,
    listing_body,
    metric,
    proc_status_kib,
    scrape,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(240)

PEAK_RSS_LIMIT_KIB = 200 * 1024
BOMBS_EACH = 4


@dataclass
class Bombed:
    daemon: DaemonProcess
    metrics: str
    peak_kib: int


def _invalid(text: str, target: str) -> float:
    value = metric(
        text,
        "nexomon_probes_total",
        target=target,
        probe="models",
        model="",
        outcome="invalid_response",
    )
    return value or 0.0


@pytest.fixture(scope="module")
def bombed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bombed]:
    directory = tmp_path_factory.mktemp("decoding-bomb")
    single = gzip_bomb(1 << 30)
    double = gzip.compress(single)
    answers = {
        "double": reply(200, double, headers={"content-encoding": "gzip, gzip"}),
        "single": reply(200, single, headers={"content-encoding": "gzip"}, chunked=True),
        "healthy": reply(200, listing_body(["m1", "m2"])),
    }
    chat = reply(200, completion("m1"))

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        name = req.path.strip("/").split("/")[0]
        if req.method == "GET" and req.path.endswith("/models"):
            return answers[name](req, conn, stop)
        return chat(req, conn, stop)

    server = RawServer(responder=respond)
    root = f"http://127.0.0.1:{server.port}"
    keys = {"models": ["*"], "chat_interval": "1h", "models_interval": "1s", "timeout": "1s"}
    config = write_config(
        directory,
        f"{root}/healthy/v1",
        target={"name": "healthy", **keys},
        extra=extra_target("double", f"{root}/double/v1", **keys)
        + extra_target("single", f"{root}/single/v1", **keys),
    )
    daemon = DaemonProcess(config)
    try:
        daemon.start()
        assert daemon.proc is not None
        wait_until(
            lambda: min(_invalid(scrape(daemon), t) for t in ("double", "single")) >= BOMBS_EACH,
            f"{BOMBS_EACH} bombs of each kind",
            daemon,
            timeout=120,
        )
        peak = proc_status_kib(daemon.proc.pid, "VmHWM")
        yield Bombed(daemon, scrape(daemon), peak)
    finally:
        code = daemon.stop()
        server.close()
    assert code == 0, daemon.log()


def test_peak_memory_stays_under_200_mb(bombed: Bombed) -> None:
    print(f"peak RSS after {BOMBS_EACH}+ bombs of each kind: {bombed.peak_kib} KiB")
    assert bombed.peak_kib < PEAK_RSS_LIMIT_KIB


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("double", "cannot decode the body: nested content encodings (gzip, gzip)"),
        ("single", "response body larger than 1048576 bytes"),
    ],
)
def test_each_bomb_is_an_invalid_response_with_its_reason(
    bombed: Bombed, target: str, reason: str
) -> None:
    assert _invalid(bombed.metrics, target) >= BOMBS_EACH
    assert f"{target}/models is DOWN (invalid_response: {reason})" in bombed.daemon.log()


def test_the_healthy_target_keeps_probing(bombed: Bombed) -> None:
    assert metric(bombed.metrics, "nexomon_catalog_size", target="healthy") == 2
    assert_still_probing(bombed.daemon, [("healthy", "models", "")])
