"""GatewayClient over real sockets: requests, parsing, caps, failures, timing, redaction."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from gwfixtures import (  # noqa: F401 - the fixtures
    RawServer,
    SelfSigned,
    ServeFn,
    answer_garbage,
    closed_port,
    drip,
    reply,
    reset_mid_body,
    self_signed_fixture,
    serve_fixture,
)

from monitor import __version__
from monitor.gateway.client import GatewayClient
from monitor.gateway.exchange import Exchange
from monitor.gateway.headers import parse_retry_after

KEY = "sk-nexomon-test-3b1f9c0e7d"
MODELS = {"object": "list", "data": [{"id": "m1", "object": "model"}]}


def client_for(server: RawServer | str, **kwargs: object) -> GatewayClient:
    base = server if isinstance(server, str) else server.base_url
    options: dict[str, object] = {"timeout": 2.0, **kwargs}
    return GatewayClient(base, KEY, **options)  # type: ignore[arg-type]


async def test_list_models_sends_key_only_in_authorization_and_parses_json(serve: ServeFn) -> None:
    server = serve(reply(200, MODELS, headers={"x-request-id": "req-1"}))
    async with client_for(server) as client:
        ex = await client.list_models()
    assert (ex.method, ex.path, ex.status, ex.failure) == ("GET", "/models", 200, None)
    assert ex.body == MODELS and ex.parse_error is None and ex.request_id == "req-1"
    request = server.requests[0]
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"] == f"nexomon/{__version__}"
    others = {k: v for k, v in request.headers.items() if k != "authorization"}
    assert KEY not in repr(others) and KEY not in request.path
    assert ex.started_at.tzinfo is UTC and ex.body_bytes > 0
    assert KEY not in repr(client)


async def test_chat_posts_the_documented_body(serve: ServeFn) -> None:
    server = serve(reply(200, {"ok": True}))
    async with client_for(server) as client:
        ex = await client.chat("m1", "hi there", 7)
    assert (ex.method, ex.path, ex.status) == ("POST", "/chat/completions", 200)
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.json() == {
        "model": "m1",
        "messages": [{"role": "user", "content": "hi there"}],
        "max_tokens": 7,
    }


async def test_every_request_is_the_one_httpx_client_would_build(serve: ServeFn) -> None:
    # The first request per (method, path) builds a template; the later ones
    # copy it. All of them must match httpx.AsyncClient.build_request.
    server = serve(reply(200, {"ok": True}))
    calls = [
        ("chat", ("m1", "hi there", 7)),
        ("chat", ("a-much-longer-model-name/v2", 'héllo ✓ "quoted"', 1)),
        ("list_models", ()),
        ("chat", ("m1", "", 0)),
        ("list_models", ()),
    ]
    async with client_for(server) as client:
        for name, args in calls:
            ex = await getattr(client, name)(*args)
            assert ex.status == 200, ex.failure_detail
        built = []
        for name, args in calls:
            if name == "chat":
                model, prompt, max_tokens = args
                payload = {
                    "model": model,
                    "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": max_tokens,
                }
                built.append(
                    client._client.build_request(
                        "POST", server.base_url + "/chat/completions", json=payload
                    )
                )
            else:
                built.append(client._client.build_request("GET", server.base_url + "/models"))
    assert len(server.requests) == len(calls)
    for sent, want in zip(server.requests, built, strict=True):
        assert (sent.method, sent.path) == (want.method, want.url.raw_path.decode())
        assert sent.headers == {k.lower(): v for k, v in want.headers.items()}
        assert sent.body == want.content


async def test_a_cookie_the_gateway_sets_is_sent_back(serve: ServeFn) -> None:
    # Like httpx's client (e.g. a load balancer's stickiness cookie).
    server = serve(reply(200, MODELS, headers={"set-cookie": "lb=node-2; Path=/"}))
    async with client_for(server) as client:
        await client.list_models()
        await client.chat("m1", "hi", 1)
    first, second = server.requests
    assert "cookie" not in first.headers
    assert second.headers["cookie"] == "lb=node-2"


@pytest.mark.parametrize(
    ("headers", "limit", "remaining", "retry_after", "invalid"),
    [
        (
            {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "0", "retry-after": "12"},
            60,
            0,
            12,
            0,
        ),
        (
            {"x-ratelimit-limit": "abc", "x-ratelimit-remaining": "-3", "retry-after": "soon"},
            *[None] * 3,
            2,  # the two rate-limit values; retry-after is not a rate-limit family header
        ),
        ({"retry-after": "1.5"}, None, None, 1.5, 0),
        ({"retry-after": "Thu, 01 Jan 2004 00:00:00 GMT"}, None, None, 0.0, 0),  # in the past
        ({}, None, None, None, 0),
        # OpenAI style over the wire: the requests kind fills the same fields.
        (
            {"X-RateLimit-Limit-Requests": "500", "x-ratelimit-remaining-requests": "7"},
            500,
            7,
            None,
            0,
        ),
    ],
)
async def test_whitelisted_headers_are_parsed_defensively(
    serve: ServeFn, headers: dict[str, str], limit: int | None, remaining: int | None,
    retry_after: float | None, invalid: int,
) -> None:  # fmt: skip
    server = serve(reply(429, {"error": {"message": "slow down"}}, headers=headers))
    async with client_for(server) as client:
        ex = await client.list_models()
    got = ex.ratelimits
    assert (got.requests.limit, got.requests.remaining, ex.retry_after_s, got.invalid) == (
        limit,
        remaining,
        retry_after,
        invalid,
    )


async def test_retry_after_http_date_becomes_seconds_from_now(serve: ServeFn) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=120)
    server = serve(reply(429, b"", headers={"retry-after": format_datetime(when, usegmt=True)}))
    async with client_for(server) as client:
        ex = await client.list_models()
    assert ex.status == 429
    assert ex.retry_after_s is not None and 100 < ex.retry_after_s <= 120


def test_parse_retry_after_table() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 Jan 2025 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wednesday, 01-Jan-25 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("0", now) == 0.0
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after("-1", now) is None
    assert parse_retry_after("", now) is None


@pytest.mark.parametrize(
    ("responder", "parse_error"),
    [
        (
            reply(200, "<html><body>ok</body></html>", content_type="text/html"),
            "not JSON (text/html)",
        ),
        (reply(200, b'{"object": "list", '), "malformed JSON"),
        (reply(200, b""), "empty body"),
        (reply(200, b"[" * 100_000), "nested too deeply"),
    ],
    ids=["html", "malformed", "empty", "deep"],
)
async def test_unparseable_bodies_become_parse_errors(
    serve: ServeFn, responder: object, parse_error: str
) -> None:
    async with client_for(serve(responder)) as client:
        ex = await client.list_models()
    assert ex.status == 200 and ex.failure is None and ex.body is None
    assert ex.parse_error is not None and parse_error in ex.parse_error


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_the_cap_stops_reading_and_fails_too_large(
    serve: ServeFn, chunked: bool
) -> None:
    # Larger than the client's read buffers: a body that already arrived whole
    # leaves a clean connection, which aiohttp may reuse.
    server = serve(reply(200, b"x" * 1_000_000, chunked=chunked))
    async with client_for(server, max_body_bytes=4096) as client:
        ex = await client.list_models()
        again = await client.list_models()  # the capped connection was dropped, not reused
    assert ex.failure == "too_large" and ex.status == 200 and ex.body is None
    assert ex.body_bytes <= 4096 + 65536
    assert "4096" in (ex.failure_detail or "")
    assert again.failure == "too_large" and server.connections == 2


async def test_slow_drip_is_bounded_by_the_whole_exchange_timeout(serve: ServeFn) -> None:
    server = serve(drip(b'{"object": "list", "data": []}', interval=0.2))
    async with client_for(server, timeout=1.0) as client:
        ex = await client.list_models()
    assert ex.failure == "timeout" and ex.status == 200
    assert ex.failure_detail == "timed out after 1s while reading the body"
    assert ex.duration_s is not None and ex.duration_s >= 0.9
    assert ex.phases.transfer > ex.phases.processing


async def test_reset_mid_body_is_a_connection_failure(serve: ServeFn) -> None:
    async with client_for(serve(reset_mid_body())) as client:
        ex = await client.list_models()
    assert ex.failure == "connection" and ex.status == 200 and ex.body is None
    assert ex.failure_detail


async def test_connection_refused(serve: ServeFn) -> None:
    async with client_for(f"http://127.0.0.1:{closed_port()}/v1") as client:
        ex = await client.list_models()
    assert (ex.failure, ex.failure_detail, ex.status) == ("connection", "connection refused", None)
    assert ex.duration_s is not None and ex.phases.processing == 0.0


async def test_unresolvable_host_is_a_connection_failure() -> None:
    async with client_for("http://nonexistent.invalid/v1") as client:
        ex = await client.list_models()
    assert ex.failure == "connection"
    assert (ex.failure_detail or "").startswith("DNS lookup failed for nonexistent.invalid")
    assert ex.phases.resolve is not None and ex.phases.resolve > 0  # timed until it failed


async def test_https_against_a_plain_http_server_is_a_tls_failure(serve: ServeFn) -> None:
    server = serve(raw=answer_garbage)
    async with client_for(server.base_url.replace("http://", "https://")) as client:
        ex = await client.list_models()
    assert ex.failure == "connection"
    assert (ex.failure_detail or "").startswith("TLS handshake failed")


async def test_untrusted_certificate_is_a_tls_failure(
    serve: ServeFn, self_signed: SelfSigned
) -> None:
    server = serve(reply(200, MODELS), tls=self_signed.server_context())
    async with client_for(server) as client:
        ex = await client.list_models()
    assert ex.failure == "connection"
    assert "CERTIFICATE_VERIFY_FAILED" in (ex.failure_detail or "")


async def test_tls_phase_is_measured_on_a_trusted_certificate(
    serve: ServeFn, self_signed: SelfSigned
) -> None:
    server = serve(reply(200, MODELS), tls=self_signed.server_context())
    transport = httpx.AsyncHTTPTransport(verify=self_signed.client_context())
    async with client_for(server, transport=transport) as client:
        ex = await client.list_models()
        reused = await client.list_models()
    assert ex.status == 200 and ex.body == MODELS
    assert ex.phases.tls > 0 and ex.phases.connect > 0
    assert reused.phases.tls == 0.0 and reused.phases.connect == 0.0  # keep-alive


async def test_phases_add_up_to_the_duration(serve: ServeFn) -> None:
    server = serve(reply(200, MODELS, delay=0.1))
    async with client_for(server) as client:
        ex = await client.list_models()
    p = ex.phases
    assert ex.duration_s is not None and p.processing >= 0.1
    total = p.connect + p.tls + p.processing + p.transfer
    assert total <= ex.duration_s and ex.duration_s - total < 0.05


async def test_pool_queueing_is_not_gateway_latency(serve: ServeFn) -> None:
    delay = 0.5
    server = serve(reply(200, MODELS, delay=delay))
    async with client_for(server, max_connections=1, timeout=5.0) as client:
        start = time.perf_counter()
        first, second = await asyncio.gather(client.list_models(), client.list_models())
        elapsed = time.perf_counter() - start
    assert elapsed >= 2 * delay  # the second request did wait for the only connection
    assert server.connections == 1
    for ex in (first, second):
        assert ex.status == 200 and ex.duration_s is not None
        assert delay <= ex.duration_s < 1.6 * delay


async def test_timeout_waiting_for_headers_keeps_partial_phases(serve: ServeFn) -> None:
    server = serve(reply(200, MODELS, delay=3.0))
    async with client_for(server, timeout=0.3) as client:
        ex = await client.list_models()
    assert ex.failure == "timeout" and ex.status is None
    assert ex.failure_detail == "timed out after 0.3s while waiting for the response headers"
    assert ex.phases.processing > 0 and ex.phases.transfer == 0.0


async def test_custom_transport_without_trace_events_still_times_the_exchange() -> None:
    async def app(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b'{"a": 1}'})  # type: ignore[operator]

    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with GatewayClient("http://gw/v1", KEY, timeout=2.0, transport=transport) as client:
        ex = await client.list_models()
    assert ex.status == 200 and ex.body == {"a": 1}
    assert ex.duration_s is not None and ex.duration_s >= ex.phases.processing


def _failure_cases(serve: ServeFn) -> list[tuple[str, dict[str, object]]]:
    echo = {"error": {"message": f"Invalid API key {KEY}"}}
    return [
        (f"http://127.0.0.1:{closed_port()}/v1", {}),
        ("http://nonexistent.invalid/v1", {}),
        (serve(reset_mid_body(KEY.encode())).base_url, {}),
        (serve(drip(b"x" * 100, 0.2)).base_url, {"timeout": 0.4}),
        (serve(reply(200, b"y" * 10_000)).base_url, {"max_body_bytes": 100}),
        (serve(raw=answer_garbage).base_url.replace("http:", "https:"), {}),
        (serve(reply(401, echo, headers={"x-request-id": KEY})).base_url, {}),
        (serve(reply(200, f"<html>{KEY}</html>", content_type="text/html")).base_url, {}),
    ]


async def test_the_api_key_appears_in_no_exchange_field(serve: ServeFn) -> None:
    seen: list[Exchange] = []
    for base_url, options in _failure_cases(serve):
        async with client_for(base_url, **options) as client:
            seen.append(await client.list_models())
            seen.append(await client.chat("m", "p", 1))
    assert {ex.failure for ex in seen} == {None, "connection", "timeout", "too_large"}
    for ex in seen:
        assert KEY not in repr(ex)
        assert KEY[4:20] not in repr(ex)
    assert any("[REDACTED]" in repr(ex.body) for ex in seen)


@pytest.mark.parametrize(
    "base_url", ["ftp://gw/v1", "http://127.0.0.1:99999/v1", "http:///v1", "not a url"]
)
def test_unusable_base_urls_are_rejected_at_construction(base_url: str) -> None:
    with pytest.raises(ValueError, match="invalid base_url"):
        GatewayClient(base_url, KEY, timeout=1.0)
