"""Every outcome class, forced by a simulator fault at rate 1.0, over a real socket.

The table below drives ``run_round`` (the code behind ``nexomon probe``) in
process, built the way the CLI builds it (``config.load`` of a file, then
``build_runner``), against the simulator on 127.0.0.1. One more test runs
the same faults through ``nexomon probe --json`` as a subprocess, all in
one round, so the CLI's own path sees every class too.

The bare-socket versions of reset-mid-body and slow drip live in
tests/gateway/test_gateway.py; here the simulator's own faults produce them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cli_helpers import nexomon, sim_request_ids, target, write_config
from gwfixtures import closed_port

from monitor.config.model import load
from monitor.daemon.probe_round import run_round
from monitor.daemon.root import build_runner
from monitor.logs import SecretScrubber
from monitor.results import ProbeResult
from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

GOOD = "sk-outcomes-good-0123456789"
WRONG = "sk-outcomes-wrong-0123456789"
REVOKED = "sk-outcomes-revoked-0123456789"
KEYS = {"good": GOOD, "wrong": WRONG, "revoked": REVOKED}
RETRY_AFTER_S = 100.0  # the m-limited bucket refills one request per 100 s


def fault(kind: str, **params: object) -> dict[str, object]:
    return {"faults": [{"kind": kind, "rate": 1.0, **params}]}


MODELS: dict[str, dict[str, object]] = {
    "m-ok": {},
    "m-limited": {"ratelimit": {"limit": 1, "per_s": 1 / RETRY_AFTER_S}},
    "m-500": fault("server_error", status=500),
    "m-502": fault("server_error", status=502),
    "m-503": fault("server_error", status=503),
    "m-hang": fault("hang"),
    "m-reset": fault("reset"),
    "m-drip-slow": fault("slow_drip", interval_s=0.3),
    "m-drip-fast": fault("slow_drip", interval_s=0.0),
    "m-malformed": fault("malformed_json"),
    "m-html": fault("html_200"),
    "m-no-usage": fault("missing_usage"),
    "m-error-200": fault("error_in_200"),
    "m-no-choices": fault("empty_choices"),
    "m-huge": fault("oversized", size_bytes=300_000),
}


def scenario(retry_after_format: str) -> Scenario:
    return Scenario.from_dict(
        {
            "name": f"outcomes-{retry_after_format}",
            "seed": 5,
            "api_keys": [GOOD],
            "revoked_keys": [REVOKED],
            "retry_after_format": retry_after_format,
            "models": MODELS,
        }
    )


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, RunningSimulator]]:
    with (
        RunningSimulator(scenario("seconds")) as seconds,
        RunningSimulator(scenario("http-date")) as http_date,
    ):
        yield {"seconds": seconds, "http-date": http_date}


@pytest.fixture
def fresh(sims: dict[str, RunningSimulator]) -> dict[str, RunningSimulator]:
    for sim in sims.values():
        sim.simulator.reset()
    return sims


@dataclass(frozen=True)
class Case:
    model: str
    outcome: str
    status: int | None
    error: str | None  # a fragment of the error line; None: no error at all
    key: str = "good"
    sim: str = "seconds"
    timeout: str = "5s"
    drain: bool = False  # spend the model's one token first, so the probe gets 429
    closed: bool = False  # point the target at a port nothing listens on


HEADERS_WAIT = "while waiting for the response headers"
BODY_READ = "while reading the body"
CASES = {
    "ok": Case("m-ok", "ok", 200, None),
    "ok-slow-drip-in-time": Case("m-drip-fast", "ok", 200, None),
    "auth-401": Case("m-ok", "auth_error", 401, "HTTP 401: Incorrect API key", key="wrong"),
    "auth-403": Case("m-ok", "auth_error", 403, "HTTP 403: This API key has been revoked",
                     key="revoked"),
    "rate-limited-seconds": Case("m-limited", "rate_limited", 429, "HTTP 429", drain=True),
    "rate-limited-http-date": Case("m-limited", "rate_limited", 429, "HTTP 429", drain=True,
                                   sim="http-date"),
    "client-error-404": Case("m-unlisted", "client_error", 404, "HTTP 404"),
    "server-error-500": Case("m-500", "server_error", 500, "HTTP 500"),
    "server-error-502": Case("m-502", "server_error", 502, "HTTP 502"),
    "server-error-503": Case("m-503", "server_error", 503, "HTTP 503"),
    "timeout-hang": Case("m-hang", "timeout", None, f"timed out after 0.5s {HEADERS_WAIT}",
                         timeout="0.5s"),
    "timeout-slow-drip": Case("m-drip-slow", "timeout", 200, f"timed out after 1s {BODY_READ}",
                              timeout="1s"),
    "connection-refused": Case("m-ok", "connection_error", None, "connection refused",
                               closed=True),
    "connection-reset-mid-body": Case("m-reset", "connection_error", 200, BODY_READ),
    "invalid-malformed-json": Case("m-malformed", "invalid_response", 200,
                                   "HTTP 200: malformed JSON"),
    "invalid-html-200": Case("m-html", "invalid_response", 200, "HTTP 200: body is not JSON"),
    "invalid-missing-usage": Case("m-no-usage", "invalid_response", 200, "usage is missing"),
    "invalid-error-in-200": Case("m-error-200", "invalid_response", 200,
                                 "HTTP 200 with an error: upstream provider error"),
    "invalid-empty-choices": Case("m-no-choices", "invalid_response", 200,
                                  "choices is missing or empty"),
    "invalid-oversized": Case("m-huge", "invalid_response", 200, "larger than 65536 bytes"),
}  # fmt: skip


async def probe_round_once(
    directory: Path, base_url: str, key: str, model: str, timeout: str
) -> list[ProbeResult]:
    """One ``nexomon probe`` round, built as the CLI builds it, for ``model``."""
    (directory / "api.key").write_text(key + "\n")
    path = write_config(
        directory,
        [
            target(
                "t",
                base_url,
                api_key_file="api.key",
                models=[model],
                timeout=timeout,
                max_body_bytes=65536,
            )
        ],
    )
    config = load(path)
    runner, clients = build_runner(config, SecretScrubber())
    try:
        results = await run_round(runner, config)
    finally:
        for client in clients.values():
            await client.aclose()
    assert all(r is not None for r in results), "a probe crashed"
    return results  # type: ignore[return-value]


def drain(sim: RunningSimulator, model: str) -> None:
    """Spend the bucket of (GOOD, model) with a request of our own."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {GOOD}"}
    answer = httpx.post(f"{sim.base_url}/chat/completions", json=body, headers=headers)
    assert answer.status_code == 200


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_each_fault_gives_its_outcome(
    fresh: dict[str, RunningSimulator], tmp_path: Path, case: Case
) -> None:
    sim = fresh[case.sim]
    if case.drain:
        drain(sim, case.model)
    base_url = f"http://127.0.0.1:{closed_port()}/v1" if case.closed else sim.base_url
    listing, chat = await probe_round_once(
        tmp_path, base_url, KEYS[case.key], case.model, case.timeout
    )

    assert (chat.probe, chat.model) == ("chat", case.model)
    assert chat.outcome.value == case.outcome, chat
    assert chat.success is (case.outcome == "ok")
    assert chat.http_status == case.status
    if case.error is None and case.outcome == "ok":
        assert chat.error is None
    elif case.error is not None:
        assert chat.error is not None and case.error in chat.error, chat.error
    else:
        assert chat.error  # failures always say why
    # Auth and connection trouble hit the listing too; chat faults do not.
    expected_listing = case.outcome if case.key != "good" or case.closed else "ok"
    assert listing.outcome.value == expected_listing, listing
    if not case.closed:
        issued = sim_request_ids(sim.simulator.stats)
        for result in (listing, chat):
            if result.http_status is not None:
                assert result.request_id in issued
    if case.outcome == "ok":
        assert chat.prompt_tokens and chat.completion_tokens
        assert chat.total_tokens == chat.prompt_tokens + chat.completion_tokens
    if case.outcome == "rate_limited":
        # Both header forms become seconds; the HTTP-date form has 1 s resolution.
        assert chat.retry_after_s is not None
        assert RETRY_AFTER_S - 3 <= chat.retry_after_s <= RETRY_AFTER_S + 1
        assert chat.ratelimit_limit == 1 and chat.ratelimit_remaining == 0


