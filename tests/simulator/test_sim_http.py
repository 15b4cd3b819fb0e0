"""The simulator's OpenAI-compatible surface over a real socket."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sim_helpers import AUTH, GOOD_KEY, chat_body

EXPOSED = "x-request-id, x-ratelimit-limit, x-ratelimit-remaining, retry-after"


def test_models_lists_every_model_in_openai_shape(client: httpx.Client) -> None:
    response = client.get("/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert body["data"][0] == {
        "id": "m-ok",
        "object": "model",
        "created": 1735689600,
        "owned_by": "nexorouter-sim",
    }
    assert "m-huge" in [m["id"] for m in body["data"]]


def test_chat_answers_a_completion_with_counted_usage(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat_body(content="Reply with OK."))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "m-ok"
    assert isinstance(body["created"], int)
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello there, this is a reply.",
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    # prompt: 3 priming + 3 per message + "user" + 4 tokens; reply: 8 (commas count)
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 8, "total_tokens": 19}


def test_chat_cut_at_max_tokens_finishes_with_length(client: httpx.Client) -> None:
    body = client.post("/chat/completions", json=chat_body(max_tokens=2)).json()
    assert body["choices"][0]["message"]["content"] == "Hello there"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model", "missing_required_parameter"),
        ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, "model", "invalid_type"),
        ({"model": "m-ok"}, "messages", "missing_required_parameter"),
        ({"model": "m-ok", "messages": []}, "messages", "invalid_value"),
        ({"model": "m-ok", "messages": "hi"}, "messages", "invalid_value"),
        ({"model": "m-ok", "messages": [{"content": "x"}]}, "messages[0]", "invalid_value"),
        (chat_body(max_tokens=0), "max_tokens", "invalid_value"),
        (chat_body(max_tokens=1.5), "max_tokens", "invalid_value"),
        (chat_body(max_tokens=True), "max_tokens", "invalid_value"),
        (chat_body(temperature=2.5), "temperature", "invalid_value"),
        (chat_body(temperature=-0.1), "temperature", "invalid_value"),
        (chat_body(temperature="hot"), "temperature", "invalid_type"),
        (chat_body(top_p=1.1), "top_p", "invalid_value"),
        (chat_body(stream=True), "stream", "unsupported_value"),
    ],
)
def test_invalid_chat_body_is_a_400_openai_error(
    client: httpx.Client, body: dict[str, Any], param: str, code: str
) -> None:
    response = client.post("/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert error["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_unparseable_chat_body_is_a_400(client: httpx.Client, raw: bytes) -> None:
    response = client.post("/chat/completions", content=raw)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_json", "invalid_type")


def test_boundary_values_are_accepted(client: httpx.Client) -> None:
    body = chat_body(temperature=2, top_p=0, max_tokens=1)
    assert client.post("/chat/completions", json=body).status_code == 200


def test_unknown_model_is_404_model_not_found(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat_body(model="gpt-nope"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 401, "invalid_api_key"),
        ("", 401, "invalid_api_key"),
        ("Bearer", 401, "invalid_api_key"),
        (f"Bearer\t{GOOD_KEY}", 401, "invalid_api_key"),
        (f"Basic {GOOD_KEY}", 401, "invalid_api_key"),
        ("Bearer sk-unknown-secret", 401, "invalid_api_key"),
        ("Bearer sk-revoked", 403, "key_revoked"),
    ],
)
@pytest.mark.parametrize("path", ["/models", "/chat/completions"])
def test_bad_credentials_are_refused_without_echoing_the_key(
    sim: Any, authorization: str | None, status: int, code: str, path: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with httpx.Client(base_url=sim.base_url, timeout=5) as c:
        response = c.request(
            "GET" if path == "/models" else "POST", path, headers=headers, json=chat_body()
        )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert "sk-unknown-secret" not in response.text
    assert GOOD_KEY not in response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("key", [GOOD_KEY, "sk-second"])
def test_listed_keys_pass(sim: Any, key: str) -> None:
    response = httpx.get(f"{sim.base_url}/models", headers={"Authorization": f"bearer {key}"})
    assert response.status_code == 200


def test_any_bearer_passes_when_no_keys_are_configured(start_sim: Any) -> None:
    sim = start_sim({"models": {"m": {}}, "revoked_keys": ["sk-dead"]})
    ok = httpx.get(f"{sim.base_url}/models", headers={"Authorization": "Bearer anything"})
    dead = httpx.get(f"{sim.base_url}/models", headers={"Authorization": "Bearer sk-dead"})
    assert (ok.status_code, dead.status_code) == (200, 403)


def test_cors_preflight_allows_the_browser_request(client: httpx.Client) -> None:
    response = client.options(
        "/chat/completions",
        headers={
            "Origin": "https://dashboard.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "authorization, content-type"
    assert response.headers["access-control-expose-headers"] == EXPOSED


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/models", None),
        ("POST", "/chat/completions", chat_body()),
        ("POST", "/chat/completions", {"model": "m-ok"}),
        ("GET", "/nowhere", None),
    ],
)
def test_every_response_exposes_headers_and_a_request_id(
    client: httpx.Client, method: str, path: str, body: Any
) -> None:
    response = client.request(method, path, json=body)
    assert response.headers["access-control-expose-headers"] == EXPOSED
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-request-id"].startswith("req_")


def test_request_ids_are_unique(client: httpx.Client) -> None:
    ids = {client.get("/models").headers["x-request-id"] for _ in range(50)}
    assert len(ids) == 50


def test_chat_answers_carry_ratelimit_headers(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat_body())
    assert response.headers["x-ratelimit-limit"] == "10000"
    assert response.headers["x-ratelimit-remaining"] == "9999"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/models", 405), ("GET", "/chat/completions", 405), ("GET", "/v2/x", 404)],
)
def test_wrong_route_or_method_is_an_openai_error(
    client: httpx.Client, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert "error" in response.json()


def test_stats_count_requests_per_route_and_model(sim: Any, client: httpx.Client) -> None:
    client.get("/models")
    client.get("/models")
    client.post("/chat/completions", json=chat_body())
    client.post("/chat/completions", json=chat_body(model="m-errors"))
    stats = httpx.get(sim.base_url.removesuffix("/v1") + "/_sim/stats").json()
    assert stats["requests"] == {"models": 2, "chat": {"m-ok": 1, "m-errors": 1}}
    assert [e["status"] for e in stats["log"]][:3] == [200, 200, 200]
    last = stats["log"][-1]
    assert last["model"] == "m-errors" and last["fault"] == "error_rate"
    assert last["status"] in (500, 502, 503)
    assert set(last) == {"t", "path", "model", "status", "request_id", "fault"}
    assert sim.simulator.stats.snapshot()["requests"] == stats["requests"]


def test_reset_clears_stats(sim: Any, client: httpx.Client) -> None:
    client.get("/models")
    root = sim.base_url.removesuffix("/v1")
    assert httpx.post(f"{root}/_sim/reset").status_code == 200
    assert httpx.get(f"{root}/_sim/stats").json() == {
        "requests": {"models": 0, "chat": {}},
        "log": [],
    }
    assert sim.simulator.stats.models_requests == 0


def test_request_id_header_matches_the_log(sim: Any, client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat_body(), headers=AUTH)
    assert sim.simulator.stats.log()[-1]["request_id"] == response.headers["x-request-id"]
