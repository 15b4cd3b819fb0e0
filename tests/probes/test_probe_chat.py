"""The chat probe over real sockets: request, shape, usage, headers, failures as data."""

from __future__ import annotations

import re
from typing import Any

import pytest
from gwfixtures import PROBE_KEY, MakeContext, ServeFn, closed_port, drip, reply, reset_mid_body

from monitor.outcome import Outcome
from monitor.probes import PROBES
from monitor.probes.chat import check_shape, probe, usage_of

NONCE = re.compile(r"^Say OK\. \[nx-[0-9a-f]{6}\]$")


def completion(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl_1",
        "object": "chat.completion",
        "model": "deepseek-v4-flash-2025",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "OK"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    }
    body.update(overrides)
    return body


RATE_HEADERS = {
    "x-request-id": "req-abc",
    "x-ratelimit-limit": "600",
    "x-ratelimit-remaining": "599",
}


def test_registry_names_the_probe_kinds() -> None:
    assert PROBES["chat"] is probe


async def test_ok_completion_records_usage_model_and_headers(
    serve: ServeFn, make_ctx: MakeContext
) -> None:
    server = serve(reply(200, completion(), headers=RATE_HEADERS))
    ctx = make_ctx(server.base_url, name="nexo", prompt="Say OK.", max_tokens=5)
    result = await probe(ctx, "deepseek-v4-flash")
    assert result.outcome is Outcome.OK and result.error is None and result.success
    assert (result.target, result.probe, result.model) == ("nexo", "chat", "deepseek-v4-flash")
    assert (result.prompt_tokens, result.completion_tokens, result.total_tokens) == (12, 1, 13)
    assert (result.finish_reason, result.response_model) == ("stop", "deepseek-v4-flash-2025")
    assert (result.request_id, result.ratelimit_limit, result.ratelimit_remaining) == (
        "req-abc", 600, 599,
    )  # fmt: skip
    assert result.http_status == 200 and result.duration_s is not None
    assert result.cost_usd is None  # pricing is the runner's job
    sent = server.requests[0].json()
    assert server.requests[0].path == "/v1/chat/completions"
    assert sent["model"] == "deepseek-v4-flash" and sent["max_tokens"] == 5
    assert NONCE.match(sent["messages"][0]["content"])
    assert server.requests[0].headers["authorization"] == f"Bearer {PROBE_KEY}"


async def test_each_probe_sends_a_fresh_nonce(serve: ServeFn, make_ctx: MakeContext) -> None:
    server = serve(reply(200, completion()))
    ctx = make_ctx(server.base_url, prompt="Say OK.")
    for _ in range(3):
        await probe(ctx, "m")
    prompts = [r.json()["messages"][0]["content"] for r in server.requests]
    assert len(set(prompts)) == 3 and all(NONCE.match(p) for p in prompts)


async def test_total_tokens_defaults_to_the_sum(serve: ServeFn, make_ctx: MakeContext) -> None:
    body = completion(usage={"prompt_tokens": 4, "completion_tokens": 3})
    result = await probe(make_ctx(serve(reply(200, body)).base_url), "m")
    assert result.outcome is Outcome.OK and result.total_tokens == 7


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (completion(choices=[]), "choices is missing or empty"),
        (completion(choices=None), "choices is missing or empty"),
        (completion(choices=["x"]), "choices[0].message is not an object"),
        (completion(choices=[{"message": {"content": None}}]),
         "choices[0].message.content is not a string"),
        (completion(usage=None), "usage is missing"),
        ({k: v for k, v in completion().items() if k != "usage"}, "usage is missing"),
        (completion(usage={"prompt_tokens": "12", "completion_tokens": 1}),
         "usage.prompt_tokens / completion_tokens are not integers"),
        (completion(usage={"prompt_tokens": True, "completion_tokens": 1}),
         "usage.prompt_tokens / completion_tokens are not integers"),
        ([completion()], "expected a JSON object, got list"),
    ],
)  # fmt: skip
async def test_bad_shapes_are_invalid_responses(
    serve: ServeFn, make_ctx: MakeContext, body: Any, problem: str
) -> None:
    result = await probe(make_ctx(serve(reply(200, body)).base_url), "m")
    assert result.outcome is Outcome.INVALID_RESPONSE
    assert result.error == f"unexpected shape: {problem}"
    assert check_shape(body) == problem


async def test_tokens_spent_are_recorded_even_when_the_answer_is_invalid(
    serve: ServeFn, make_ctx: MakeContext
) -> None:
    result = await probe(make_ctx(serve(reply(200, completion(choices=[]))).base_url), "m")
    assert result.outcome is Outcome.INVALID_RESPONSE
    assert (result.prompt_tokens, result.completion_tokens, result.total_tokens) == (12, 1, 13)