@pytest.mark.parametrize(
    ("sim_name", "pattern"),
    [("seconds", r"^\d+$"), ("http-date", r"^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$")],
)
def test_the_simulator_sends_the_retry_after_form_it_is_told(
    fresh: dict[str, RunningSimulator], sim_name: str, pattern: str
) -> None:
    # Pins the premise of the two rate-limited cases above: each form really was on the wire.
    sim = fresh[sim_name]
    drain(sim, "m-limited")
    body = {"model": "m-limited", "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(
        f"{sim.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {GOOD}"},
    )
    assert answer.status_code == 429
    assert re.match(pattern, answer.headers["retry-after"]), answer.headers["retry-after"]


def test_every_outcome_class_in_one_nexomon_probe_round(
    fresh: dict[str, RunningSimulator], tmp_path: Path
) -> None:
    seconds, http_date = fresh["seconds"], fresh["http-date"]
    drain(seconds, "m-limited")
    drain(http_date, "m-limited")
    chat_faults = ["m-ok", "m-unlisted", "m-500", "m-hang", "m-reset", "m-drip-slow"]
    chat_faults += ["m-malformed", "m-html", "m-no-usage", "m-error-200", "m-no-choices"]
    chat_faults += ["m-huge"]
    common = {"api_key_env": "NX_GOOD", "timeout": "1s", "max_body_bytes": 65536}
    targets = [
        target("faults", seconds.base_url, models=chat_faults, **common),
        target("limited-s", seconds.base_url, models=["m-limited"], **common),
        target("limited-date", http_date.base_url, models=["m-limited"], **common),
        target("wrong-key", seconds.base_url, models=["m-ok"], api_key_env="NX_WRONG"),
        target("revoked", seconds.base_url, models=["m-ok"], api_key_env="NX_REVOKED"),
        target("down", f"http://127.0.0.1:{closed_port()}/v1", models=["m-ok"], **common),
    ]
    config = write_config(tmp_path, targets)
    env = {"NX_GOOD": GOOD, "NX_WRONG": WRONG, "NX_REVOKED": REVOKED}
    ran = nexomon("probe", "-c", str(config), "--json", env=env)

    assert ran.rc == 1, ran
    got = {(r["target"], r["probe"], r["model"]): r for r in ran.json()}
    outcome = {key: r["outcome"] for key, r in got.items()}
    expected = {
        ("faults", "chat", "m-ok"): "ok",
        ("faults", "chat", "m-unlisted"): "client_error",
        ("faults", "chat", "m-500"): "server_error",
        ("faults", "chat", "m-hang"): "timeout",
        ("faults", "chat", "m-reset"): "connection_error",
        ("faults", "chat", "m-drip-slow"): "timeout",
        ("faults", "chat", "m-malformed"): "invalid_response",
        ("faults", "chat", "m-html"): "invalid_response",
        ("faults", "chat", "m-no-usage"): "invalid_response",
        ("faults", "chat", "m-error-200"): "invalid_response",
        ("faults", "chat", "m-no-choices"): "invalid_response",
        ("faults", "chat", "m-huge"): "invalid_response",
        ("limited-s", "chat", "m-limited"): "rate_limited",
        ("limited-date", "chat", "m-limited"): "rate_limited",
        ("wrong-key", "models", ""): "auth_error",
        ("wrong-key", "chat", "m-ok"): "auth_error",
        ("revoked", "models", ""): "auth_error",
        ("revoked", "chat", "m-ok"): "auth_error",
        ("down", "models", ""): "connection_error",
        ("down", "chat", "m-ok"): "connection_error",
    }
    for name in ("faults", "limited-s", "limited-date"):
        expected[(name, "models", "")] = "ok"
    assert outcome == expected
    for name in ("limited-s", "limited-date"):
        retry = got[(name, "chat", "m-limited")]["retry_after_s"]
        assert retry is not None and RETRY_AFTER_S - 3 <= retry <= RETRY_AFTER_S + 1
    assert got[("wrong-key", "chat", "m-ok")]["http_status"] == 401
    assert got[("revoked", "chat", "m-ok")]["http_status"] == 403
    assert all(r["success"] is (r["outcome"] == "ok") for r in got.values())
