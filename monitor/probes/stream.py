"""The ``stream`` probe: one streaming POST /chat/completions per model (opt-in).

Streaming is not a verified NexoRouter API, so the probe runs only for
targets with ``stream_interval``. It asks what the chat probe asks (prompt
with a nonce, ``max_tokens``) with ``stream: true`` and
``stream_options: {"include_usage": true}``, and reads the answer as it
arrives (GatewayClient.stream_chat, monitor.gateway.sse).

An ``ok`` stream, checked strictly (the first problem decides):

* a 2xx ``text/event-stream`` (another 2xx body is ``invalid_response``;
  an error status is classified as for chat: monitor.gateway.classify);
* well-formed SSE (monitor.gateway.sse); every event a plain message
  (an ``event: error`` is a mid-stream error, any other type a problem)
  whose data is ``[DONE]`` or a JSON object chunk with ``choices`` a list,
  ``choices[0].delta`` an object and ``usage`` (when not null) readable;
* at least one output chunk: a delta with non-empty ``content``,
  ``refusal``, ``reasoning_content``/``reasoning`` or ``tool_calls`` (a
  role-only first chunk is not output);
* a usage chunk (asked for with ``include_usage``), then ``data: [DONE]``.
  Reading stops at ``[DONE]``; an event after it in the same read is a
  problem. A body that ends without it is ``invalid_response``.

A mid-stream error (a chunk carrying ``error``, or ``event: error``) takes
the outcome its error names: an HTTP status in ``code``/``status`` is
classified as that status (5xx ``server_error``, 429 ``rate_limited``...),
a ``type``/``code`` naming a server error or a rate limit likewise, anything
else ``invalid_response``. A stream that stalls ends at the client's
timeout: ``timeout``, its error saying how many output chunks came first.

The figures (kept on every outcome where measured, so a stream that stalls
after its first token still shows its TTFT; the exporter uses ok ones only):

* ``ttft_s``: request start (its first byte written) to the arrival of the
  first output chunk; OpenTelemetry GenAI's time to first chunk, counting
  output chunks.
* ``chunk_gaps_s``: the time between consecutive output chunks' arrivals
  (OTel's time per output chunk), at most ``MAX_GAPS`` kept, with their
  nearest-rank p50 and p95.
* ``output_tokens_per_s``: (completion tokens - 1) / (last output chunk -
  first output chunk), the decode rate after the first token (the inverse
  of OTel's time per output token); tokens from ``usage``, else the count
  of output chunks; None under two tokens or with no time between them.

Arrival times are the socket reads' kernel receive stamps where the
transport has them (monitor.http.rxstamp), so a busy event loop does not
stretch the gaps.
"""

from __future__ import annotations

import math
from typing import Any

from monitor.gateway.classify import ShapeCheck, gateway_message, status_outcome
from monitor.gateway.client import EVENT_STREAM, GatewayClient
from monitor.gateway.exchange import Exchange
from monitor.gateway.headers import one_line
from monitor.gateway.sse import SseEvent, SseParser
from monitor.gateway.substitution import substitution
from monitor.outcome import Outcome
from monitor.probes.base import ERROR_LIMIT, ProbeContext, exchange_result
from monitor.probes.chat import nonce, usage_of
from monitor.results import ProbeResult

KIND = "stream"
MAX_GAPS = 4096  # enough for p95 of any probe; bounds memory whatever is streamed
_OUTPUT_TEXT = ("content", "refusal", "reasoning_content", "reasoning")
_SERVER_WORDS = ("server_error", "internal", "upstream", "overloaded", "unavailable")
_RATE_WORDS = ("rate_limit", "too_many_requests", "quota")


