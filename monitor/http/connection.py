"""One HTTP/1.1 client connection: an asyncio.Protocol with httptools' parser.

Used by monitor.http.transport.Http11Transport through monitor.http.pool; nothing
here emits trace events. Contract:

* One request at a time. ``begin()`` resets the per-response state; the
  caller writes the request, then calls ``wait()`` until ``status`` is set
  (headers in) and ``take()``/``wait()`` until ``done`` (body ended).
  ``wait()`` returns after every socket read, so a read timeout is "no
  bytes for ``read_timeout`` seconds", as httpx means it.
* ``headers_at`` / ``body_at`` are the arrival stamps of the reads that
  completed the headers and the body (``_stamp``, the one place a stamp is
  taken), not when the waiting coroutine resumed.
* Failures are stored once as an httpx exception chained (``from``) to the
  root cause (ConnectionResetError...) and raised by ``wait()``; the
  connection is then dead. Parse errors are worded by where they happened
  (``bad status line``, ``bad header line N``, ``bad body (...chunk size)``).
  1xx answers are skipped. A body without Content-Length or chunking ends at
  EOF. Trailer fields are dropped; ``reason`` is the reason phrase as sent.
* Heads are parsed by llhttp (httptools); one it refuses is read again by
  h11's rules (monitor.http.head), which accept what RFC 9112 tells a client
  to accept (obs-fold, bare LF, identical duplicate Content-Length); only
  such answers pay for the Python parser.
* ``reusable``: the answer was read to its end, the server allows keep-alive
  (HTTP/1.1 without ``connection: close``), nothing extra arrived and the
  socket is still open. Bytes or EOF on an idle connection kill it. A HEAD
  answer ends with its head and leaves the connection reusable (the next
  exchange gets a fresh parser, since llhttp cannot be told to skip a body).
* A closed connection is freed by reference counting alone: the parser
  holds the connection's bound methods (a cycle), so ``connection_lost``
  swaps it for an inert one; ``wait()`` raises a copy of the stored
  failure, never the stored one (its traceback would hold the connection);
  the socket's transport drops its own cycle (``_release_transport``).
  Left to the cyclic collector, closed connections stayed in memory once
  the daemon froze its heap (monitor.daemon.runtime): ~110 a minute,
  0.7 MB, at 10,000 models with chat every 5 minutes, where idle
  connections keep expiring (benchmarks/scale.py).
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import NoReturn

import httptools
import httpx

from monitor.http.head import HeadError, HeadReader, persistent
from monitor.http.rxstamp import StampedSocket

Origin = tuple[str, str, int]  # scheme, host, port

CHUNK = 1 << 16  # the most body bytes one take() returns
# A response head larger than this is refused: httpcore's limit (h11's
# max_incomplete_event_size), so both transports refuse the same heads.
MAX_HEAD_BYTES = 100 * 1024
_HIGH_WATER = 1 << 18  # buffered body bytes before the socket stops being read
# What a closed connection holds instead of its parser: no callbacks, never fed
# (asyncio calls no protocol method after connection_lost).
_SPENT = httptools.HttpResponseParser(object())


def _release_transport(transport: asyncio.BaseTransport | None) -> None:
    """Break the cycle a closed selector transport keeps on CPython 3.11.

    ``_SelectorSocketTransport`` holds its own bound method in
    ``_read_ready_cb`` and clears it in ``close()`` only from 3.12 on
    (CPython gh-100348), never in ``abort()``: the transport, its socket and
    buffers then wait for the cyclic collector. Called from
    ``connection_lost`` (for TLS, with the socket's transport under the TLS
    layer), when asyncio will not read from it again.
    """
    if getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None  # type: ignore[union-attr]


class Connection(asyncio.Protocol):
    """An HTTP/1.1 client connection; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: Origin) -> None:
        self.loop = loop
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        # The socket's own transport: ``transport`` until a TLS layer replaces it.
        self._socket_transport: asyncio.BaseTransport | None = None
        self.error: httpx.HTTPError | None = None  # set once: the connection is dead
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._busy = False
        self._now = 0.0  # arrival stamp of the read being parsed
        self.sock: StampedSocket | None = None  # set by the opener when it made one
        self._waiter: asyncio.Future[None] | None = None
        self._read_timeout: float | None = None
        self._paused = False
        self._spent_parser = False
        self._head_reads: list[bytes] = []
        self.begin(None)
        self._busy = False

    # -- the caller's side ------------------------------------------------

    def begin(self, read_timeout: float | None) -> None:
        """Start a new exchange: forget the previous answer."""
        if self._spent_parser:  # the last answer was HEAD's: llhttp still expects its body
            self._parser = httptools.HttpResponseParser(self)
            self._spent_parser = False
        self._busy = True
        self._read_timeout = read_timeout
        self.status: int | None = None
        self.version = b"HTTP/1.1"
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_at: float | None = None
        self.body_at: float | None = None
        self.done = False
        self.received = 0  # bytes read for this exchange
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._keep = False
        self._informational = False
        self._head_only = False
        self._head_bytes = 0
        if self._head_reads:  # the reads of a head in parts, kept until it was in
            self._head_reads = []
        self._slow: HeadReader | None = None  # set once llhttp refused the head

    def head_only(self) -> None:
        """The request was HEAD: the answer ends with its headers."""
        self._head_only = True

    @property
    def reusable(self) -> bool:
        return self.done and self._keep and self.error is None and not self.closed

    @property
    def read_at(self) -> float | None:
        """Arrival stamp of the newest socket read of this exchange (see ``_stamp``)."""
        return self._now or None

    def take(self) -> bytes:
        """Up to 64 KiB of the body bytes read and not yet taken (b"" if none)."""
        chunks = self._chunks
        if not chunks:
            return b""
        if self._buffered <= CHUNK:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = []
        else:  # a large read: hand it out in slices, like a socket read would
            whole = b"".join(chunks)
            data = whole[:CHUNK]
            self._chunks = [whole[CHUNK:]]
        self._buffered -= len(data)
        if self._paused and self._buffered < _HIGH_WATER and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def wait(self) -> None:
        """Until the next socket read, end or failure; raises the failure."""
        if self.error is not None:
            self._raise_error()
        waiter = self._waiter = self.loop.create_future()
        timer = None
        if self._read_timeout is not None:
            timer = self.loop.call_later(self._read_timeout, self._timed_out)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if self.error is not None:
            self._raise_error()

    def _raise_error(self) -> NoReturn:
        """Raise a copy of ``error`` (same class, message and cause): a raised
        exception keeps its frames, whose ``self`` is this connection, so raising
        the stored one would tie the connection into a cycle with its error."""
        error = self.error
        assert error is not None
        raise copy.copy(error) from error.__cause__

    def abort(self) -> None:
        """Drop the connection now (no reuse); idempotent."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- the loop's side --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._socket_transport = transport

    def data_received(self, data: bytes) -> None:
        self._now = self._stamp()
        if not self._busy or self.done:  # nothing was asked: the connection is unusable
            self._keep = False
            self.abort()
            return
        self.received += len(data)
        if self._slow is None:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserError as exc:
                self._refused(exc, data)
            else:
                if self.status is None:  # a head in several reads: kept, should llhttp refuse it
                    self._head_reads.append(data)
                elif self._head_reads:
                    # Dropped at once: a socket read's bytes kept alive past data_received
                    # cost ~10 µs more to free (measured, benchmarks/transport_cpu.py).
                    self._head_reads = []
        else:
            self._read_slowly(data)
        if self.status is None and self.received > MAX_HEAD_BYTES:
            self._too_large()  # a head that never ends
        if self.error is not None:
            self.abort()
        self._wake()

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)
        self.closed = True
        self._parser = _SPENT  # breaks the parser's cycle (see the module docstring)
        _release_transport(self._socket_transport)

    # -- httptools callbacks ----------------------------------------------

    def on_message_begin(self) -> None:
        if self.done:  # a second answer to one request
            self._keep = False
        else:  # the final answer, or a 1xx before it
            self.reason = b""

    def on_status(self, reason: bytes) -> None:
        if self.status is None:  # llhttp hands a span split across reads in parts
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.status is None:  # else a trailer field: dropped, as h11 drops it
            # llhttp keeps trailing whitespace in a value; h11 (and RFC 9112's OWS) do not.
            self.headers.append((name, value.rstrip(b" \t")))
            self._head_bytes += len(name) + len(value)

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # 100 Continue, 103 Early Hints
            self._informational = True
            self.headers = []
            self._head_bytes = 0
            return
        if self._head_bytes > MAX_HEAD_BYTES:
            self._too_large()
            return
        self.status = status
        self.version = b"HTTP/" + self._parser.get_http_version().encode()
        self.headers_at = self._now
        self._keep = self._parser.should_keep_alive()
        if self._head_only:
            # llhttp reads a HEAD answer's announced body (or waits for EOF):
            # the answer ends here, and the next exchange needs a new parser.
            self._spent_parser = True
            self._keep = self._keep or persistent(self.version, self.headers)
            self._complete()

    def on_body(self, body: bytes) -> None:
        if self.done:  # bytes after a HEAD answer: the server broke the framing
            self._keep = False
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True  # the reader is behind: let TCP push back
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self._complete()

    # -- internals --------------------------------------------------------

    def _stamp(self) -> float:
        """When the bytes being handled arrived: the kernel's receive stamp, else now.

        asyncio calls ``data_received`` right after the socket read, and the
        read set ``rx_at`` (monitor.http.rxstamp); a read without a stamp (EOF,
        another OS) falls back to the time of the read.
        """
        sock = self.sock
        at = None if sock is None else sock.rx_at
        return time.perf_counter() if at is None else at

    def _complete(self) -> None:
        if not self.done:
            self.done = True
            self.body_at = self._now

    def _refused(self, exc: httptools.HttpParserError, data: bytes) -> None:
        """llhttp refused ``data``: a head is read again by h11's rules, a body fails."""
        if self.status is None and self._slow is None:
            self._slow = HeadReader()
            reads, self._head_reads = self._head_reads, []
            reads.append(data)
            self._read_slowly(b"".join(reads))
            return
        self._keep = False  # whatever came after the answer, the connection is spent
        if not self.done:
            where = "bad status line" if self.status is None else "bad body"
            why = f"invalid HTTP answer: {where} ({exc})"
            self._fail(httpx.RemoteProtocolError(why), exc)
        self.abort()

    def _read_slowly(self, data: bytes) -> None:
        """The head by h11's rules (monitor.http.head); llhttp then reads the body."""
        assert self._slow is not None
        try:
            head = self._slow.feed(data)
        except HeadError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP answer: {exc}"), exc)
            return
        if head is None:
            return
        self._slow = None
        self._parser = httptools.HttpResponseParser(self)
        try:  # sets status, version and keep-alive through the usual callbacks
            self._parser.feed_data(head.framing)
        except httptools.HttpParserError as exc:  # an HTTP version llhttp does not speak
            self._fail(
                httpx.RemoteProtocolError(f"invalid HTTP answer: bad status line ({exc})"), exc
            )
            return
        self.headers, self.reason = head.headers, head.reason
        self._keep = self._keep and head.reusable
        if head.rest and self.error is None:
            try:
                self._parser.feed_data(head.rest)
            except httptools.HttpParserError as exc:
                self._refused(exc, head.rest)  # the head is in: a body error

    def _too_large(self) -> None:
        why = f"invalid HTTP answer: response head over {MAX_HEAD_BYTES} bytes"
        self._fail(httpx.RemoteProtocolError(why), None)

    def _fail(self, error: httpx.HTTPError, cause: BaseException | None) -> None:
        if self.error is None:
            error.__cause__ = cause
            self.error = error
            self._keep = False

    def _ended(self, exc: Exception | None) -> None:
        """EOF or a lost connection: the end of a read-until-close body, or a failure."""
        self._keep = False
        if self._busy and not self.done and self.error is None:
            if isinstance(exc, ConnectionResetError):
                self._fail(httpx.ReadError("connection reset by peer"), exc)
            elif exc is not None:
                self._fail(httpx.ReadError(f"connection lost: {exc}"), exc)
            elif self.status is None:
                why = "server disconnected without sending a response"
                self._fail(httpx.RemoteProtocolError(why), None)
            elif self._framed():  # h11's word for it: a protocol error, not a network one
                why = "server closed the connection mid-body (before its announced end)"
                self._fail(httpx.RemoteProtocolError(why), None)
            else:  # no length, no chunking: the body ran until this EOF
                self._now = self._stamp()
                self._complete()
        self._wake()

    def _framed(self) -> bool:
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length" or (
                lower == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                return True
        return False

    def _timed_out(self) -> None:
        self._fail(httpx.ReadTimeout("timed out reading from the server"), None)
        self.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
