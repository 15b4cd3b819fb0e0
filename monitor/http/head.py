"""Response heads by h11's rules: the slow path of monitor.http.connection.

httptools (llhttp) parses every answer first, in C. It is stricter than
RFC 9112 asks a client to be: it refuses obsolete line folding, bare LF line
ends, identical duplicate ``Content-Length`` fields and ``Content-Length: 5, 5``,
control characters h11 lets through, and ``Transfer-Encoding`` with
``Content-Length``. When it refuses a head, the connection hands the bytes of
the exchange to a ``HeadReader``, which reads them with h11's grammar (the
regexes of ``h11._abnf``, what httpx's default transport accepts) and words
each refusal by where it happened: ``bad status line``, ``bad header line N``,
``bad Content-Length``. Conforming answers never come here, so the common
path keeps llhttp's speed.

Contract of ``HeadReader.feed(data)``: None while the final head is
incomplete; a ``Head`` once it is in (1xx heads before it are skipped, 101
included as final, as on the fast path); ``HeadError`` on the first bytes
that cannot become a valid head (a status line is checked as soon as its
line is complete, so a non-HTTP peer fails at once).

A ``Head`` carries what the response shows (status, reason phrase, headers as
h11 yields them: folded lines joined by a space, identical ``Content-Length``
fields merged into one) and ``framing``: a minimal, valid head (status line
and the framing fields only) that the connection feeds to a fresh llhttp
parser, followed by ``rest``, so llhttp still reads the body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from h11._abnf import header_field, status_line

_STATUS_LINE = re.compile(status_line.encode("ascii"))
_HEADER_FIELD = re.compile(header_field.encode("ascii"))
_FOLD = re.compile(rb"[ \t]+")
_HEAD_END = re.compile(rb"\n\r?\n")  # h11's blank line: LF, optional CR, LF
_DIGITS = re.compile(rb"[0-9]{1,20}")  # h11's CONTENT_LENGTH_MAX_DIGITS


class HeadError(ValueError):
    """A response head that h11's rules refuse; the message says where."""


@dataclass(frozen=True, slots=True)
class Head:
    """A final response head read by h11's rules; see the module docstring."""

    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    framing: bytes  # status line and framing fields, for a fresh llhttp parser
    rest: bytes  # what followed the head (body, or more)
    reusable: bool  # False after Transfer-Encoding with Content-Length (RFC 9112 6.3)


class HeadReader:
    """Accumulates an exchange's bytes until a final head is complete."""

    __slots__ = ("_buf", "_scanned", "_status_checked")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scanned = 0  # where the search for the blank line resumes
        self._status_checked = False

    def feed(self, data: bytes) -> Head | None:
        """Add ``data``; the final head once complete, else None. Raises HeadError."""
        self._buf += data
        while True:
            buf = self._buf
            if not self._status_checked:
                if not b"HTTP/".startswith(bytes(buf[:5])):  # not HTTP: no need to wait
                    raise HeadError("bad status line (not HTTP/x.y NNN reason)")
                eol = buf.find(b"\n")
                if eol >= 0:
                    _status(bytes(buf[:eol]).removesuffix(b"\r"))
                    self._status_checked = True
            end = _HEAD_END.search(buf, max(self._scanned - 2, 0))
            if end is None:
                self._scanned = len(buf)
                return None
            head = _parse(bytes(buf[: end.start() + 1]), bytes(buf[end.end() :]))
            if not 100 <= head.status < 200 or head.status == 101:
                return head
            # An informational answer (100 Continue, 103 Early Hints): skip it.
            del buf[: end.end()]
            self._scanned = 0
            self._status_checked = False


def _status(line: bytes) -> tuple[int, bytes, bytes]:
    """(status, reason, version) of a status line, or HeadError."""
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        raise HeadError("bad status line (not HTTP/x.y NNN reason)")
    reason = match["reason"] or b""
    return int(match["status_code"]), reason, match["http_version"]


def _lines(head: bytes) -> list[bytes]:
    """The head's lines, CR before LF dropped as h11 drops it."""
    return [line.removesuffix(b"\r") for line in head.split(b"\n")[:-1]]


def _unfolded(lines: list[bytes]) -> list[tuple[int, bytes]]:
    """(line number, field line) with obs-fold continuations joined by one space."""
    fields: list[tuple[int, bytes]] = []
    for number, line in enumerate(lines, start=1):
        fold = _FOLD.match(line)
        if fold is None:
            fields.append((number, line))
        elif not fields:
            raise HeadError(f"bad header line {number} (continuation line at the start)")
        else:
            first, text = fields[-1]
            fields[-1] = (first, text + b" " + line[fold.end() :])
    return fields


def _parse(head: bytes, rest: bytes) -> Head:
    """One complete head (its lines up to the blank line) and what followed it."""
    lines = _lines(head)
    status, reason, version = _status(lines[0])
    headers: list[tuple[bytes, bytes]] = []
    length: bytes | None = None
    codings: list[bytes] = []
    tokens: list[bytes] = []
    for number, line in _unfolded(lines[1:]):
        match = _HEADER_FIELD.fullmatch(line)
        if match is None:
            raise HeadError(f"bad header line {number} (not name: value)")
        name, value = match["field_name"], match["field_value"]
        lower = name.lower()
        if lower == b"content-length":
            value = _content_length(value, number)
            if length is not None:
                if value != length:
                    raise HeadError(f"bad header line {number} (conflicting Content-Length)")
                continue  # an identical duplicate: one field, as h11 keeps it
            length = value
        elif lower == b"transfer-encoding":
            codings += [c.strip().lower() for c in value.split(b",")]
        elif lower == b"connection":
            tokens += [t.strip().lower() for t in value.split(b",")]
        headers.append((name, value))
    framing = [b"HTTP/%s %d -\r\n" % (version, status)]
    if codings:  # RFC 9112 6.1: chunked last means chunked; else until close
        final = b"chunked" if codings[-1] == b"chunked" else b"identity"
        framing.append(b"transfer-encoding: " + final + b"\r\n")
    elif length is not None:
        framing.append(b"content-length: " + length + b"\r\n")
    kept = [t for t in tokens if t in (b"close", b"keep-alive")]
    if kept:
        framing.append(b"connection: " + b", ".join(kept) + b"\r\n")
    framing.append(b"\r\n")
    reusable = not (codings and length is not None)
    return Head(status, reason, headers, b"".join(framing), rest, reusable)


def _content_length(value: bytes, number: int) -> bytes:
    """``5`` from ``5`` or ``5, 5`` (RFC 9112 6.3: identical values are one)."""
    values = {v.strip() for v in value.split(b",")}
    if len(values) != 1:
        raise HeadError(f"bad header line {number} (conflicting Content-Length)")
    only = values.pop()
    if _DIGITS.fullmatch(only) is None:
        raise HeadError(f"bad header line {number} (bad Content-Length)")
    return only


def persistent(version: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    """Keep-alive by version and ``Connection`` alone (for an answer without a body)."""
    values = b",".join(v for n, v in headers if n.lower() == b"connection")
    tokens = {token.strip() for token in values.lower().split(b",")}
    if version == b"HTTP/1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens
