"""How each scripted fault reaches the wire.

``render`` sends one answer for a request that drew a fault, given the
answer it would otherwise have sent (``payload``). Observable effects:

    hang            no answer at all; the connection stays open until the client leaves
    reset           200 with the full Content-Length, part of the body, then the
                    connection is aborted (the client sees a protocol/read error)
    server_error    the fault's 5xx status with an OpenAI error body
    malformed_json  200, application/json, a truncated (unparseable) body
    html_200        200 text/html: a proxy's maintenance page
    missing_usage   200, the payload without ``usage``
    error_in_200    200 with an ``error`` object instead of a completion
    empty_choices   200, the payload with ``choices: []``
    slow_drip       the normal body, one byte every ``interval_s``
    oversized       200, a valid JSON body of ``size_bytes``, streamed in chunks

Streaming faults stop early once the client has gone, so an abandoned
request does not keep the server busy.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from monitor.simulator.payloads import dumps, error_body
from monitor.simulator.scenario import Fault

Headers = list[tuple[bytes, bytes]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

JSON = b"application/json"
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>503 Service Temporarily Unavailable</title></head>"
    b"<body><h1>We'll be right back</h1><p>The gateway is under maintenance.</p></body></html>\n"
)
CHUNK = 64 * 1024
_PAD = b"a" * CHUNK
ERROR_STATUSES = (500, 502, 503)
# What each FAULT_KINDS entry does on the wire, one line each (nexomon simulate --help).
FAULT_EFFECTS = {
    "hang": "no answer; the connection stays open until the client leaves",
    "reset": "200 with the full Content-Length, part of the body, then an abort",
    "server_error": "the fault's 5xx `status` with an OpenAI error body",
    "malformed_json": "200 application/json with a truncated body",
    "html_200": "200 text/html: a proxy's maintenance page",
    "missing_usage": "200, the completion without `usage` (chat only)",
    "error_in_200": "200 with an `error` object instead of a result",
    "empty_choices": "200, the completion with `choices: []` (chat only)",
    "slow_drip": "the normal body, one byte every `interval_s`",
    "oversized": "200, a valid JSON body of `size_bytes`, streamed in chunks",
    "stream_stall": "streams only: half the tokens, then silence until the client leaves",
    "stream_no_done": "streams only: every chunk and usage, then the end without [DONE]",
}


class SimulatedReset(Exception):
    """Raised after a partial body: the ASGI server then aborts the connection."""


async def send_response(
    send: Send, status: int, headers: Headers, body: bytes, content_type: bytes = JSON
) -> None:
    """A complete response with Content-Length."""
    await _start(send, status, headers, len(body), content_type)
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(send: Send, status: int, headers: Headers, message: str, code: str) -> None:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    await send_response(send, status, headers, dumps(error_body(message, kind, code)))


async def render(
    fault: Fault,
    payload: dict[str, Any],
    *,
    send: Send,
    receive: Receive,
    headers: Headers,
) -> int | None:
    """Answer with ``fault`` applied; returns the status sent (None for hang)."""
    kind = fault.kind
    if kind == "hang":
        await _until_disconnect(receive)
        return None
    if kind == "server_error":
        await send_error(send, fault.status, headers, "simulated upstream failure", "server_error")
        return fault.status
    if kind == "error_in_200":
        body = error_body("upstream provider error", "upstream_error", "upstream_error")
        await send_response(send, 200, headers, dumps(body))
    elif kind == "html_200":
        await send_response(send, 200, headers, HTML_PAGE, b"text/html; charset=utf-8")
    elif kind == "malformed_json":
        body = dumps(payload)
        await send_response(send, 200, headers, body[: max(1, len(body) // 2)])
    elif kind == "missing_usage":
        await send_response(send, 200, headers, dumps(_without(payload, "usage")))
    elif kind == "empty_choices":
        await send_response(send, 200, headers, dumps({**payload, "choices": []}))
    elif kind == "reset":
        await _reset(send, headers, dumps(payload))
    elif kind == "slow_drip":
        await _slow_drip(send, receive, headers, dumps(payload), fault.interval_s)
    elif kind == "oversized":
        await _oversized(send, receive, headers, fault.size_bytes)
    else:  # pragma: no cover - the scenario parser only admits FAULT_KINDS
        raise ValueError(f"unknown fault kind {kind!r}")
    return 200


async def random_server_error(send: Send, headers: Headers, rng: random.Random) -> int:
    """The ``error_rate`` answer: 500, 502 or 503."""
    status = rng.choice(ERROR_STATUSES)
    await send_error(send, status, headers, "simulated upstream failure", "server_error")
    return status


def _without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


async def _start(send: Send, status: int, headers: Headers, length: int, ctype: bytes) -> None:
    all_headers = [*headers, (b"content-type", ctype), (b"content-length", str(length).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _reset(send: Send, headers: Headers, body: bytes) -> None:
    await _start(send, 200, headers, len(body), JSON)
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    # Let the partial body reach the socket before the abort.
    await asyncio.sleep(0.01)
    raise SimulatedReset("simulated connection reset")


class _Watch:
    """Notices the client leaving while we are still sending."""

    def __init__(self, receive: Receive) -> None:
        self._task = asyncio.ensure_future(_until_disconnect(receive))

    @property
    def gone(self) -> bool:
        return self._task.done()

    def close(self) -> None:
        self._task.cancel()


async def _slow_drip(
    send: Send, receive: Receive, headers: Headers, body: bytes, interval_s: float
) -> None:
    await _start(send, 200, headers, len(body), JSON)
    watch = _Watch(receive)
    try:
        for i in range(len(body)):
            if watch.gone:
                return
            last = i == len(body) - 1
            await send(
                {"type": "http.response.body", "body": body[i : i + 1], "more_body": not last}
            )
            if not last:
                await asyncio.sleep(interval_s)
    finally:
        watch.close()


async def _oversized(send: Send, receive: Receive, headers: Headers, size: int) -> None:
    prefix, suffix = b'{"object":"chat.completion","padding":"', b'"}'
    left = size - len(prefix) - len(suffix)
    await _start(send, 200, headers, size, JSON)
    watch = _Watch(receive)
    try:
        await send({"type": "http.response.body", "body": prefix, "more_body": True})
        while left > 0:
            if watch.gone:
                return
            n = min(left, CHUNK)
            await send({"type": "http.response.body", "body": _PAD[:n], "more_body": True})
            left -= n
        await send({"type": "http.response.body", "body": suffix, "more_body": False})
    finally:
        watch.close()
