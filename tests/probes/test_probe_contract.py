"""The contract probe against the simulator on a socket: each documented check holds
on a faithful gateway, and each one the simulator breaks fails alone (issue 18, point 3)."""

from __future__ import annotations

from typing import Any

import pytest
from gwfixtures import MakeContext, ServeFn, reply

from monitor.outcome import Outcome
from monitor.probes import PROBES
from monitor.probes.contract import CHECKS, KIND, probe
from monitor.simulator.scenario import CONTRACT_BREAKS
from monitor.simulator.server import RunningSimulator


def test_the_registry_and_the_simulator_know_every_check() -> None:
    assert PROBES[KIND] is probe
    assert set(CONTRACT_BREAKS) == set(CHECKS)


async def _run_all(sim: RunningSimulator, make_ctx: MakeContext) -> dict[str, Any]:
    ctx = make_ctx(sim.base_url, name="gw")
    return {check: await probe(ctx, check) for check in CHECKS}


async def test_a_faithful_gateway_passes_every_check(start_sim: Any, make_ctx: MakeContext) -> None:
    results = await _run_all(start_sim(contract_breaks=[]), make_ctx)
    assert {c: (r.outcome, r.error) for c, r in results.items()} == {
        c: (Outcome.OK, None) for c in CHECKS
    }
    for check, result in results.items():
        assert (result.probe, result.model, result.target) == (KIND, check, "gw")
        assert result.request_id is not None  # the simulator sends one on every answer
    # The invalid requests were refused, so nothing was billed.
    assert all(r.prompt_tokens is None for r in results.values())


EXPECTED_ERRORS = {
    "cors_preflight": "HTTP 405: the CORS preflight was not answered 2xx",
    "cors_expose_headers": "Access-Control-Expose-Headers lacks x-request-id, x-ratelimit-limit",
    "models_shape": 'data[0].object is not "model"',
    "request_id": "an error answer has no x-request-id",
    "invalid_temperature": "temperature 3 was accepted (a completion, maybe billed)",
    "invalid_top_p": "top_p 2 was accepted",
    "invalid_max_tokens": "max_tokens 0 was accepted",
    "empty_messages": "messages [] was accepted",
}


@pytest.mark.parametrize("broken", CHECKS)
async def test_each_break_fails_its_check_alone(
    broken: str, start_sim: Any, make_ctx: MakeContext
) -> None:
    results = await _run_all(start_sim(contract_breaks=[broken]), make_ctx)
    failed = {c: r for c, r in results.items() if r.outcome is not Outcome.OK}
    assert list(failed) == [broken]
    assert failed[broken].outcome is Outcome.INVALID_RESPONSE
    assert EXPECTED_ERRORS[broken] in (failed[broken].error or "")


async def test_a_5xx_refusal_is_a_server_error_and_no_answer_a_transport_outcome(
    serve: ServeFn, make_ctx: MakeContext
) -> None:
    crashing = serve(reply(500, {"error": {"message": "boom"}}))
    result = await probe(make_ctx(crashing.base_url, models=("m1",)), "invalid_top_p")
    assert result.outcome is Outcome.SERVER_ERROR
    assert result.error == "HTTP 500: top_p 2 was not refused with a 4xx"
    gone = await probe(make_ctx("http://127.0.0.1:9/v1"), "cors_preflight")
    assert gone.outcome is Outcome.CONNECTION_ERROR


async def test_a_wildcard_does_not_allow_the_authorization_header(
    serve: ServeFn, make_ctx: MakeContext
) -> None:
    headers = {"access-control-allow-origin": "*", "access-control-allow-headers": "*"}
    server = serve(reply(204, b"", headers=headers))
    result = await probe(make_ctx(server.base_url), "cors_preflight")
    assert result.outcome is Outcome.INVALID_RESPONSE
    assert result.error == "HTTP 204: Access-Control-Allow-Headers does not name authorization"
    sent = server.requests[0]
    assert sent.method == "OPTIONS" and "authorization" not in sent.headers
    assert sent.headers["access-control-request-method"] == "POST"
