"""Simulator: the fake OpenAI-compatible gateway as a raw ASGI application.

Routes::

    GET  /v1/models              the scenario's models that are listed right now
    POST /v1/chat/completions    a completion, an error, or a scripted fault
    OPTIONS (any path)           CORS preflight (204)
    GET  /_sim/stats             SimStats as JSON (no auth)
    POST /_sim/reset             clears the stats and refills every rate-limit bucket

Order of checks for chat: Bearer auth (401/403), body validation (400),
model listed (404), token bucket (429), then one draw decides between a
normal answer, an ``error_rate`` 5xx and a scripted fault, after the
model's latency. Every response carries ``x-request-id`` and the CORS
headers; chat answers past the bucket carry ``x-ratelimit-limit`` and
``x-ratelimit-remaining``. Raw ASGI, because faults need byte-level control
of the stream (partial bodies, drips, aborted connections).

``stream: true`` is refused (400) for a model without a ``stream`` spec and
served as SSE for one with it (monitor.simulator.stream, after the same
checks and draw; faults that do not act on a stream answer as for a plain
chat). The stream-only fault kinds leave a plain chat answer untouched.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from monitor.simulator import faults, payloads, stream
from monitor.simulator.faults import Headers, Receive, Send, send_error, send_response
from monitor.simulator.payloads import RequestError
from monitor.simulator.ratelimit import RateLimiter, format_retry_after
from monitor.simulator.ratelimit_headers import ratelimit_headers
from monitor.simulator.scenario import STREAM_ONLY_FAULTS, Fault, Latency, ModelSpec, Scenario
from monitor.simulator.stats import SimStats

MODELS_PATH = "/v1/models"
CHAT_PATH = "/v1/chat/completions"
MAX_BODY_BYTES = 1024 * 1024
EXPOSED = b"x-request-id, x-ratelimit-limit, x-ratelimit-remaining, retry-after"
CORS = [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", EXPOSED)]
ALLOWED_METHODS = b"GET, POST, OPTIONS"


class Simulator:
    """The ASGI app. ``stats`` and ``reset()`` are for tests and benchmarks.

    ``clock`` (monotonic seconds) drives the token buckets and model
    disappearance, measured from construction; ``wall`` (Unix seconds)
    stamps log entries, ``created`` and HTTP-date ``retry-after`` values.
    """

    def __init__(
        self,
        scenario: Scenario,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.scenario = scenario
        self.clock = clock
        self.wall = wall
        self.started = clock()
        self.stats = SimStats()
        self.limiter = RateLimiter(clock)
        self.rng = random.Random(scenario.seed)

    def uptime_s(self) -> float:
        return self.clock() - self.started

    def listed_models(self) -> list[ModelSpec]:
        uptime = self.uptime_s()
        return [m for m in self.scenario.models if m.listed_at(uptime)]

    def reset(self) -> None:
        """Clear counters and log; every bucket starts full again. Uptime is kept."""
        self.stats.reset()
        self.limiter.reset()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        request_id = f"req_{uuid.uuid4().hex}"
        breaks = self.scenario.contract_breaks
        cors = CORS[:1] if "cors_expose_headers" in breaks else CORS
        headers: Headers = [(b"x-request-id", request_id.encode()), *cors]
        if method == "OPTIONS":
            if "cors_preflight" in breaks:  # no CORS at all: 405, as a plain server says
                await send_error(send, 405, [headers[0]], "Method OPTIONS not allowed", "method")
                return
            await _preflight(scope, send, headers)
            return
        if path.startswith("/_sim/"):
            await self._introspect(method, path, send, headers)
            return
        log = _Log(self.stats, path, request_id, self.wall())
        if path not in (MODELS_PATH, CHAT_PATH):
            log(404)
            await send_error(send, 404, headers, f"Unknown path {path}", "not_found")
            return
        if method != ("GET" if path == MODELS_PATH else "POST"):
            log(405)
            await send_error(
                send,
                405,
                [*headers, (b"allow", ALLOWED_METHODS)],
                f"Method {method} not allowed",
                "method_not_allowed",
            )
            return
        # A fault with only_user_agent applies to matching clients only (a regional fault).
        agent = dict(scope["headers"]).get(b"user-agent", b"").decode("latin-1")
        try:
            key = self._authenticate(scope)
            if path == MODELS_PATH:
                await self._models(send, receive, headers, log, agent)
            else:
                await self._chat(key, send, receive, headers, log, agent)
        except RequestError as exc:
            log(exc.status)
            if "request_id" in breaks:  # error answers without x-request-id
                headers = headers[1:]
            if exc.status == 401:
                headers = [*headers, (b"www-authenticate", b"Bearer")]
            await send_response(send, exc.status, headers, payloads.dumps(exc.body))

    def _authenticate(self, scope: dict[str, Any]) -> str:
        """The bearer key, or RequestError 401/403. Messages never include the key."""
        raw = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, key = raw.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise RequestError(
                401,
                "Missing or malformed Authorization header; expected 'Bearer <API key>'",
                type_="authentication_error",
                code="invalid_api_key",
            )
        if key in self.scenario.revoked_keys:
            raise RequestError(
                403, "This API key has been revoked", type_="permission_error", code="key_revoked"
            )
        if self.scenario.api_keys and key not in self.scenario.api_keys:
            raise RequestError(
                401,
                "Incorrect API key provided",
                type_="authentication_error",
                code="invalid_api_key",
            )
        return key

    async def _models(
        self, send: Send, receive: Receive, headers: Headers, log: _Log, agent: str
    ) -> None:
        fault = self._draw(0.0, self.scenario.models_faults, agent)
        broken = "models_shape" in self.scenario.contract_breaks
        payload = payloads.models_body(self.listed_models(), broken)
        await self._answer(
            fault, self.scenario.models_latency, payload, send, receive, headers, log
        )

    async def _chat(
        self, key: str, send: Send, receive: Receive, headers: Headers, log: _Log, agent: str
    ) -> None:
        request = payloads.parse_chat(await _read_body(receive), self.scenario.contract_breaks)
        log.model = request.model
        spec = self.scenario.model(request.model)
        if spec is None or not spec.listed_at(self.uptime_s()):
            raise RequestError(
                404,
                f"The model '{request.model}' does not exist or you do not have access to it",
                code="model_not_found",
                param="model",
            )
        if request.stream and spec.stream is None:
            raise payloads.no_streaming()
        decision = self.limiter.take(key, spec.id, spec.ratelimit)
        family = spec.ratelimit_headers or self.scenario.ratelimit_headers
        headers = [
            *headers,
            *ratelimit_headers(family, decision, spec.ratelimit, self.wall()),
        ]
        if not decision.allowed:
            retry = format_retry_after(
                decision.retry_after_s, self.scenario.retry_after_format, self.wall()
            )
            log(429)
            body = payloads.error_body(
                f"Rate limit reached for {spec.id}; retry later",
                "rate_limit_error",
                "rate_limit_exceeded",
            )
            await send_response(
                send, 429, [*headers, (b"retry-after", retry.encode())], payloads.dumps(body)
            )
            return
        fault = self._draw(spec.error_rate, spec.faults, agent)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if spec.stream is not None and request.stream:
            if fault is None or fault.kind in stream.STREAM_FAULTS:
                log(200, None if fault is None else fault.kind)
                plan = stream.StreamPlan(
                    request,
                    spec.stream,
                    self.scenario.reply,
                    completion_id,
                    int(self.wall()),
                    spec.answer_as or request.model,
                )
                await stream.serve(
                    plan, fault, self.rng, send=send, receive=receive, headers=headers
                )
                return
            latency = spec.stream.ttft  # the stream's latency, for the faults answered whole
        else:
            latency = spec.latency
            if fault is not None and fault.kind in STREAM_ONLY_FAULTS:
                fault = None
        payload = payloads.completion_body(
            request, self.scenario.reply, completion_id, int(self.wall()), spec.answer_as
        )
        await self._answer(fault, latency, payload, send, receive, headers, log)

    def _draw(self, error_rate: float, choices: tuple[Fault, ...], agent: str = "") -> Fault | None:
        """One uniform draw over [error_rate, fault rates..., normal answer].

        A fault that does not apply to ``agent`` (its ``only_user_agent``)
        keeps its slot but never fires: its share of requests is answered
        normally, and the other faults' odds do not change.
        """
        u = self.rng.random()
        if u < error_rate:
            return Fault("error_rate", error_rate)
        u -= error_rate
        for fault in choices:
            if u < fault.rate:
                if not fault.applies_to(agent):
                    return None
                return fault
            u -= fault.rate
        return None

    async def _answer(
        self,
        fault: Fault | None,
        latency: Latency,
        payload: dict[str, Any],
        send: Send,
        receive: Receive,
        headers: Headers,
        log: _Log,
    ) -> None:
        if fault is not None and fault.kind == "hang":
            log(None, "hang")
            await faults.render(fault, payload, send=send, receive=receive, headers=headers)
            return
        delay = latency.sample_s(self.rng)
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is None:
            log(200)
            await send_response(send, 200, headers, payloads.dumps(payload))
        elif fault.kind == "error_rate":
            status = self.rng.choice(faults.ERROR_STATUSES)
            log(status, "error_rate")
            await send_error(send, status, headers, "simulated upstream failure", "server_error")
        else:
            log(fault.status if fault.kind == "server_error" else 200, fault.kind)
            await faults.render(fault, payload, send=send, receive=receive, headers=headers)

    async def _introspect(self, method: str, path: str, send: Send, headers: Headers) -> None:
        if path == "/_sim/stats" and method == "GET":
            await send_response(send, 200, headers, payloads.dumps(self.stats.snapshot()))
        elif path == "/_sim/reset" and method == "POST":
            self.reset()
            await send_response(send, 200, headers, b'{"reset":true}')
        else:
            await send_error(send, 404, headers, f"Unknown path {path}", "not_found")


class _Log:
    """Records one request in SimStats once its answer is decided."""

    def __init__(self, stats: SimStats, path: str, request_id: str, t: float) -> None:
        self.stats, self.path, self.request_id, self.t = stats, path, request_id, t
        self.model: str | None = None

    def __call__(self, status: int | None, fault: str | None = None) -> None:
        self.stats.record(
            t=self.t,
            path=self.path,
            model=self.model,
            status=status,
            request_id=self.request_id,
            fault=fault,
        )


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "client disconnected", code="client_disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(413, "request body too large", code="request_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _preflight(scope: dict[str, Any], send: Send, headers: Headers) -> None:
    request_headers = dict(scope["headers"])
    extra: Headers = [(b"allow", ALLOWED_METHODS)]
    if b"access-control-request-method" in request_headers:
        asked = request_headers.get(
            b"access-control-request-headers", b"authorization, content-type"
        )
        extra = [
            (b"access-control-allow-methods", ALLOWED_METHODS),
            (b"access-control-allow-headers", asked),
            (b"access-control-max-age", b"600"),
        ]
    await send({"type": "http.response.start", "status": 204, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
