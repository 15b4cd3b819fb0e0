"""The stream probe over real sockets: the simulator's timing, strict SSE, failures as data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from gwfixtures import PROBE_KEY, MakeContext, ServeFn, StartSim, reply

from monitor.config.model import Price, TargetConfig
from monitor.daemon.runner import ProbeRunner
from monitor.gateway.client import GatewayClient
from monitor.outcome import Outcome
from monitor.probes import PROBES
from monitor.probes.stream import error_outcome, percentile, probe
from monitor.spend.budget import Budget

EVENT_STREAM = "text/event-stream"
# 60 tokens by the simulator's rule (monitor.simulator.tokens): max_tokens cuts it.
LONG_REPLY = " ".join(f"w{i}" for i in range(60))


def chunk(content: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    body: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    body.update(extra)
    return body


USAGE = {
    "id": "c1",
    "model": "m",
    "choices": [],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2},
}


def sse(*events: Any, done: bool = True) -> bytes:
    """An event stream of ``events`` (dicts as JSON data, bytes as they are)."""
    out = b"".join(
        e if isinstance(e, bytes) else b"data: " + json.dumps(e).encode() + b"\n\n" for e in events
    )
    return out + (b"data: [DONE]\n\n" if done else b"")


def stream_reply(body: bytes, **kwargs: Any) -> Any:
    return reply(200, body, content_type=EVENT_STREAM, chunked=True, **kwargs)


GOOD = sse(chunk("", role="x"), chunk("O"), chunk("K"), chunk(None), USAGE)


def test_the_registry_names_the_stream_probe() -> None:
    assert PROBES["stream"] is probe


# -- the simulator: timing on real sockets ------------------------------------------


async def test_measured_ttft_and_token_rate_are_within_5_percent_of_the_simulators(
    start_sim: StartSim, make_ctx: MakeContext
) -> None:
    # 300 ms to the first token, then 40 tokens at 50/s: 0.78 s between the first
    # and the last, long enough that timer noise stays far under 5 %.
    sim = start_sim(
        reply=LONG_REPLY, models={"sim-s": {"stream": {"ttft_ms": 300, "tokens_per_s": 50}}}
    )
    ctx = make_ctx(sim.base_url, max_tokens=40)
    result = await probe(ctx, "sim-s")
    assert result.outcome is Outcome.OK, result.error
    assert result.ttft_s == pytest.approx(0.300, rel=0.05)
    assert result.output_tokens_per_s == pytest.approx(50.0, rel=0.05)
    # Each gap is 20 ms give or take the server's sleep overshoot (about a millisecond).
    assert result.chunk_gap_p50_s == pytest.approx(0.020, rel=0.1)
    assert result.chunk_gap_p95_s is not None and result.chunk_gap_p95_s >= result.chunk_gap_p50_s
    assert result.output_chunks == 40 and result.chunk_gaps_s is not None
    assert len(result.chunk_gaps_s) == 39
    assert (result.completion_tokens, result.finish_reason) == (40, "length")
    assert result.prompt_tokens is not None and result.total_tokens is not None
    assert result.duration_s is not None and result.duration_s >= result.ttft_s
    shown = result.to_json()
    assert shown["ttft_s"] == result.ttft_s and shown["output_chunks"] == 40


@pytest.mark.parametrize(
    ("fault", "outcome", "words"),
    [
        ("stream_stall", Outcome.TIMEOUT, "after 5 output chunks"),
        ("stream_no_done", Outcome.INVALID_RESPONSE, "ended without [DONE] after 10 output"),
        ("error_in_200", Outcome.SERVER_ERROR, "error mid-stream after 5 output chunks"),
        ("reset", Outcome.CONNECTION_ERROR, "after 5 output chunks"),
        ("malformed_json", Outcome.INVALID_RESPONSE, "malformed JSON"),
        ("missing_usage", Outcome.INVALID_RESPONSE, "no usage"),
        ("empty_choices", Outcome.INVALID_RESPONSE, "no output chunk"),
        ("hang", Outcome.TIMEOUT, "waiting for the response headers"),
        ("html_200", Outcome.INVALID_RESPONSE, "not JSON"),
        ("server_error", Outcome.SERVER_ERROR, "HTTP 503"),
    ],
)
async def test_simulated_stream_faults_are_outcomes(
    start_sim: StartSim, make_ctx: MakeContext, fault: str, outcome: Outcome, words: str
) -> None:
    spec = {"kind": fault, "rate": 1.0, **({"status": 503} if fault == "server_error" else {})}
    stream = {"ttft_ms": 5, "tokens_per_s": 1000}
    sim = start_sim(reply=LONG_REPLY, models={"sim-f": {"stream": stream, "faults": [spec]}})
    result = await probe(make_ctx(sim.base_url, max_tokens=10, timeout=0.5), "sim-f")
    assert result.outcome is outcome
    assert result.error is not None and words in result.error, result.error


async def test_a_model_that_does_not_stream_is_a_client_error(
    start_sim: StartSim, make_ctx: MakeContext
) -> None:
    sim = start_sim()
    result = await probe(make_ctx(sim.base_url), "sim-a")
    assert result.outcome is Outcome.CLIENT_ERROR and result.http_status == 400
    assert result.ttft_s is None and result.output_chunks is None


async def test_a_substituted_model_is_recorded_from_the_chunks(
    start_sim: StartSim, make_ctx: MakeContext
) -> None:
    models = {"sim-s": {"stream": {"ttft_ms": 1, "tokens_per_s": 1000}, "answer_as": "other"}}
    sim = start_sim(models=models)
    result = await probe(make_ctx(sim.base_url), "sim-s")
    assert result.outcome is Outcome.OK
    assert (result.response_model, result.substituted_by) == ("other", "other")


# -- strict SSE from a raw server ---------------------------------------------------


async def test_the_request_asks_for_a_stream_with_usage(
    serve: ServeFn, make_ctx: MakeContext
) -> None:
    server = serve(stream_reply(GOOD, headers={"x-request-id": "req-s"}))
    result = await probe(make_ctx(server.base_url, max_tokens=7), "m")
    assert result.outcome is Outcome.OK and result.error is None
    assert (result.probe, result.request_id, result.output_chunks) == ("stream", "req-s", 2)
    assert (result.prompt_tokens, result.completion_tokens, result.total_tokens) == (9, 2, 11)
    sent = server.requests[0]
    body = sent.json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 7 and sent.headers["authorization"] == f"Bearer {PROBE_KEY}"
    assert EVENT_STREAM in sent.headers["accept"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (sse(chunk("a"), b"data: {not json\n\n", USAGE), "malformed JSON"),
        (sse(chunk("a"), b"data: [1, 2]\n\n", USAGE), "not a JSON object"),
        (sse(chunk("a"), {"choices": "no"}, USAGE), "choices is not a list"),
        (sse(chunk("a"), {"choices": [{"delta": "x"}]}, USAGE), "delta is not an object"),
        (sse(chunk("a"), chunk(None, choices=[{"delta": {"content": 5}}]), USAGE), "not a string"),
        (
            sse(chunk("a"), {"choices": [], "usage": {"prompt_tokens": "9"}}),
            "usage is not readable",
        ),
        (sse(chunk("a"), b"event: ping\ndata: {}\n\n", USAGE), "unexpected event type"),
        (sse(chunk("a"), USAGE) + b"data: {}\n\n", "an event after [DONE]"),
        (sse(chunk("a"), USAGE, done=False) + b'data: {"id"', "middle of an event"),
        (sse(chunk("a"), USAGE, done=False), "ended without [DONE] after 1 output chunks"),
        (sse(chunk(""), chunk(None), USAGE), "no output chunk"),
        (sse(chunk("a"), chunk("b")), "no usage"),
        pytest.param(b"data: " + b"x" * 300_000 + b"\n\n", "longer than 262144", id="huge"),
    ],
)
async def test_a_stream_that_breaks_the_rules_is_an_invalid_response(
    serve: ServeFn, make_ctx: MakeContext, body: bytes, words: str
) -> None:
    server = serve(stream_reply(body))
    result = await probe(make_ctx(server.base_url), "m")
    assert result.outcome is Outcome.INVALID_RESPONSE
    assert result.error is not None and words in result.error, result.error


async def test_a_2xx_that_does_not_stream_is_an_invalid_response(
    serve: ServeFn, make_ctx: MakeContext
) -> None:
    completion = {"choices": [{"message": {"content": "OK"}}], "usage": USAGE["usage"]}
    result = await probe(make_ctx(serve(reply(200, completion)).base_url), "m")
    assert result.outcome is Outcome.INVALID_RESPONSE
    assert result.error is not None and "expected text/event-stream" in result.error


async def test_an_error_status_is_classified_as_for_chat(
    serve: ServeFn, make_ctx: MakeContext
) -> None:
    error = {"error": {"message": "slow down"}}
    server = serve(reply(429, error, headers={"retry-after": "7"}))
    result = await probe(make_ctx(server.base_url), "m")
    assert (result.outcome, result.retry_after_s) == (Outcome.RATE_LIMITED, 7.0)
    assert result.error == "HTTP 429: slow down"


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        (b'data: {"error": {"code": 502, "message": "upstream died"}}\n\n', Outcome.SERVER_ERROR),
        (b'event: error\ndata: {"error": {"type": "overloaded_error"}}\n\n', Outcome.SERVER_ERROR),
        (
            b'event: error\ndata: {"type": "rate_limit_error", "message": "x"}\n\n',
            Outcome.RATE_LIMITED,
        ),
        (b'data: {"error": {"message": "model gave up"}}\n\n', Outcome.INVALID_RESPONSE),
    ],
)
async def test_an_error_mid_stream_takes_the_outcome_it_names(
    serve: ServeFn, make_ctx: MakeContext, event: bytes, outcome: Outcome
) -> None:
    server = serve(stream_reply(sse(chunk("a"), event, USAGE)))
    result = await probe(make_ctx(server.base_url), "m")
    assert result.outcome is outcome
    assert result.error is not None and result.error.startswith("error mid-stream after 1 output")


async def test_an_echoed_key_never_reaches_the_error(serve: ServeFn, make_ctx: MakeContext) -> None:
    event = b'event: error\ndata: {"error": {"message": "bad key ' + PROBE_KEY.encode() + b'"}}\n\n'
    result = await probe(make_ctx(serve(stream_reply(sse(event))).base_url), "m")
    assert result.error is not None and PROBE_KEY not in result.error and "bad key" in result.error


async def test_a_stream_past_max_body_bytes_is_cut(serve: ServeFn, make_ctx: MakeContext) -> None:
    body = sse(*[chunk("x" * 100) for _ in range(100)], USAGE)  # ~15 KB
    result = await probe(make_ctx(serve(stream_reply(body)).base_url, max_body_bytes=4096), "m")
    assert result.outcome is Outcome.INVALID_RESPONSE
    assert result.error is not None and "larger than 4096 bytes" in result.error


async def test_reasoning_and_tool_call_deltas_are_output(
    serve: ServeFn, make_ctx: MakeContext
) -> None:
    reasoning = chunk(None, choices=[{"delta": {"reasoning_content": "hmm"}}])
    tool = chunk(None, choices=[{"delta": {"tool_calls": [{"index": 0}]}}])
    server = serve(stream_reply(sse(chunk("", role="assistant"), reasoning, tool, USAGE)))
    result = await probe(make_ctx(server.base_url), "m")
    assert result.outcome is Outcome.OK and result.output_chunks == 2


# -- the pieces -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ({"code": 503}, Outcome.SERVER_ERROR),
        ({"status": "429"}, Outcome.RATE_LIMITED),
        ({"code": 400}, Outcome.CLIENT_ERROR),
        ({"code": 401}, Outcome.AUTH_ERROR),
        ({"code": True}, Outcome.INVALID_RESPONSE),
        ({"code": "rate_limit_exceeded"}, Outcome.RATE_LIMITED),
        ({"type": "server_error"}, Outcome.SERVER_ERROR),
        ({"message": "?"}, Outcome.INVALID_RESPONSE),
        ("a string", Outcome.INVALID_RESPONSE),
    ],
)
def test_error_outcome(error: Any, outcome: Outcome) -> None:
    assert error_outcome(error) is outcome


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50.0, 95.0)
    assert percentile([], 0.5) is None and percentile([3.0], 0.95) == 3.0


# -- the runner: a stream spends tokens like a chat --------------------------------


def _target(base_url: str, **extra: Any) -> TargetConfig:
    return TargetConfig(
        name="t",
        base_url=base_url,
        api_key_env="NEXOMON_STREAM_TEST_KEY",
        models=("sim-s",),
        stream_interval=60.0,
        **extra,
    )


async def test_the_runner_prices_budgets_and_holds_stream_probes(start_sim: StartSim) -> None:
    sim = start_sim(
        reply=LONG_REPLY,
        models={
            "sim-s": {"stream": {"ttft_ms": 1, "tokens_per_s": 5000}},
            "sim-429": {"stream": {"ttft_ms": 1}, "ratelimit": {"limit": 1, "per_s": 0.001}},
        },
    )
    target = _target(sim.base_url, max_tokens=4)
    now = datetime.now(UTC)
    budget = Budget(Decimal("1"), 1_000_000, now=lambda: now)
    async with GatewayClient(sim.base_url, PROBE_KEY, timeout=2.0) as client:
        runner = ProbeRunner(
            location="here",
            targets={"t": target},
            clients={"t": client},
            pricing={"sim-s": Price(input=Decimal(1000), output=Decimal(2000))},
            budget=budget,
        )
        result = await runner.run("t", "stream", "sim-s")
        assert result is not None and result.outcome is Outcome.OK, result
        assert result.cost_usd is not None and result.cost_usd > 0
        assert budget.spent_usd == result.cost_usd  # settled like a chat
        assert budget.spent_tokens == result.total_tokens

        first = await runner.run("t", "stream", "sim-429")  # spends the bucket's one token
        limited = await runner.run("t", "stream", "sim-429")
        assert first is not None and first.outcome is Outcome.OK
        assert limited is not None and limited.outcome is Outcome.RATE_LIMITED
        held = await runner.run("t", "chat", "sim-429")  # the same model's hold covers chat
        assert held is not None and held.outcome is Outcome.SKIPPED
        assert held.error is not None and "retry-after" in held.error