async def test_error_object_in_a_200_is_invalid(serve: ServeFn, make_ctx: MakeContext) -> None:
    body = {"error": {"message": "model overloaded, try later", "type": "server_error"}}
    result = await probe(make_ctx(serve(reply(200, body)).base_url), "m")
    assert result.outcome is Outcome.INVALID_RESPONSE
    assert result.error == "HTTP 200 with an error: model overloaded, try later"


@pytest.mark.parametrize(
    "retry_after", ["30", "Wed, 21 Oct 2015 07:28:00 GMT"], ids=["seconds", "http-date"]
)
async def test_rate_limited_records_retry_after(
    serve: ServeFn, make_ctx: MakeContext, retry_after: str
) -> None:
    headers = {**RATE_HEADERS, "x-ratelimit-remaining": "0", "retry-after": retry_after}
    body = {"error": {"message": "rate limit exceeded", "type": "rate_limit"}}
    result = await probe(make_ctx(serve(reply(429, body, headers=headers)).base_url), "m")
    assert result.outcome is Outcome.RATE_LIMITED
    assert result.error == "HTTP 429: rate limit exceeded"
    assert (result.http_status, result.ratelimit_limit, result.ratelimit_remaining) == (429, 600, 0)
    assert result.retry_after_s == (30.0 if retry_after == "30" else 0.0)
    assert result.prompt_tokens is None and result.finish_reason is None


@pytest.mark.parametrize(
    ("answer", "options", "outcome", "error"),
    [
        (reply(401, {"error": {"message": f"invalid key {PROBE_KEY}"}}), {}, Outcome.AUTH_ERROR,
         "HTTP 401: invalid key [REDACTED]"),
        (reply(403, b""), {}, Outcome.AUTH_ERROR, "HTTP 403"),
        (reply(404, {"error": {"message": "model not found"}}), {}, Outcome.CLIENT_ERROR,
         "HTTP 404: model not found"),
        (reply(500, b"oops", content_type="text/plain"), {}, Outcome.SERVER_ERROR, "HTTP 500"),
        (reply(502, "<html>Bad Gateway</html>", content_type="text/html"), {},
         Outcome.SERVER_ERROR, "HTTP 502"),
        (reply(200, "<html>hi</html>", content_type="text/html"), {}, Outcome.INVALID_RESPONSE,
         "HTTP 200: body is not JSON (text/html)"),
        (reply(200, b'{"choices": ['), {}, Outcome.INVALID_RESPONSE, "HTTP 200: malformed JSON"),
        (reply(200, completion(pad="x" * 5000)), {"max_body_bytes": 2048},
         Outcome.INVALID_RESPONSE, "response body larger than 2048 bytes"),
        (reset_mid_body(b'{"choices"'), {}, Outcome.CONNECTION_ERROR, "connection reset by peer"),
        (drip(b"{}" * 20, 0.2), {"timeout": 0.5}, Outcome.TIMEOUT, "timed out after 0.5s"),
    ],
    ids=["401", "403", "404", "500", "502", "html", "malformed", "too-large", "reset", "drip"],
)  # fmt: skip
async def test_failures_are_results_not_exceptions(
    serve: ServeFn, make_ctx: MakeContext, answer: Any, options: dict[str, Any],
    outcome: Outcome, error: str,
) -> None:  # fmt: skip
    result = await probe(make_ctx(serve(answer).base_url, **options), "m")
    assert result.outcome is outcome and not result.success
    assert result.error is not None and result.error.startswith(error)
    assert result.prompt_tokens is None
    assert PROBE_KEY not in repr(result)


async def test_unreachable_gateway_is_a_connection_error(make_ctx: MakeContext) -> None:
    result = await probe(make_ctx(f"http://127.0.0.1:{closed_port()}/v1"), "m")
    assert (result.outcome, result.error) == (Outcome.CONNECTION_ERROR, "connection refused")
    assert result.model == "m" and result.http_status is None


@pytest.mark.parametrize(
    ("usage", "counts"),
    [
        ({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 5}, (1, 2, 5)),
        ({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": "5"}, (1, 2, 3)),
        ({"prompt_tokens": -1, "completion_tokens": 2}, None),
        ({"prompt_tokens": 1.0, "completion_tokens": 2}, None),
        ("12", None),
    ],
)
def test_usage_parsing(usage: Any, counts: tuple[int, int, int] | None) -> None:
    assert usage_of({"usage": usage}) == counts
