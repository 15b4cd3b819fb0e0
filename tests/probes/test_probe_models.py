"""The models probe over real sockets: shape checks, ids, failures as data."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from gwfixtures import PROBE_KEY as KEY
from gwfixtures import PROBE_LOCATION as LOCATION
from gwfixtures import MakeContext, ServeFn, closed_port, reply

from monitor.outcome import Outcome
from monitor.probes import PROBES
from monitor.probes.models import check_shape, probe


def listing(*ids: Any) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}


def test_registry_names_the_probe_kinds() -> None:
    assert PROBES["models"] is probe
    assert set(PROBES) == {"models", "chat", "contract", "stream"}


async def test_listing_gives_every_id_once_in_order(serve: ServeFn, make_ctx: MakeContext) -> None:
    body = listing("b-model", "a-model", "b-model", "c-model")
    server = serve(reply(200, body, headers={"x-request-id": "rid-9", "x-ratelimit-limit": "100"}))
    result = await probe(make_ctx(server.base_url, name="nexo"), "")
    assert result.outcome is Outcome.OK and result.error is None
    assert result.model_ids == ("b-model", "a-model", "c-model")
    assert (result.target, result.probe, result.model, result.location) == (
        "nexo", "models", "", LOCATION,
    )  # fmt: skip
    assert (result.http_status, result.request_id, result.ratelimit_limit) == (200, "rid-9", 100)
    assert result.started_at.tzinfo is UTC
    assert result.duration_s is not None and result.duration_s > 0
    assert result.phases.connect > 0 and result.phases.resolve == 0.0  # an IP literal
    assert server.requests[0].path == "/v1/models"


async def test_empty_listing_is_ok(serve: ServeFn, make_ctx: MakeContext) -> None:
    result = await probe(make_ctx(serve(reply(200, listing())).base_url), "")
    assert result.outcome is Outcome.OK and result.model_ids == ()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "expected a JSON object, got list"),
        ({"data": []}, 'object is not "list"'),
        ({"object": "list", "data": {"id": "x"}}, "data is not a list"),
        # No valid id left: the first problem is named (one bad entry among
        # valid ones is skipped instead, see the test below).
        ({"object": "list", "data": ["b"]}, "data[0] is not an object"),
        (listing(7), "data[0].id is not a string"),
        (listing(None, "  "), "data[0].id is not a string"),
        ({"object": "list", "data": [{"object": "model"}]}, "data[0].id is not a string"),
        (listing("  "), "data[0].id is empty"),
        ({"object": "list", "data": [{"id": ""}, 3, {"id": 7}]}, "data[0].id is empty"),
    ],
)
async def test_bad_shapes_are_invalid_responses_naming_the_problem(
    serve: ServeFn, make_ctx: MakeContext, body: Any, problem: str
) -> None:
    result = await probe(make_ctx(serve(reply(200, body)).base_url), "")
    assert result.outcome is Outcome.INVALID_RESPONSE
    assert result.error == f"unexpected shape: {problem}"
    assert result.model_ids is None and result.http_status == 200
    assert check_shape(body) == problem


@pytest.mark.parametrize(
    ("data", "ids", "skipped", "detail"),
    [
        ([{"id": "a"}, "b"], ("a",), 1, "1 invalid entry skipped (data[1] is not an object)"),
        (
            [{"id": "a"}, {"id": ""}, {"id": 7}, None, {"id": "b"}, {"id": "a"}],
            ("a", "b"),
            3,
            "3 invalid entries skipped (first: data[1].id is empty)",
        ),
        (
            [{"id": "  "}, {"object": "model"}, {"id": "x"}],
            ("x",),
            2,
            "2 invalid entries skipped (first: data[0].id is empty)",
        ),
    ],
)
async def test_invalid_entries_are_skipped_and_counted(
    serve: ServeFn,
    make_ctx: MakeContext,
    data: list[Any],
    ids: tuple[str, ...],
    skipped: int,
    detail: str,
) -> None:
    body = {"object": "list", "data": data}
    result = await probe(make_ctx(serve(reply(200, body)).base_url), "")
    assert result.outcome is Outcome.OK
    assert result.model_ids == ids
    assert result.invalid_entries == skipped
    assert result.error == detail
    assert check_shape(body) is None
    assert result.to_json()["invalid_entries"] == result.invalid_entries


async def test_a_clean_listing_counts_no_invalid_entries(
    serve: ServeFn, make_ctx: MakeContext
) -> None:
    result = await probe(make_ctx(serve(reply(200, listing("a", "b"))).base_url), "")
    assert (result.invalid_entries, result.error) == (0, None)


@pytest.mark.parametrize(
    ("answer", "outcome", "error"),
    [
        (reply(401, {"error": {"message": f"bad key {KEY}"}}), Outcome.AUTH_ERROR, "HTTP 401"),
        (reply(503, {"error": {"message": "down"}}), Outcome.SERVER_ERROR, "HTTP 503: down"),
        (
            reply(200, "<html></html>", content_type="text/html"),
            Outcome.INVALID_RESPONSE,
            "HTTP 200: body is not JSON (text/html)",
        ),
    ],
)
async def test_failures_are_results_not_exceptions(
    serve: ServeFn, make_ctx: MakeContext, answer: Any, outcome: Outcome, error: str
) -> None:
    result = await probe(make_ctx(serve(answer).base_url), "")
    assert result.outcome is outcome and result.error is not None
    assert result.error.startswith(error)
    assert result.model_ids is None and not result.success
    assert KEY not in repr(result)


async def test_unreachable_gateway_is_a_connection_error(make_ctx: MakeContext) -> None:
    result = await probe(make_ctx(f"http://127.0.0.1:{closed_port()}/v1"), "")
    assert result.outcome is Outcome.CONNECTION_ERROR
    assert (result.error, result.http_status, result.model_ids) == (
        "connection refused",
        None,
        None,
    )
