"""Http11Transport against httpx's default transport, byte for byte: the table.

Each case is an exact answer from a raw socket server (tests/gwfixtures.py);
both transports (tests/http/conformance.py ``KINDS``) get the same request
through ``httpx.AsyncClient(transport=T)`` and must yield the same Outcome
(status, reason phrase, raw headers, decoded body, exception class), and,
where ``connections`` is set, open as many connections over two requests in
a row (keep-alive reuse). A case in ``conformance.DIFFERENCES`` asserts the
documented difference instead.

The other conformance cases, which need more than one answer (TLS, IPv6,
proxies, pool limits, cancellation, stale keep-alive, request validation,
fd count), are in test_conformance_net.py and test_conformance_client.py;
real servers in test_conformance_servers.py; generated answers in arbitrary
reads against h11 itself in test_conformance_parse.py.
"""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from dataclasses import dataclass

import httpx
import pytest
from conformance import (
    KINDS,
    Outcome,
    answer,
    expected,
    expected_connections,
    fails,
    half_close,
    head,
    observe,
    ok,
    parts,
)
from gwfixtures import RawRequest, Responder, ServeFn, drip, reset, reset_mid_body
from gwfixtures import serve_fixture as serve_fixture  # the fixture

GZIP = gzip.compress(b"hello", mtime=0)
DEFLATE = zlib.compress(b"hello")
# "hello" as brotli writes it: window bits, one uncompressed meta-block, an empty last one.
BROTLI_BYTES = b"\x0b\x02\x80hello\x03"
BR_DECODED = "br" in httpx._decoders.SUPPORTED_DECODERS  # httpx decodes br if brotli is there
MANY = [(f"X-Field-{i}", str(i)) for i in range(1000)]
CHUNKED = ("Transfer-Encoding", "chunked")


@dataclass(frozen=True)
class Case:
    answer: Responder
    expect: Outcome  # what Http11Transport yields (httpx too, unless in DIFFERENCES)
    method: str = "GET"
    connections: int | None = None  # set: two requests in a row open this many
    timeout: float = 3.0  # httpx.Timeout for connect, read, write and pool