def error_outcome(error: Any) -> Outcome:
    """The outcome a mid-stream error object names (see the module docstring)."""
    if not isinstance(error, dict):
        return Outcome.INVALID_RESPONSE
    for key in ("code", "status"):
        value = error.get(key)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value < 600:
            return status_outcome(value) or Outcome.INVALID_RESPONSE
    words = " ".join(str(error.get(k, "")) for k in ("type", "code")).lower()
    if any(word in words for word in _RATE_WORDS):
        return Outcome.RATE_LIMITED
    if any(word in words for word in _SERVER_WORDS):
        return Outcome.SERVER_ERROR
    return Outcome.INVALID_RESPONSE


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class StreamReader:
    """The probe's StreamSink: parses the stream as it arrives and keeps what it says."""

    def __init__(self, client: GatewayClient) -> None:
        self._client = client
        self._parser = SseParser()
        self.sent_at: float | None = None
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.gaps: list[float] = []
        self.chunks = 0  # output chunks
        self.events = 0
        self.done = False
        self.problem: str | None = None  # the first protocol or shape problem
        self.failure: tuple[Outcome, str] | None = None  # a mid-stream error
        self.usage: tuple[int, int, int] | None = None
        self.model: str | None = None
        self.finish_reason: str | None = None

    # -- StreamSink -----------------------------------------------------

    def begin(self, sent_at: float | None) -> None:
        self.sent_at = sent_at

    def feed(self, data: bytes, at: float) -> bool:
        for event in self._parser.feed(data, at):
            if self.done:
                self.problem = "an event after [DONE]"
            else:
                self._event(event)
            if self.problem is not None or self.failure is not None:
                return True
        if self._parser.error is not None:
            self.problem = self._parser.error
        return self.done or self.problem is not None

    def end(self) -> None:
        self._parser.finish()
        if self.problem is None and self._parser.error is not None and not self.done:
            self.problem = self._parser.error

    # -- the events -----------------------------------------------------

    def _event(self, event: SseEvent) -> None:
        self.events += 1
        if event.event not in ("", "message", "error"):
            self.problem = f"event {self.events} has an unexpected event type"
            return
        if event.event != "error" and event.data == b"[DONE]":
            self.done = True
            return
        body, parse_error = self._client.parse_json(event.data)
        if parse_error is not None:
            self.problem = f"event {self.events}: {parse_error}"
            return
        if event.event == "error":
            inner = body.get("error", body) if isinstance(body, dict) else body
            self._error(inner)
            return
        if not isinstance(body, dict):
            self.problem = f"event {self.events} is not a JSON object"
            return
        if body.get("error") not in (None, "", {}):
            self._error(body["error"])
            return
        self._chunk(body, event.at)

    def _error(self, error: Any) -> None:
        message = gateway_message({"error": error}) or "an error event"
        where = f"after {self.chunks} output chunks"
        self.failure = (error_outcome(error), f"error mid-stream {where}: {message}")

    def _chunk(self, body: dict[str, Any], at: float) -> None:
        choices = body.get("choices")
        if not isinstance(choices, list):
            self.problem = f"event {self.events}: choices is not a list"
            return
        if self.model is None and isinstance(body.get("model"), str):
            self.model = body["model"]
        if body.get("usage") is not None:
            self.usage = usage_of(body)
            if self.usage is None:
                self.problem = f"event {self.events}: usage is not readable"
                return
        if not choices:
            return  # the usage chunk has none
        first = choices[0]
        delta = first.get("delta") if isinstance(first, dict) else None
        if not isinstance(delta, dict):
            self.problem = f"event {self.events}: choices[0].delta is not an object"
            return
        if isinstance(first.get("finish_reason"), str):
            self.finish_reason = first["finish_reason"]
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            self.problem = f"event {self.events}: choices[0].delta.content is not a string"
            return
        texts = (delta.get(key) for key in _OUTPUT_TEXT)
        calls = delta.get("tool_calls")
        if any(isinstance(t, str) and t for t in texts) or (isinstance(calls, list) and calls):
            self._output(at)

    def _output(self, at: float) -> None:
        if self.last_at is None:
            self.first_at = at
        elif len(self.gaps) < MAX_GAPS:
            self.gaps.append(max(0.0, at - self.last_at))
        self.last_at = at
        self.chunks += 1

    # -- the verdict ----------------------------------------------------

    def verdict(self) -> tuple[Outcome, str] | None:
        """What is wrong with a stream that was read to its end or stop; None: ok."""
        if self.failure is not None:
            return self.failure
        if self.problem is not None:
            return Outcome.INVALID_RESPONSE, f"invalid event stream: {self.problem}"
        if not self.done:
            return (
                Outcome.INVALID_RESPONSE,
                f"the stream ended without [DONE] after {self.chunks} output chunks",
            )
        if self.chunks == 0:
            return Outcome.INVALID_RESPONSE, "the stream carried no output chunk"
        if self.usage is None:
            return Outcome.INVALID_RESPONSE, "the stream carried no usage (include_usage)"
        return None

    def figures(self) -> dict[str, Any]:
        """The ProbeResult fields of what was measured (see the module docstring)."""
        fields: dict[str, Any] = {"output_chunks": self.chunks}
        if self.first_at is not None and self.sent_at is not None:
            fields["ttft_s"] = max(0.0, self.first_at - self.sent_at)
        tokens = self.usage[1] if self.usage is not None else self.chunks
        if self.first_at is not None and self.last_at is not None and tokens >= 2:
            span = self.last_at - self.first_at
            if span > 0:
                fields["output_tokens_per_s"] = (tokens - 1) / span
        if self.gaps:
            fields["chunk_gaps_s"] = tuple(self.gaps)
            fields["chunk_gap_p50_s"] = percentile(self.gaps, 0.5)
            fields["chunk_gap_p95_s"] = percentile(self.gaps, 0.95)
        return fields


def _not_a_stream(exchange: Exchange) -> ShapeCheck:
    """The shape check of a 2xx answer that did not stream (any body is wrong)."""
    kind = exchange.content_type or "no content-type"
    return lambda body: f"expected {EVENT_STREAM}, got {kind}"


async def probe(ctx: ProbeContext, model: str) -> ProbeResult:
    """Stream ``model``'s answer to the target's prompt; record outcome, figures, usage."""
    target = ctx.target
    reader = StreamReader(ctx.client)
    prompt = f"{target.prompt} {nonce()}"
    exchange = await ctx.client.stream_chat(model, prompt, target.max_tokens, reader)
    streamed = exchange.ok_status and (exchange.content_type or "").lower() == EVENT_STREAM
    fields: dict[str, Any] = {}
    if streamed:
        fields.update(reader.figures())
        if reader.finish_reason is not None:
            fields["finish_reason"] = one_line(reader.finish_reason, 64) or None
        if reader.model is not None:
            answered = fields["response_model"] = one_line(reader.model, 255) or None
            if answered is not None and substitution(model, answered):
                fields["substituted_by"] = answered
        if reader.usage is not None:
            usage = reader.usage
            fields.update(prompt_tokens=usage[0], completion_tokens=usage[1], total_tokens=usage[2])
    expect = None if streamed else _not_a_stream(exchange)
    result = exchange_result(ctx, KIND, model, exchange, expect, **fields)
    if not streamed:
        return result
    if result.outcome is Outcome.OK:
        verdict = reader.verdict()
        if verdict is not None:
            outcome, error = verdict
            return result.replace(outcome=outcome, error=one_line(error, ERROR_LIMIT))
        return result
    # A transport failure mid-stream (a stall: timeout; a reset): say how far it got.
    error = f"{result.error} (after {reader.chunks} output chunks)"
    return result.replace(error=one_line(error, ERROR_LIMIT))
