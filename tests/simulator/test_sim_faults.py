"""Each scripted fault has its observable effect on a real HTTP client."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sim_helpers import chat_body

from monitor.simulator.faults import HTML_PAGE


def last_log(sim: Any) -> dict[str, Any]:
    return sim.simulator.stats.log()[-1]


def test_hang_never_answers_and_the_client_times_out(sim: Any, client: httpx.Client) -> None:
    with pytest.raises(httpx.ReadTimeout):
        client.post("/chat/completions", json=chat_body("m-hang"), timeout=0.3)
    assert last_log(sim)["fault"] == "hang"
    assert last_log(sim)["status"] is None


def test_reset_aborts_the_connection_mid_body(sim: Any, client: httpx.Client) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/chat/completions", json=chat_body("m-reset"))
    assert (last_log(sim)["fault"], last_log(sim)["status"]) == ("reset", 200)


def test_reset_sends_headers_and_part_of_the_body_first(client: httpx.Client) -> None:
    received = b""
    with client.stream("POST", "/chat/completions", json=chat_body("m-reset")) as response:
        assert response.status_code == 200
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            for chunk in response.iter_raw():
                received += chunk
    assert 0 < len(received) < int(response.headers["content-length"])


def test_error_rate_answers_a_random_5xx(client: httpx.Client) -> None:
    statuses = {
        client.post("/chat/completions", json=chat_body("m-errors")).status_code for _ in range(30)
    }
    assert statuses <= {500, 502, 503} and len(statuses) > 1


def test_server_error_uses_the_configured_status(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat_body("m-server-error"))
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "server_error"


def test_malformed_json_is_a_200_that_does_not_parse(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat_body("m-malformed"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content.startswith(b'{"id":')
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_html_200_is_a_maintenance_page(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat_body("m-html"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.content == HTML_PAGE


@pytest.mark.parametrize(
    ("model", "check"),
    [
        ("m-no-usage", lambda b: "usage" not in b and b["choices"]),
        ("m-no-choices", lambda b: b["choices"] == [] and b["usage"]["total_tokens"] > 0),
        ("m-error-200", lambda b: b["error"]["code"] == "upstream_error" and "choices" not in b),
    ],
)
def test_shape_faults_answer_200_with_a_broken_document(
    client: httpx.Client, model: str, check: Any
) -> None:
    response = client.post("/chat/completions", json=chat_body(model))
    assert response.status_code == 200
    assert check(response.json())


def test_slow_drip_sends_the_body_byte_by_byte(sim: Any, client: httpx.Client) -> None:
    chunks = []
    with client.stream("POST", "/chat/completions", json=chat_body("m-drip")) as response:
        chunks = list(response.iter_raw())
    body = b"".join(chunks)
    assert json.loads(body)["object"] == "chat.completion"
    # Each byte is its own write; the client may coalesce a few, never most.
    assert len(chunks) > len(body) // 4
    assert last_log(sim)["fault"] == "slow_drip"


def test_oversized_streams_a_valid_body_of_the_configured_size(client: httpx.Client) -> None:
    size = 0
    chunks = 0
    with client.stream("POST", "/chat/completions", json=chat_body("m-huge")) as response:
        assert response.headers["content-length"] == "3000000"
        for chunk in response.iter_raw():
            size += len(chunk)
            chunks += 1
    assert size == 3_000_000
    assert chunks > 1


def test_oversized_body_parses_as_json(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat_body("m-huge"))
    assert len(response.json()["padding"]) > 2_900_000


def test_client_abandoning_an_oversized_body_leaves_the_server_healthy(
    client: httpx.Client,
) -> None:
    with client.stream("POST", "/chat/completions", json=chat_body("m-huge")) as response:
        next(response.iter_raw())
    assert client.post("/chat/completions", json=chat_body()).status_code == 200


def test_fault_draws_follow_the_configured_rates(start_sim: Any) -> None:
    sim = start_sim(
        {
            "seed": 1,
            "models": {"m": {"error_rate": 0.2, "faults": [{"kind": "html_200", "rate": 0.3}]}},
        }
    )
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer k"}) as c:
        for _ in range(400):
            c.post("/chat/completions", json=chat_body("m"))
    faults = [e["fault"] for e in sim.simulator.stats.log()]
    assert 40 <= faults.count("error_rate") <= 120
    assert 80 <= faults.count("html_200") <= 160
    assert faults.count(None) >= 140


def test_models_endpoint_faults_apply_to_the_listing(start_sim: Any) -> None:
    sim = start_sim(
        {"models": {"m": {}}, "models_faults": [{"kind": "malformed_json", "rate": 1.0}]}
    )
    response = httpx.get(f"{sim.base_url}/models", headers={"Authorization": "Bearer k"})
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