def _closed(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
    return False  # read the request, close without a byte of answer


def _reset(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
    reset(conn)
    return False


def _len(n: int) -> tuple[str, str]:
    return ("Content-Length", str(n))


CASES: dict[str, Case] = {
    # -- framing ----------------------------------------------------------
    "content-length": Case(
        answer(head("200 OK", "Content-Length: 5", body=b"hello")),
        ok(200, b"hello", _len(5)),
        connections=1,
    ),
    "chunked-with-extensions": Case(
        answer(
            head(
                "200 OK",
                "Transfer-Encoding: chunked",
                body=b"5;name=value\r\nhello\r\n6;x\r\n world\r\n0\r\n\r\n",
            )
        ),
        ok(200, b"hello world", CHUNKED),
        connections=1,
    ),
    "trailer-in-the-head-read": Case(
        answer(
            head(
                "200 OK",
                "Transfer-Encoding: chunked",
                body=b"5\r\nhello\r\n0\r\nContent-Encoding: gzip\r\nX-Sum: 1\r\n\r\n",
            )
        ),
        ok(200, b"hello", CHUNKED),
        connections=1,
    ),
    "trailer-in-a-later-read": Case(
        parts(
            [
                head("200 OK", "Transfer-Encoding: chunked", body=b"5\r\nhello\r\n"),
                b"0\r\nContent-Encoding: gzip\r\n\r\n",
            ]
        ),
        ok(200, b"hello", CHUNKED),
        connections=1,
    ),
    "read-until-close": Case(
        answer(head("200 OK", body=b"until the end"), keep=False),
        ok(200, b"until the end"),
        connections=2,
    ),
    "http-1.0": Case(
        answer(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
        ok(200, b"hi", _len(2)),
        connections=2,
    ),
    "http-1.0-keep-alive": Case(
        answer(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"),
        ok(200, b"hi", ("Connection", "keep-alive"), _len(2)),
        connections=1,
    ),
    "100-continue": Case(
        answer(head("100 Continue") + head("200 OK", "Content-Length: 2", body=b"hi")),
        ok(200, b"hi", _len(2)),
        connections=1,
    ),
    "103-early-hints": Case(
        answer(
            head("103 Early Hints", "Link: </s.css>; rel=preload")
            + head("200 OK", "Content-Length: 2", body=b"hi")
        ),
        ok(200, b"hi", _len(2)),
        connections=1,
    ),
    "204-no-content": Case(
        answer(head("204 No Content", "Content-Length: 5")),
        ok(204, b"", _len(5), reason="No Content"),
        connections=1,
    ),
    "304-not-modified": Case(
        answer(head("304 Not Modified", "Content-Length: 5")),
        ok(304, b"", _len(5), reason="Not Modified"),
        connections=1,
    ),
    "head-with-content-length": Case(
        answer(head("200 OK", "Content-Length: 50")),
        ok(200, b"", _len(50)),
        method="HEAD",
        connections=1,
    ),
    "head-chunked": Case(
        answer(head("200 OK", "Transfer-Encoding: chunked")),
        ok(200, b"", CHUNKED),
        method="HEAD",
        connections=1,
    ),
    "connection-close-socket-left-open": Case(
        answer(head("200 OK", "Connection: close", "Content-Length: 2", body=b"hi")),
        ok(200, b"hi", ("Connection", "close"), _len(2)),
        connections=2,
    ),
    "half-close": Case(half_close(head("200 OK", body=b"body")), ok(200, b"body"), connections=2),
    # -- lengths and codings -----------------------------------------------
    "duplicate-content-length": Case(
        answer(head("200 OK", "Content-Length: 5", "Content-Length: 5", body=b"hello")),
        ok(200, b"hello", _len(5)),
        connections=1,
    ),
    "content-length-list": Case(
        answer(head("200 OK", "Content-Length: 5, 5", body=b"hello")),
        ok(200, b"hello", _len(5)),
        connections=1,
    ),
    "conflicting-content-length": Case(
        answer(head("200 OK", "Content-Length: 5", "Content-Length: 6", body=b"hello!")),
        fails(httpx.RemoteProtocolError),
    ),
    "negative-content-length": Case(
        answer(head("200 OK", "Content-Length: -1")), fails(httpx.RemoteProtocolError)
    ),
    "te-and-content-length": Case(
        answer(
            head(
                "200 OK",
                "Transfer-Encoding: chunked",
                "Content-Length: 3",
                body=b"5\r\nhello\r\n0\r\n\r\n",
            )
        ),
        ok(200, b"hello", CHUNKED, _len(3)),
        connections=2,
    ),
    "te-gzip-chunked": Case(
        answer(head("200 OK", "Transfer-Encoding: gzip, chunked", body=b"5\r\nhello\r\n0\r\n\r\n")),
        ok(200, b"hello", ("Transfer-Encoding", "gzip, chunked")),
    ),
    "te-chunked-capitals": Case(
        answer(head("200 OK", "Transfer-Encoding: Chunked", body=b"5\r\nhello\r\n0\r\n\r\n")),
        ok(200, b"hello", ("Transfer-Encoding", "Chunked")),
    ),
    "invalid-chunk-size": Case(
        answer(head("200 OK", "Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n")),
        fails(httpx.RemoteProtocolError),
    ),
    "closed-mid-body": Case(
        answer(head("200 OK", "Content-Length: 100", body=b"part"), keep=False),
        fails(httpx.RemoteProtocolError),
    ),
    "closed-mid-chunk": Case(
        answer(head("200 OK", "Transfer-Encoding: chunked", body=b"5\r\nhel"), keep=False),
        fails(httpx.RemoteProtocolError),
    ),
    "closed-before-answer": Case(_closed, fails(httpx.RemoteProtocolError)),
    "reset-before-answer": Case(_reset, fails(httpx.ReadError)),
    "reset-mid-body": Case(reset_mid_body(), fails(httpx.ReadError)),
    "slow-drip-under-the-read-timeout": Case(
        drip(b"hello", interval=0.05),
        ok(200, b"hello", ("content-length", "5"), reason="Status"),
        timeout=1.0,
    ),
    "drip-past-the-read-timeout": Case(
        drip(b"hello", interval=1.0), fails(httpx.ReadTimeout), timeout=0.2
    ),
    # -- head syntax (RFC 9112 leniencies, h11's rules) ---------------------
    "obs-fold": Case(
        answer(head("200 OK", "X-A: one", "  two", "Content-Length: 2", body=b"hi")),
        ok(200, b"hi", ("X-A", "one two"), _len(2)),
        connections=1,
    ),
    "bare-lf": Case(
        answer(b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nhi"),
        ok(200, b"hi", _len(2), ("X-A", "b")),
        connections=1,
    ),
    "reason-phrase-kept": Case(
        answer(head("299 Very Fine", "Content-Length: 0")),
        ok(299, b"", _len(0), reason="Very Fine"),
    ),
    "reason-phrase-missing": Case(
        answer(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), ok(200, b"", _len(0), reason="")
    ),
    "reason-phrase-obs-text": Case(
        answer(head("200 \xe9t\xe9", "Content-Length: 0")), ok(200, b"", _len(0), reason="t")
    ),
    "control-char-in-value": Case(
        answer(head("200 OK", "X-A: b\x01c", "Content-Length: 0")),
        ok(200, b"", ("X-A", "b\x01c"), _len(0)),
    ),
    "whitespace-around-value": Case(
        answer(head("200 OK", "X-A: \t b c \t ", "Content-Length: 0")),
        ok(200, b"", ("X-A", "b c"), _len(0)),
    ),
    "space-in-header-name": Case(
        answer(head("200 OK", "X A: b", "Content-Length: 0")), fails(httpx.RemoteProtocolError)
    ),
    "space-before-colon": Case(
        answer(head("200 OK", "X-A : b", "Content-Length: 0")), fails(httpx.RemoteProtocolError)
    ),
    "continuation-line-first": Case(
        answer(head("200 OK", " X-A: b", "Content-Length: 0")), fails(httpx.RemoteProtocolError)
    ),
    "nul-in-value": Case(
        answer(head("200 OK", "X-A: b\x00c", "Content-Length: 0")),
        fails(httpx.RemoteProtocolError),
    ),
    "cr-in-value": Case(
        answer(head("200 OK", "X-A: b\rc", "Content-Length: 0")), fails(httpx.RemoteProtocolError)
    ),
    "not-http": Case(answer(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"), fails(httpx.RemoteProtocolError)),
    "four-digit-status": Case(
        answer(head("2000 OK", "Content-Length: 0")), fails(httpx.RemoteProtocolError)
    ),
    "a-thousand-headers": Case(
        answer(head("200 OK", *[f"{n}: {v}" for n, v in MANY], "Content-Length: 0")),
        ok(200, b"", *MANY, _len(0)),
        connections=1,
    ),
    "ten-thousand-headers": Case(  # no count limit on either side: the size limit holds
        answer(head("200 OK", *[f"X-F-{i}: {i}" for i in range(10_000)], "Content-Length: 0")),
        fails(httpx.RemoteProtocolError),
    ),
    "60-KiB-header-under-the-limit": Case(
        answer(head("200 OK", "X-Big: " + "a" * 60_000, "Content-Length: 0")),
        ok(200, b"", ("X-Big", "a" * 60_000), _len(0)),
    ),
    "200-KiB-head-over-the-limit": Case(
        answer(head("200 OK", "X-Big: " + "a" * 200_000, "Content-Length: 0")),
        fails(httpx.RemoteProtocolError),
    ),
    # -- content codings (decoded by httpx's client from the raw bytes) -----
    "gzip": Case(
        answer(head("200 OK", "Content-Encoding: gzip", f"Content-Length: {len(GZIP)}") + GZIP),
        ok(200, b"hello", ("Content-Encoding", "gzip"), _len(len(GZIP))),
    ),
    "deflate": Case(
        answer(
            head("200 OK", "Content-Encoding: deflate", f"Content-Length: {len(DEFLATE)}") + DEFLATE
        ),
        ok(200, b"hello", ("Content-Encoding", "deflate"), _len(len(DEFLATE))),
    ),
    "br": Case(
        answer(head("200 OK", "Content-Encoding: br", "Content-Length: 9") + BROTLI_BYTES),
        ok(200, b"hello" if BR_DECODED else BROTLI_BYTES, ("Content-Encoding", "br"), _len(9)),
    ),
    "broken-gzip": Case(
        answer(head("200 OK", "Content-Encoding: gzip", "Content-Length: 5", body=b"hello")),
        fails(httpx.DecodingError),
    ),
    "broken-deflate": Case(
        answer(head("200 OK", "Content-Encoding: deflate", "Content-Length: 5", body=b"hello")),
        fails(httpx.DecodingError),
    ),
    # -- client policy --------------------------------------------------------
    "redirect-not-followed": Case(
        answer(head("302 Found", "Location: /elsewhere", "Content-Length: 0")),
        ok(302, b"", ("Location", "/elsewhere"), _len(0), reason="Found"),
        connections=1,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_both_transports_yield_the_same(serve: ServeFn, name: str) -> None:
    case = CASES[name]
    want = expected(name, case.expect)
    times = 1 if case.connections is None else 2
    for kind in KINDS:
        server = serve(case.answer)
        got = await observe(
            kind, server.base_url, method=case.method, times=times, timeout=case.timeout
        )
        assert got == [want[kind]] * times, kind
        if case.connections is not None:
            assert server.connections == expected_connections(name, case.connections)[kind], kind


def test_every_documented_difference_is_a_case() -> None:
    from conformance import DIFFERENCES

    others = {
        "stale-keep-alive-get",  # test_conformance_net.py
        "no-proxy-cidr",  # test_conformance_client.py
    }
    assert set(DIFFERENCES) - others <= set(CASES)
