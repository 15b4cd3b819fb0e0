"""The shared set against real servers: nginx, uvicorn, hypercorn, aiohttp.web.

One client per transport (``KINDS``) sends, in order: GET with a length,
GET chunked, HEAD, GET 204, GET gzip, each followed by ``GET /port`` (the
client's source port, as the server saw it). Both transports must yield the
same statuses, reason phrases, framing and coding headers and decoded bodies,
and one source port throughout: every answer left the connection reusable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conformance import KINDS, Outcome, make_transport, outcome
from realservers import SERVERS, RealServer, start_server
from realservers_app import GZIP_TEXT

KEPT = frozenset({"content-length", "transfer-encoding", "content-encoding", "content-type"})
STEPS = [
    ("GET", "/cl"),
    ("GET", "/chunked"),
    ("HEAD", "/cl"),
    ("GET", "/nocontent"),
    ("GET", "/gzip"),
]


@pytest.fixture(name="server", params=SERVERS)
def server_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RealServer]:
    server = start_server(request.param, tmp_path)
    yield server
    server.stop()


def _framing(got: Outcome) -> Outcome:
    """The Outcome without the headers that vary by server and time (date, server...)."""
    headers = tuple((n.lower(), v) for n, v in got.headers if n.lower() in KEPT)
    return Outcome(got.status, got.reason, headers, got.body, got.error)


async def _walk(kind: str, base: str) -> tuple[list[Outcome], set[bytes]]:
    answers, ports = [], set()
    async with httpx.AsyncClient(transport=make_transport(kind), timeout=5.0) as client:
        for method, path in STEPS:
            answers.append(_framing(await outcome(client, method, base + path)))
            port = await client.get(base + "/port")
            ports.add(port.content)
    return answers, ports


async def test_the_shared_set(server: RealServer) -> None:
    walks = {kind: await _walk(kind, server.url) for kind in KINDS}
    answers = walks["http11"][0]
    assert answers == walks["httpx"][0]
    cl, chunked, head, nocontent, gzipped = answers
    silent = server.name == "hypercorn"  # h11 as a server sends no reason phrase
    assert (cl.status, cl.reason, cl.body) == (200, "" if silent else "OK", b"hello")
    assert ("content-length", "5") in cl.headers
    assert (chunked.body, ("transfer-encoding", "chunked") in chunked.headers) == (
        b"hello world",
        True,
    )
    assert (head.status, head.body, ("content-length", "5") in head.headers) == (200, b"", True)
    reason = "" if silent else "No Content"
    assert (nocontent.status, nocontent.reason, nocontent.body) == (204, reason, b"")
    assert (gzipped.body, ("content-encoding", "gzip") in gzipped.headers) == (GZIP_TEXT, True)
    for kind in KINDS:  # one connection for the whole walk
        assert len(walks[kind][1]) == 1, (kind, walks[kind][1])
