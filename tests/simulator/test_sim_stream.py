"""The simulator's SSE streams on a real socket: wire shape, scenario keys, stream faults."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sim_helpers import AUTH, chat_body

from monitor.errors import NexomonError
from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator
from monitor.simulator.stream import pieces
from monitor.simulator.streamspec import StreamSpec

REPLY = "Hello there, this is a streamed reply."  # 9 tokens by the simulator's rule
FAST = {"ttft_ms": 1, "tokens_per_s": 5000}

StartSim = Callable[..., RunningSimulator]


def stream_body(model: str, **extra: Any) -> dict[str, Any]:
    return chat_body(model, stream=True, **extra)


def events(text: str) -> list[Any]:
    """The data of each event of a stream body ([DONE] as the string)."""
    out = []
    for block in text.split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            data = block[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


@pytest.fixture
def stream_sim(start_sim: StartSim) -> RunningSimulator:
    fault = lambda kind: {"stream": FAST, "faults": [{"kind": kind, "rate": 1.0}]}  # noqa: E731
    return start_sim(
        {
            "reply": REPLY,
            "models": {
                "s": {"stream": FAST},
                "plain": {},
                "s-gone": {"stream": FAST, "answer_as": "other"},
                **{f"s-{k}": fault(k) for k in ("stream_no_done", "error_in_200", "stream_stall")},
                "s-server": {"stream": FAST, "faults": [{"kind": "server_error", "rate": 1.0}]},
            },
        }
    )


def post(sim: RunningSimulator, body: dict[str, Any], timeout: float = 5.0) -> httpx.Response:
    return httpx.post(f"{sim.base_url}/chat/completions", json=body, headers=AUTH, timeout=timeout)


def test_a_stream_is_role_then_one_chunk_per_token_then_finish_usage_and_done(
    stream_sim: RunningSimulator,
) -> None:
    response = post(stream_sim, stream_body("s", stream_options={"include_usage": True}))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert "content-length" not in response.headers and response.headers["x-request-id"]
    got = events(response.text)
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "s" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    tokens = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert "".join(tokens) == REPLY and len(tokens) == 9
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 9
    assert all(c["usage"] is None for c in chunks[:-1])  # null until the usage chunk


def test_without_include_usage_there_is_no_usage_chunk(stream_sim: RunningSimulator) -> None:
    got = events(post(stream_sim, stream_body("s", max_tokens=3)).text)
    assert got[-1] == "[DONE]" and all("usage" not in c for c in got[:-1])
    assert got[-2]["choices"][0]["finish_reason"] == "length"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in got[:-1]) == "Hello there,"


def test_chunks_name_the_substituted_model(stream_sim: RunningSimulator) -> None:
    got = events(post(stream_sim, stream_body("s-gone")).text)
    assert {c["model"] for c in got[:-1]} == {"other"}


def test_a_model_without_stream_refuses_it_and_bad_stream_fields_are_400(
    stream_sim: RunningSimulator,
) -> None:
    refused = post(stream_sim, stream_body("plain"))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsupported_value"
    for body, param in (
        (chat_body("s", stream="yes"), "stream"),
        (stream_body("s", stream_options=[]), "stream_options"),
        (stream_body("s", stream_options={"include_usage": 1}), "stream_options.include_usage"),
    ):
        response = post(stream_sim, body)
        assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_stream_faults_on_the_wire(stream_sim: RunningSimulator) -> None:
    no_done = events(post(stream_sim, stream_body("s-stream_no_done")).text)
    assert no_done[-1] != "[DONE]" and no_done[-1]["choices"][0]["finish_reason"] == "stop"
    error = events(post(stream_sim, stream_body("s-error_in_200")).text)
    assert error[-1] == {"error": {"code": 502, "message": "upstream provider error mid-stream"}}
    assert len(error) == 1 + 4 + 1  # role, half of the 9 tokens, the error
    server = post(stream_sim, stream_body("s-server"))  # answered whole, before any stream
    assert server.status_code == 500 and server.headers["content-type"] == "application/json"


def test_a_stalled_stream_sends_half_then_nothing(stream_sim: RunningSimulator) -> None:
    received = b""
    with (
        httpx.Client(headers=AUTH, timeout=0.5) as client,
        client.stream(
            "POST", f"{stream_sim.base_url}/chat/completions", json=stream_body("s-stream_stall")
        ) as response,
        pytest.raises(httpx.ReadTimeout),
    ):
        for data in response.iter_bytes():
            received += data
    assert len(events(received.decode())) == 1 + 4  # role and 4 tokens, then silence


def test_stream_only_faults_leave_a_plain_chat_alone(stream_sim: RunningSimulator) -> None:
    response = post(stream_sim, chat_body("s-stream_stall"))
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]


def test_pieces_join_back_to_the_reply() -> None:
    assert pieces("Hi,  you there.") == ["Hi", ",", "  you", " there", "."]
    assert "".join(pieces(REPLY + "  ")) == REPLY + "  " and pieces("") == []


@pytest.mark.parametrize(
    ("stream", "rule"),
    [
        ({"ttft": 1}, "models.m.stream.ttft: unknown key"),
        ({"tokens_per_s": 0}, "models.m.stream.tokens_per_s: must be greater than 0"),
        ({"tokens_per_s": "fast"}, "models.m.stream.tokens_per_s: must be a number"),
        ({"ttft_ms": -1}, "models.m.stream.ttft_ms: must be at least 0"),
        ({"ttft_ms": {"dist": "lognormal"}}, "models.m.stream.ttft_ms.median: is required"),
        ("fast", "models.m.stream: must be a table"),
    ],
)
def test_bad_stream_keys_are_named(stream: Any, rule: str) -> None:
    with pytest.raises(NexomonError) as caught:
        Scenario.from_dict({"models": {"m": {"stream": stream}}}, source="s.toml")
    assert str(caught.value).startswith(f"s.toml: {rule}")


def test_stream_keys_parse_with_defaults() -> None:
    scenario = Scenario.from_dict(
        {"models": {"a": {"stream": {}}, "b": {"stream": {"ttft_ms": 300, "tokens_per_s": 20}}}}
    )
    a, b = (scenario.model(m) for m in ("a", "b"))
    assert a is not None and a.stream == StreamSpec()
    assert b is not None and b.stream is not None
    assert (b.stream.ttft.value, b.stream.tokens_per_s) == (300.0, 20.0)
    plain = Scenario.from_dict({"models": {"c": {}}}).model("c")
    assert plain is not None and plain.stream is None
