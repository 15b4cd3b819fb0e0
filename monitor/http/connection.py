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
  connection is then dead. 1xx answers are skipped. A body without
  Content-Length or chunking ends at EOF.
* ``reusable``: the answer was read to its end, the server allows keep-alive
  (HTTP/1.1 without ``connection: close``), nothing extra arrived and the
  socket is still open. Bytes or EOF on an idle connection kill it.
"""

from __future__ import annotations

import asyncio
import time

import httptools
import httpx

from monitor.http.rxstamp import StampedSocket

Origin = tuple[str, str, int]  # scheme, host, port

CHUNK = 1 << 16  # the most body bytes one take() returns
MAX_HEAD_BYTES = 1 << 16  # a response head larger than this is refused
_HIGH_WATER = 1 << 18  # buffered body bytes before the socket stops being read


class Connection(asyncio.Protocol):
    """An HTTP/1.1 client connection; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: Origin) -> None:
        self.loop = loop
        self.origin = origin
        self.transport: asyncio.Transport | None = None
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
        self.begin(None)
        self._busy = False

    # -- the caller's side ------------------------------------------------

    def begin(self, read_timeout: float | None) -> None:
        """Start a new exchange: forget the previous answer."""
        self._busy = True
        self._read_timeout = read_timeout
        self.status: int | None = None
        self.version = b"HTTP/1.1"
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

    def head_only(self) -> None:
        """The request was HEAD: the answer ends with its headers (then never reused)."""
        self._head_only = True

    @property
    def reusable(self) -> bool:
        return self.done and self._keep and self.error is None and not self.closed

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
            raise self.error
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
            raise self.error

    def abort(self) -> None:
        """Drop the connection now (no reuse); idempotent."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- the loop's side --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._now = self._stamp()
        if not self._busy or self.done:  # nothing was asked: the connection is unusable
            self._keep = False
            self.abort()
            return
        self.received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._keep = False  # whatever came after the answer, the connection is spent
            if not self.done:
                why = f"invalid HTTP answer: {self._where()} ({exc})"
                self._fail(httpx.RemoteProtocolError(why), exc)
            self.abort()
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

    # -- httptools callbacks ----------------------------------------------

    def on_message_begin(self) -> None:
        if self.done:  # a second answer to one request
            self._keep = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self._head_bytes += len(name) + len(value)

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # 100 Continue, 103 Early Hints
            self._informational = True
            self.headers = []
            return
        if self._head_bytes > MAX_HEAD_BYTES:
            self._too_large()
            return
        self.status = status
        self.version = b"HTTP/" + self._parser.get_http_version().encode()
        self.headers_at = self._now
        self._keep = self._parser.should_keep_alive()
        if self._head_only:
            self._keep = False
            self._complete()

    def on_body(self, body: bytes) -> None:
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

    def _where(self) -> str:
        if self.status is None:
            return "bad status line" if not self.headers else "bad header"
        return "bad body framing"

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
            elif self._framed():
                self._fail(httpx.ReadError("connection closed mid-body"), None)
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
