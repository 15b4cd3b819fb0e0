"""A strict, incremental ``text/event-stream`` parser for hostile input.

``SseParser.feed(data, at)`` takes the body bytes as they arrive (``at``:
when they arrived, perf_counter seconds) and returns the events they
completed, each stamped with the ``at`` of the bytes that completed it.

Contract (the WHATWG "server-sent events" parsing rules, strictly):

* Lines end with CRLF, LF or CR (a CR at the end of one read and an LF at
  the start of the next are one line end). A UTF-8 BOM at the very start
  is dropped. A blank line dispatches the event: its ``data`` lines joined
  with LF, and its ``event`` field ("" when none). A blank line with no
  ``data`` line dispatches nothing (as the spec says).
* ``:`` starts a comment (gateways send them as keep-alives): ignored.
  ``id`` and ``retry`` are ignored too (a monitor never reconnects); so is
  any other field name, as the spec says.
* Bounded: a line or an event's data longer than ``max_line`` bytes is a
  protocol error, so a hostile stream cannot make the parser hold more
  than about ``max_line`` bytes whatever it sends. (The body as a whole is
  capped by the client's ``max_body_bytes``.)
* Errors are data: the first problem is kept in ``error`` (a short line,
  no gateway text), the bytes held are dropped, and every later ``feed``
  returns nothing. ``finish()``
  at the end of the body reports bytes left after the last event (a stream
  cut mid-event) as an error; it never raises.
* Field names and event types are ASCII; a non-UTF-8 field name or event
  type is an error. ``data`` stays bytes: its consumer parses it (JSON).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 256 * 1024
_BOM = b"\xef\xbb\xbf"
_EOL = re.compile(rb"\r\n|\r|\n")
_EVENT_TYPE_LIMIT = 64


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its type ("" for a plain message), data, arrival time."""

    event: str
    data: bytes
    at: float


class SseParser:
    """Incremental parser; see the module docstring."""

    __slots__ = ("_buf", "_data", "_event", "_max", "_size", "_skip_lf", "_started", "error")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max = max_line
        self._buf = bytearray()
        self._data: list[bytes] | None = None  # the current event's data lines, once one came
        self._size = 0
        self._event = ""
        self._skip_lf = False  # the last read ended with CR: an LF first is its line end
        self._started = False
        self.error: str | None = None

    def feed(self, data: bytes, at: float) -> list[SseEvent]:
        """The events completed by ``data`` (arrived at ``at``); [] after an error."""
        if self.error is not None or not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        buf = self._buf
        buf += data
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(bytes(buf)):
                return []  # too early to tell a BOM from data
            self._started = True
            if buf.startswith(_BOM):
                del buf[: len(_BOM)]
        events: list[SseEvent] = []
        start = 0
        for match in _EOL.finditer(buf):
            line = bytes(buf[start : match.start()])
            start = match.end()
            if match.group() == b"\r" and start == len(buf):
                self._skip_lf = True  # its LF may be in the next read
            event = self._line(line, at)
            if self.error is not None:
                self._drop()
                return events
            if event is not None:
                events.append(event)
        del buf[:start]
        if len(buf) > self._max:
            self.error = f"a line longer than {self._max} bytes"
            self._drop()
        return events

    def finish(self) -> None:
        """The body ended: bytes after the last complete event are an error."""
        if self.error is None and (self._buf or self._data is not None):
            self.error = "the stream ended in the middle of an event"

    def _drop(self) -> None:
        """After an error: nothing more is parsed, so nothing is kept."""
        self._buf = bytearray()  # not clear(): the line scan may still hold a view of it
        self._data = None

    @property
    def pending(self) -> bool:
        """Whether bytes of an event not yet dispatched are held."""
        return bool(self._buf) or self._data is not None

    def _line(self, line: bytes, at: float) -> SseEvent | None:
        if not line:
            return self._dispatch(at)
        if line[:1] == b":":
            return None  # a comment
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._size += len(value) + 1
            if self._size > self._max:
                self.error = f"an event's data is longer than {self._max} bytes"
                return None
            if self._data is None:
                self._data = []
            self._data.append(value)
        elif name == b"event":
            try:
                kind = value.decode("ascii")
            except UnicodeDecodeError:
                self.error = "an event type that is not ASCII"
                return None
            if len(kind) > _EVENT_TYPE_LIMIT or not kind.isprintable():
                self.error = "an event type that is too long or not printable"
                return None
            self._event = kind
        elif not name.isascii():
            self.error = "a field name that is not ASCII"
        # id, retry and unknown fields: ignored, as the spec says.
        return None

    def _dispatch(self, at: float) -> SseEvent | None:
        data, kind = self._data, self._event
        self._data, self._event, self._size = None, "", 0
        if data is None:
            return None
        return SseEvent(kind, b"\n".join(data), at)
