"""An answer's body as GatewayClient reads it: capped, decoded, parsed, or streamed.

Contract:

* ``read_body`` reads the raw stream (no httpx decoder or chunker layers):
  ``max_body_bytes`` bounds the raw bytes and, through
  monitor.gateway.decoding.CappedDecoder, what they decode to; past it,
  ``TooLarge``. A 2xx ``text/event-stream`` answer of ``stream_chat()`` goes
  to its ``StreamSink`` piece by piece, each piece stamped with its arrival
  (the transport's kernel receive stamp where it has one); any other body is
  collected in ``Received.body``.
* ``parse_body`` turns a collected body into JSON or a parse error line: the
  API key is removed from the bytes before parsing, and every parsed string
  passes monitor.untrusted.clean_json unless the bytes cannot hold an escaped
  key or a lone surrogate (``plain``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from monitor.gateway.decoding import CappedDecoder, TooLarge
from monitor.gateway.headers import REDACTED, one_line
from monitor.http.timing import BODY_END, PhaseClock
from monitor.http.tlsinfo import TlsInfo
from monitor.untrusted import clean_json

EVENT_STREAM = "text/event-stream"


class StreamSink(Protocol):
    """Takes a streamed body (``GatewayClient.stream_chat``) as it arrives."""

    def begin(self, sent_at: float | None) -> None:
        """The answer is a 2xx event stream; ``sent_at``: when the request began going
        out (perf_counter), None when the transport did not say."""

    def feed(self, data: bytes, at: float) -> bool:
        """Body bytes that arrived at ``at``; True stops reading (the rest is not wanted)."""
        ...

    def end(self) -> None:
        """The body ended (not called when reading stopped or failed)."""


@dataclass(slots=True)
class Received:
    """What arrived before the exchange ended, however it ended.

    ``headers`` holds only the headers nexomon reads (see headers.read_headers).
    """

    status: int | None = None
    headers: dict[str, str] | None = None
    body: bytearray = field(default_factory=bytearray)
    read_tls: bool = False  # list_models() only: chat exchanges never pay for it
    tls: TlsInfo | None = None
    sink: StreamSink | None = None  # stream_chat() only
    streamed: bool = False  # the body went to the sink


async def read_body(
    response: httpx.Response, got: Received, max_body_bytes: int, clock: PhaseClock
) -> None:
    """Read ``response``'s body into ``got`` (or its sink); see the module contract."""
    # An encoded body is inflated here in capped slices, because httpx
    # inflates each chunk whole before its size can be checked.
    encodings = response.headers.get_list("content-encoding")
    decoder = CappedDecoder(encodings, max_body_bytes) if encodings else None
    received = 0  # raw bytes: the cap bounds them too, whatever they decode to
    sink = got.sink if event_stream(got) else None
    if sink is not None:
        got.streamed = True
        sink.begin(clock.request_sent_at())
    async for chunk in response.stream:  # type: ignore[union-attr]
        received += len(chunk)
        if received > max_body_bytes:
            raise TooLarge
        data = chunk if decoder is None else decoder.feed(chunk)
        if sink is None:
            got.body += data
        elif sink.feed(data, arrival(response)):
            clock.mark(BODY_END)  # the end of what was wanted
            return
    if decoder is not None:
        data = decoder.finish()
        if sink is None:
            got.body += data
        elif data and sink.feed(data, time.perf_counter()):
            clock.mark(BODY_END)
            return
    clock.mark(BODY_END)
    if sink is not None:
        sink.end()


def event_stream(got: Received) -> bool:
    """A stream_chat() answer whose body goes to the sink: 2xx text/event-stream."""
    if got.sink is None or got.status is None or not 200 <= got.status < 300:
        return False
    ctype = (got.headers or {}).get("content-type", "")
    return ctype.split(";")[0].strip().lower() == EVENT_STREAM


def arrival(response: httpx.Response) -> float:
    """When the body bytes just read arrived: the transport's stamp, else now."""
    at = getattr(response.stream, "received_at", None)
    return at if isinstance(at, float) else time.perf_counter()


def parse_body(raw: bytes, content_type: str | None, api_key: str) -> tuple[Any, str | None]:
    """(the parsed JSON, None) or (None, why it is not JSON); see the module contract."""
    if not raw.strip():
        return None, "empty body"
    if api_key:
        raw = raw.replace(api_key.encode(), REDACTED.encode())
    try:
        body = json.loads(raw)
    except RecursionError:
        return None, "malformed JSON: nested too deeply"
    except (ValueError, UnicodeDecodeError) as exc:
        if content_type is None or "json" not in content_type:
            return None, f"body is not JSON ({content_type or 'no content-type'})"
        return None, one_line(f"malformed JSON: {exc}", 160)
    # The byte replace above misses an escaped echo of the key ("\/",
    # "\u0073", "%2F") and json.loads lets lone surrogates through. Both
    # need a backslash, "%", "&" or non-ASCII bytes (UTF-16/32 has NULs),
    # so a plain ASCII body, the usual one, skips the walk over its strings.
    if not plain(raw):
        body = clean_json(body, api_key)
    return body, None


def plain(raw: bytes) -> bool:
    """No string parsed from ``raw`` can hold an escaped key or a lone surrogate."""
    return (
        raw.isascii()
        and b"\\" not in raw
        and b"%" not in raw
        and b"&" not in raw
        and b"\x00" not in raw
    )
