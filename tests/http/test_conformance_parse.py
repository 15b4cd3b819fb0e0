"""Http11Transport's response parser against h11 as the oracle, on generated answers.

Hypothesis builds answers from RFC 9112's grammar with the leniencies a
client must accept (obs-fold, bare LF, optional whitespace, identical
duplicate Content-Length, ``n, n``, chunk extensions, trailers) and some
refusals (a space in a name, NUL or a bare CR in a value, conflicting
lengths), then splits them into reads at arbitrary points. The
Connection (llhttp first, monitor.http.head where llhttp refuses) must yield
exactly what h11 (httpx's default transport) yields, or refuse what h11
refuses, whatever the read boundaries.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.http.connection import Connection

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VCHARS = [chr(c) for c in range(0x21, 0x7F)] + ["\x01", "\x7f", "\x80", "\xe9"]
Parsed = tuple[int, bytes, list[tuple[bytes, bytes]], bytes] | str


class _Transport:
    """What Connection calls on its transport, doing nothing."""

    def write(self, data: bytes) -> None: ...
    def abort(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


def ours(reads: list[bytes]) -> Parsed:
    conn = Connection(asyncio.new_event_loop(), ("http", "h", 80))
    conn.transport = _Transport()  # type: ignore[assignment]
    conn.begin(None)
    try:
        for data in reads:
            conn.data_received(data)
            if conn.error is not None:
                return "error"
    finally:
        conn.loop.close()
    if not conn.done or conn.status is None:
        return "incomplete"
    body = b""
    while chunk := conn.take():
        body += chunk
    return conn.status, conn.reason, conn.headers, body


def h11_reads(data: bytes) -> Parsed:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "h")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    status, reason, headers, body = 0, b"", [], b""
    while True:
        try:
            event: Any = conn.next_event()
        except h11.RemoteProtocolError:
            return "error"
        if event is h11.NEED_DATA:
            return "incomplete"
        if isinstance(event, h11.Response):
            status, reason, headers = event.status_code, event.reason, event.headers.raw_items()
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, reason, list(headers), body


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    """One framed answer (optionally after a 1xx), line ends and whitespace drawn."""

    def eol() -> str:
        return draw(st.sampled_from(["\r\n", "\r\n", "\n"]))

    def ows() -> str:
        return draw(st.sampled_from(["", " ", "  ", "\t"]))

    body = draw(st.binary(max_size=40))
    status = draw(st.sampled_from([200, 201, 299, 404, 500]))
    reason = draw(st.text(st.sampled_from([*VCHARS, " ", "\t"]), max_size=10))
    text = ""
    if draw(st.booleans()):
        text += f"HTTP/1.1 103 Early{eol()}Link: </a>{eol()}{eol()}"
    text += f"HTTP/1.1 {status} {reason}{eol()}"
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.text(st.sampled_from(TCHARS), min_size=1, max_size=6))
        words = draw(st.lists(st.text(st.sampled_from(VCHARS), min_size=1, max_size=5), max_size=3))
        if words and draw(st.booleans()):  # obs-fold before the last word
            value = " ".join(words[:-1]) + ows() + eol() + draw(st.sampled_from([" ", "\t"]))
            value += words[-1]
        else:
            value = " ".join(words)
        text += f"X-{name}:{ows()}{value}{ows()}{eol()}"
    broken = draw(st.sampled_from([None, None, None, None, "X A: b", "X: a\x00b", "X: a\rb"]))
    if broken:
        text += broken + eol()
    if draw(st.booleans()):
        length = str(len(body))
        for field in draw(st.sampled_from([[length], [length, length], [f"{length}, {length}"]])):
            text += f"Content-Length: {field}{eol()}"
        if draw(st.integers(0, 9)) == 0:
            text += f"Content-Length: {len(body) + 1}{eol()}"  # conflicting
        return (text + eol()).encode("latin-1") + body
    text += f"Transfer-Encoding: chunked{eol()}{eol()}"
    data, rest = text.encode("latin-1"), body
    while rest:
        size = draw(st.integers(1, len(rest)))
        extension = draw(st.sampled_from(["", ";a=b", ";x"]))
        data += f"{size:x}{extension}\r\n".encode() + rest[:size] + b"\r\n"
        rest = rest[size:]
    trailer = draw(st.sampled_from(["", "Content-Encoding: gzip\r\n", "X-Sum: 1\r\n"]))
    return data + b"0\r\n" + trailer.encode() + b"\r\n"


@settings(max_examples=300, deadline=None)
@given(answer=answers(), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_any_answer_in_any_reads_parses_as_h11_parses_it(answer: bytes, cuts: list[int]) -> None:
    points = sorted({cut % (len(answer) + 1) for cut in cuts} | {0, len(answer)})
    reads = [answer[a:b] for a, b in itertools.pairwise(points) if b > a]
    expected = h11_reads(answer)
    assert ours([answer]) == expected
    assert ours(reads) == expected
