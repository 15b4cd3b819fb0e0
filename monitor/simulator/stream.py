"""Serving ``stream: true``: an OpenAI-style SSE stream of ``chat.completion.chunk`` events.

For a model with a ``stream`` spec (monitor.simulator.streamspec). On the
wire (``text/event-stream``, chunked, no Content-Length)::

    data: {..., "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, ...}]}
    data: {..., "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": null}]}
    ...                                    one chunk per token
    data: {..., "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    data: {..., "choices": [], "usage": {...}}        only with include_usage
    data: [DONE]

Timing: the headers and the role-only chunk go out at once; token ``i``
(from 0) is sent ``ttft + i / tokens_per_s`` seconds after the request was
accepted, on absolute times of the loop's clock, so the overshoot of one
sleep does not carry into the next. The usage counts are those of a plain
chat answer (monitor.simulator.tokens): one chunk per completion token.

Faults that act on a stream (the others answer as for a plain chat, before
any stream: monitor.simulator.faults.render):

    reset           half the tokens, then the connection is aborted
    malformed_json  half the tokens, then a chunk cut inside its JSON, then the rest
    missing_usage   no usage chunk, even with include_usage
    error_in_200    half the tokens, then ``data: {"error": {"code": 502, ...}}``; the body ends
    empty_choices   every chunk with ``choices: []``
    stream_stall    half the tokens, then silence until the client leaves
    stream_no_done  every chunk and the usage, then the body ends without ``[DONE]``

A client that leaves stops the stream.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

from monitor.simulator import tokens
from monitor.simulator.faults import Headers, Receive, Send, SimulatedReset
from monitor.simulator.payloads import ChatRequest
from monitor.simulator.scenario import Fault
from monitor.simulator.streamspec import StreamSpec

EVENT_STREAM = b"text/event-stream"
STREAM_FAULTS = frozenset(
    {
        "reset",
        "malformed_json",
        "missing_usage",
        "error_in_200",
        "empty_choices",
        "stream_stall",
        "stream_no_done",
    }
)
_CUT_SHORT = frozenset({"reset", "malformed_json", "error_in_200", "stream_stall"})
DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class StreamPlan:
    """One stream to serve: what it says and how fast."""

    request: ChatRequest
    spec: StreamSpec
    reply: str
    completion_id: str
    created: int
    model: str  # the model the chunks name (answer_as, else the requested one)


def pieces(content: str) -> list[str]:
    """``content`` cut into one piece per token (monitor.simulator.tokens' rule),
    whitespace kept with the token after it, so the pieces join to ``content``."""
    ends = [m.end() for m in tokens.TOKEN_RE.finditer(content)]
    out, start = [], 0
    for end in ends:
        out.append(content[start:end])
        start = end
    if out and start < len(content):
        out[-1] += content[start:]
    return out


def event(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class _Chunks:
    """Builds the chunk events of one plan."""

    def __init__(self, plan: StreamPlan, empty_choices: bool) -> None:
        self.plan = plan
        self.empty = empty_choices

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        plan = self.plan
        choices = (
            [] if self.empty else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        )
        payload: dict[str, Any] = {
            "id": plan.completion_id,
            "object": "chat.completion.chunk",
            "created": plan.created,
            "model": plan.model,
            "choices": choices,
        }
        if plan.request.include_usage:
            payload["usage"] = None  # as OpenAI: null until the usage chunk
        return event(payload)

    def usage(self, prompt: int, completion: int) -> bytes:
        plan = self.plan
        return event(
            {
                "id": plan.completion_id,
                "object": "chat.completion.chunk",
                "created": plan.created,
                "model": plan.model,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )


async def serve(
    plan: StreamPlan,
    fault: Fault | None,
    rng: random.Random,
    *,
    send: Send,
    receive: Receive,
    headers: Headers,
) -> None:
    """Send the stream of ``plan`` with ``fault`` (one of STREAM_FAULTS, or None)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    kind = fault.kind if fault is not None else None
    content, completion, finish_reason = tokens.complete(plan.reply, plan.request.max_tokens)
    parts = pieces(content)
    build = _Chunks(plan, empty_choices=kind == "empty_choices")
    head = [*headers, (b"content-type", EVENT_STREAM), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": head})
    gone = asyncio.ensure_future(_until_disconnect(receive))
    try:

        async def put(data: bytes) -> bool:
            if gone.done():
                return False
            await send({"type": "http.response.body", "body": data, "more_body": True})
            return True

        if not await put(build.chunk({"role": "assistant", "content": ""})):
            return
        ttft = plan.spec.ttft.sample_s(rng)
        stop_at = len(parts) // 2 if kind in _CUT_SHORT else len(parts)
        for i, text in enumerate(parts[:stop_at]):
            await _sleep_until(loop, start + ttft + i / plan.spec.tokens_per_s)
            if not await put(build.chunk({"content": text})):
                return
        if kind is not None and kind in _CUT_SHORT:
            await _cut_short(kind, build, put, gone, send)
            if kind != "malformed_json":
                return
            for text in parts[stop_at:]:
                if not await put(build.chunk({"content": text})):
                    return
        if not await put(build.chunk({}, finish_reason)):
            return
        if plan.request.include_usage and kind != "missing_usage":
            prompt = tokens.prompt_tokens(plan.request.messages)
            if not await put(build.usage(prompt, completion)):
                return
        last = b"" if kind == "stream_no_done" else DONE
        await send({"type": "http.response.body", "body": last, "more_body": False})
    finally:
        gone.cancel()


async def _cut_short(kind: str, build: _Chunks, put: Any, gone: Any, send: Send) -> None:
    """The fault's act in the middle of the stream."""
    if kind == "reset":
        await asyncio.sleep(0.01)  # let the tokens reach the socket before the abort
        raise SimulatedReset("simulated connection reset mid-stream")
    if kind == "malformed_json":
        whole = build.chunk({"content": "?"})
        await put(whole[: len(whole) // 2] + b"\n\n")
    elif kind == "error_in_200":
        error = {"error": {"code": 502, "message": "upstream provider error mid-stream"}}
        if await put(event(error)):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif kind == "stream_stall":
        await asyncio.shield(gone)  # silence until the client leaves


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
