"""classify(): the outcome table, driven by real answers over real sockets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from gwfixtures import (  # noqa: F401 - the fixture
    ServeFn,
    answer_garbage,
    closed_port,
    drip,
    reply,
    reset_mid_body,
    serve_fixture,
)

from monitor.gateway import exchange
from monitor.gateway.classify import FAILURE_OUTCOMES, classify, gateway_message, status_outcome
from monitor.gateway.client import GatewayClient
from monitor.gateway.exchange import Exchange
from monitor.outcome import Outcome

OK_BODY = {"object": "list", "data": []}
HTML = "<!doctype html><html><body>Welcome</body></html>"
LONG = "overloaded " * 40


def needs_list(body: Any) -> str | None:
    return None if isinstance(body, dict) and "data" in body else "data is missing"


# (id, how to answer, outcome, words the error must contain; None = no error)
CASES: list[tuple[str, Any, Outcome, str | None]] = [
    ("ok", reply(200, OK_BODY), Outcome.OK, None),
    ("401", reply(401, {"error": {"message": "bad key"}}), Outcome.AUTH_ERROR, "HTTP 401: bad key"),
    ("403", reply(403, b""), Outcome.AUTH_ERROR, "HTTP 403"),
    ("404", reply(404, {"detail": "Not Found"}), Outcome.CLIENT_ERROR, "HTTP 404: Not Found"),
    ("400", reply(400, {"error": "bad max_tokens"}), Outcome.CLIENT_ERROR,
     "HTTP 400: bad max_tokens"),
    ("429-seconds", reply(429, b"", headers={"retry-after": "7"}), Outcome.RATE_LIMITED,
     "HTTP 429"),
    (
        "429-date",
        reply(429, b"", headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        Outcome.RATE_LIMITED,
        "HTTP 429",
    ),
    ("500", reply(500, "Internal Server Error", content_type="text/plain"), Outcome.SERVER_ERROR,
     "HTTP 500"),
    ("502-html", reply(502, HTML, content_type="text/html"), Outcome.SERVER_ERROR, "HTTP 502"),
    (
        "503",
        reply(503, {"error": {"message": "upstream overloaded", "code": 503}}),
        Outcome.SERVER_ERROR,
        "HTTP 503: upstream overloaded",
    ),
    ("302", reply(302, b"", headers={"location": "/login"}), Outcome.INVALID_RESPONSE,
     "HTTP 302 (unexpected status)"),
    ("html-200", reply(200, HTML, content_type="text/html"), Outcome.INVALID_RESPONSE,
     "HTTP 200: body is not JSON (text/html)"),
    ("malformed-200", reply(200, b'{"data": [1,'), Outcome.INVALID_RESPONSE, "malformed JSON"),
    ("empty-200", reply(200, b""), Outcome.INVALID_RESPONSE, "HTTP 200: empty body"),
    (
        "error-in-200",
        reply(200, {"error": {"message": "model is warming up"}, "data": []}),
        Outcome.INVALID_RESPONSE,
        "HTTP 200 with an error: model is warming up",
    ),
    ("wrong-shape", reply(200, {"object": "list"}), Outcome.INVALID_RESPONSE,
     "unexpected shape: data is missing"),
    ("too-large", reply(200, b"z" * 5000), Outcome.INVALID_RESPONSE, "larger than 1024 bytes"),
    ("reset", reset_mid_body(), Outcome.CONNECTION_ERROR, "connection reset by peer"),
    ("drip", drip(b"{}" * 50, 0.2), Outcome.TIMEOUT, "timed out after 0.5s while reading the body"),
    ("slow", reply(200, OK_BODY, delay=2.0), Outcome.TIMEOUT,
     "timed out after 0.5s while waiting for the response headers"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "outcome", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_answers_classify_as_documented(
    serve: ServeFn, answer: Any, outcome: Outcome, error: str | None
) -> None:
    server = serve(answer)
    async with GatewayClient(server.base_url, "k-123456", timeout=0.5, max_body_bytes=1024) as gw:
        got_outcome, got_error = classify(await gw.list_models(), needs_list)
    assert got_outcome is outcome
    if error is None:
        assert got_error is None
    else:
        assert got_error is not None and error in got_error
        assert "\n" not in got_error and len(got_error) <= 200


@pytest.mark.parametrize(
    ("base_url", "error"),
    [
        (f"http://127.0.0.1:{closed_port()}/v1", "connection refused"),
        ("http://nonexistent.invalid/v1", "DNS lookup failed for nonexistent.invalid"),
    ],
    ids=["refused", "dns"],
)
async def test_unreachable_gateways_are_connection_errors(base_url: str, error: str) -> None:
    async with GatewayClient(base_url, "k-123456", timeout=2.0) as gw:
        outcome, got = classify(await gw.chat("m", "p", 1), needs_list)
    assert outcome is Outcome.CONNECTION_ERROR
    assert got is not None and got.startswith(error)


async def test_tls_failure_is_a_connection_error(serve: ServeFn) -> None:
    server = serve(raw=answer_garbage)
    async with GatewayClient(
        server.base_url.replace("http:", "https:"), "k-123456", timeout=2
    ) as gw:
        outcome, error = classify(await gw.list_models())
    assert outcome is Outcome.CONNECTION_ERROR and error is not None
    assert error.startswith("TLS handshake failed")


def _exchange(status: int | None, body: Any = None, **kw: Any) -> Exchange:
    return Exchange("GET", "/models", datetime.now(UTC), status, body, **kw)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, None), (204, None), (299, None), (101, Outcome.INVALID_RESPONSE),
     (301, Outcome.INVALID_RESPONSE), (304, Outcome.INVALID_RESPONSE),
     (400, Outcome.CLIENT_ERROR), (401, Outcome.AUTH_ERROR), (403, Outcome.AUTH_ERROR),
     (404, Outcome.CLIENT_ERROR), (408, Outcome.CLIENT_ERROR), (429, Outcome.RATE_LIMITED),
     (499, Outcome.CLIENT_ERROR), (500, Outcome.SERVER_ERROR), (502, Outcome.SERVER_ERROR),
     (504, Outcome.SERVER_ERROR), (599, Outcome.SERVER_ERROR), (600, Outcome.INVALID_RESPONSE)],
)  # fmt: skip
def test_status_table(status: int, outcome: Outcome | None) -> None:
    assert status_outcome(status) is outcome


def test_every_gateway_failure_kind_has_an_outcome() -> None:
    kinds = {v for k, v in vars(exchange).items() if k.startswith("FAILURE_")}
    assert kinds == set(FAILURE_OUTCOMES)


@pytest.mark.parametrize(
    ("failure", "outcome"),
    [("timeout", Outcome.TIMEOUT), ("connection", Outcome.CONNECTION_ERROR),
     ("too_large", Outcome.INVALID_RESPONSE), ("decoding", Outcome.INVALID_RESPONSE)],
)  # fmt: skip
def test_transport_failures_win_over_the_status(failure: str, outcome: Outcome) -> None:
    exchange = _exchange(200, {"data": []}, failure=failure, failure_detail="what happened")
    assert classify(exchange) == (outcome, "what happened")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"message": "upstream overloaded", "type": "server"}}, "upstream overloaded"),
        ({"error": {"code": "model_not_found"}}, "model_not_found"),
        ({"error": "quota exceeded"}, "quota exceeded"),
        ({"message": "nope"}, "nope"),
        ({"detail": "Not Found"}, "Not Found"),
        ({"error": {"message": "line one\nline two\x00"}}, "line one line two"),
        ({"error": {"message": 42}}, None),
        ([1, 2], None),
        (None, None),
    ],
)
def test_gateway_message_forms(body: Any, message: str | None) -> None:
    assert gateway_message(body) == message


def test_long_gateway_messages_are_cut() -> None:
    _, error = classify(_exchange(503, {"error": {"message": LONG}}))
    assert error is not None and error.startswith("HTTP 503: overloaded")
    assert len(error) <= len("HTTP 503: ") + 120 and error.endswith("…")


def test_shape_check_runs_only_on_clean_2xx_bodies() -> None:
    calls: list[Any] = []

    def spy(body: Any) -> str | None:
        calls.append(body)
        return None

    assert classify(_exchange(500, {"data": 1}), spy)[0] is Outcome.SERVER_ERROR
    assert classify(_exchange(200, {"error": {"message": "x"}}), spy)[0] is Outcome.INVALID_RESPONSE
    assert classify(_exchange(200, None, parse_error="empty body"), spy)[0] is (
        Outcome.INVALID_RESPONSE
    )
    assert calls == []
    assert classify(_exchange(200, {"data": []}), spy) == (Outcome.OK, None)
    assert calls == [{"data": []}]
