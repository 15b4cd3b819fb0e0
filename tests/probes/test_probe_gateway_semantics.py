"""Rate-limit header families and model substitution, against the simulator on a socket.

The simulator's bucket is the truth (limit 60, refilled at 1 a second, one
token per chat request); ``ratelimit_headers`` words it in one family.
Whatever the family, the chat probe's result must hold the same figures:
``ratelimit_limit`` / ``ratelimit_remaining`` the requests kind, the
``_tokens`` fields the tokens kind (the simulator scales requests by 1,000).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from gwfixtures import PROBE_KEY, MakeContext, ServeFn, reply

from monitor.daemon.substitution_log import SubstitutionLog
from monitor.outcome import Outcome
from monitor.probes.chat import probe
from monitor.probes.contract import probe as contract_probe
from monitor.simulator.ratelimit_headers import FAMILIES, go_duration

BUCKET = {"limit": 60, "per_s": 1.0}


def _start(start_sim: Any, **scenario: Any) -> Any:
    return start_sim(ratelimit=BUCKET, **scenario)


# family -> (requests limit, remaining, reset_s), (tokens limit, remaining, reset_s), invalid
EXPECTED: dict[str, tuple[tuple[Any, ...], tuple[Any, ...], int]] = {
    "nexorouter": ((60, 59, None), (None, None, None), 0),
    "epoch": ((60, 59, "near 1"), (None, None, None), 0),
    "openai": ((60, 59, 1.0), (60_000, 59_000, 1.0), 0),
    "ietf": ((60, 59, 1.0), (None, None, None), 0),
    "ietf-structured": ((60, 59, 1.0), (60_000, 59_000, 1.0), 0),
    "invalid": ((None, None, None), (None, None, None), 4),
}


def test_every_family_of_the_simulator_is_covered() -> None:
    assert set(EXPECTED) == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
async def test_each_family_fills_the_same_fields(
    family: str, start_sim: Any, make_ctx: MakeContext
) -> None:
    sim = _start(start_sim, ratelimit_headers=family)
    result = await probe(make_ctx(sim.base_url), "sim-a")
    assert result.outcome is Outcome.OK  # an unparsable header never fails the probe
    requests = (result.ratelimit_limit, result.ratelimit_remaining, result.ratelimit_reset_s)
    tokens = (
        result.ratelimit_limit_tokens,
        result.ratelimit_remaining_tokens,
        result.ratelimit_reset_tokens_s,
    )
    want_requests, want_tokens, invalid = EXPECTED[family]
    if want_requests[2] == "near 1":  # an epoch second, read against the wall clock
        assert result.ratelimit_reset_s is not None and 0.0 <= result.ratelimit_reset_s <= 2.0
        requests, want_requests = requests[:2], want_requests[:2]
    assert requests == want_requests
    assert tokens == want_tokens
    assert result.ratelimit_invalid == invalid
    assert result.to_json()["ratelimit_limit"] == want_requests[0]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (1.0, "1s"), (1.5, "1.5s"), (360.0, "6m0s"), (3723.5, "1h2m3.5s")],
)
def test_the_simulator_words_durations_as_go_does(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@pytest.mark.parametrize(
    ("answer_as", "substituted_by"),
    [
        (None, None),  # the model asked for
        ("sim-a-2024-08-06", None),  # a dated version of it
        ("nexo/sim-a", None),  # provider-prefixed
        ("sim-cheap", "sim-cheap"),  # another model: a substitution
    ],
)
async def test_an_answer_from_another_model_is_recorded_as_a_substitution(
    answer_as: str | None, substituted_by: str | None, start_sim: Any, make_ctx: MakeContext
) -> None:
    spec = {} if answer_as is None else {"answer_as": answer_as}
    sim = _start(start_sim, models={"sim-a": spec})
    result = await probe(make_ctx(sim.base_url), "sim-a")
    assert result.outcome is Outcome.OK  # the gateway answered; what answered is the news
    assert result.response_model == (answer_as or "sim-a")
    assert result.substituted_by == substituted_by
    assert result.to_json()["substituted_by"] == substituted_by


async def test_the_log_says_it_once_per_change(
    start_sim: Any, make_ctx: MakeContext, caplog: pytest.LogCaptureFixture
) -> None:
    cheap = _start(start_sim, models={"sim-a": {"answer_as": "sim-cheap"}})
    other = _start(start_sim, models={"sim-a": {"answer_as": "sim-other"}})
    honest = _start(start_sim, models={"sim-a": {}})
    now = [0.0]
    sink = SubstitutionLog(clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="nexomon.probe")
    for sim in (cheap, cheap, cheap, other, honest, honest):
        sink(await probe(make_ctx(sim.base_url, name="gw"), "sim-a"))
        now[0] += 60.0
    lines = [r.getMessage() for r in caplog.records if r.name == "nexomon.probe"]
    assert lines == [
        "gw/chat/sim-a is answered by sim-cheap (substitution)",
        "gw/chat/sim-a is answered by sim-other (substitution)",
        "gw/chat/sim-a is answered by sim-a again after 1m",
    ]


async def test_a_hostile_answered_model_is_stored_clean(
    serve: ServeFn, make_ctx: MakeContext
) -> None:
    # The key echoed back (escaped, as JSON may), a terminal escape, a newline and a
    # lone surrogate in "model": substituted_by holds one clean line, no key.
    hostile = f"evil\\u001b[31m\\n{PROBE_KEY}\\ud800-model"
    body = (
        '{"model": "' + hostile + '", "choices": [{"index": 0, "message": {"role": "assistant",'
        ' "content": "OK"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3,'
        ' "completion_tokens": 1}}'
    )
    result = await probe(make_ctx(serve(reply(200, body.encode())).base_url), "sim-a")
    assert result.outcome is Outcome.OK
    substitute = result.substituted_by
    assert substitute is not None and substitute == result.response_model
    assert PROBE_KEY not in substitute and "[REDACTED]" in substitute
    assert not any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in substitute)
    substitute.encode("utf-8")  # valid: a database column can hold it


async def test_hostile_cors_answers_are_cleaned_and_never_fail_loudly(
    serve: ServeFn, make_ctx: MakeContext
) -> None:
    headers = {
        "access-control-allow-origin": f"* {PROBE_KEY}",
        "access-control-allow-headers": "authorization,\x1b[2J content-type",
        "access-control-expose-headers": "x" * 5000,
    }
    ctx = make_ctx(serve(reply(204, b"", headers=headers)).base_url)
    exchange = await ctx.client.request("OPTIONS", "/chat/completions")
    cors = dict(exchange.cors)
    assert PROBE_KEY not in cors["access-control-allow-origin"]
    assert "\x1b" not in cors["access-control-allow-headers"]
    assert len(cors["access-control-expose-headers"]) <= 512
    checked = await contract_probe(ctx, "cors_expose_headers")  # a 204 to GET /models
    assert checked.outcome is Outcome.INVALID_RESPONSE and PROBE_KEY not in (checked.error or "")
