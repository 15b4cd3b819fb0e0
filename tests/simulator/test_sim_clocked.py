"""Token buckets and disappearing models, driven by an injected ManualClock."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import pytest
from sim_helpers import chat_body

from monitor.simulator.clock import ManualClock
from monitor.simulator.ratelimit import RateLimiter, format_retry_after
from monitor.simulator.scenario import RateLimit

LIMITED = {"models": {"m": {"ratelimit": {"limit": 3, "per_s": 0.5}}, "other": {}}}


def chat(sim: Any, key: str = "k1", model: str = "m") -> httpx.Response:
    return httpx.post(
        f"{sim.base_url}/chat/completions",
        json=chat_body(model),
        headers={"Authorization": f"Bearer {key}"},
    )


def test_bucket_drains_to_429_with_retry_after_seconds(start_sim: Any, clock: ManualClock) -> None:
    sim = start_sim(LIMITED, clock=clock)
    remaining = [chat(sim).headers["x-ratelimit-remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = chat(sim)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["retry-after"] == "2"  # one token at 0.5/s
    assert refused.headers["x-ratelimit-limit"] == "3"
    assert refused.headers["x-ratelimit-remaining"] == "0"


def test_bucket_refills_as_the_clock_advances(start_sim: Any, clock: ManualClock) -> None:
    sim = start_sim(LIMITED, clock=clock)
    for _ in range(3):
        chat(sim)
    clock.advance(1.0)  # half a token: still refused, and retry-after says the rest
    refused = chat(sim)
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
    clock.advance(1.0)
    assert chat(sim).status_code == 200
    clock.advance(3600)  # refills to capacity, never above
    assert chat(sim).headers["x-ratelimit-remaining"] == "2"


def test_buckets_are_per_key_and_per_model(start_sim: Any, clock: ManualClock) -> None:
    sim = start_sim(LIMITED, clock=clock)
    for _ in range(4):
        chat(sim)
    assert chat(sim, key="k2").status_code == 200
    assert chat(sim, model="other").status_code == 200


def test_reset_refills_buckets(start_sim: Any, clock: ManualClock) -> None:
    sim = start_sim(LIMITED, clock=clock)
    for _ in range(4):
        chat(sim)
    sim.simulator.reset()
    assert chat(sim).status_code == 200


def test_retry_after_can_be_an_http_date(start_sim: Any, clock: ManualClock) -> None:
    sim = start_sim({**LIMITED, "retry_after_format": "http-date"}, clock=clock)
    for _ in range(3):
        chat(sim)
    value = chat(sim).headers["retry-after"]
    assert value.endswith(" GMT")
    when = email.utils.parsedate_to_datetime(value).timestamp()
    assert time.time() < when < time.time() + 60


@pytest.mark.parametrize(
    ("wait_s", "expected"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")]
)
def test_retry_after_seconds_round_up_to_at_least_one(wait_s: float, expected: str) -> None:
    assert format_retry_after(wait_s, "seconds", 0.0) == expected


def test_retry_after_http_date_is_wall_time_plus_the_wait() -> None:
    assert format_retry_after(2.5, "http-date", 0.0) == "Thu, 01 Jan 1970 00:00:03 GMT"


def test_rate_limiter_keeps_a_bounded_number_of_buckets(clock: ManualClock) -> None:
    limiter = RateLimiter(clock, max_buckets=2)
    spec = RateLimit(limit=1, per_s=0.001)
    assert limiter.take("a", "m", spec).allowed
    assert not limiter.take("a", "m", spec).allowed
    limiter.take("b", "m", spec)
    limiter.take("c", "m", spec)  # evicts "a", which starts full again
    assert limiter.take("a", "m", spec).allowed


DISAPPEARING = {
    "models": {
        "stays": {},
        "gone": {"disappear_after_s": 60},
        "blip": {"disappear_after_s": 10, "reappear_after_s": 20},
    }
}


def listed(sim: Any) -> list[str]:
    response = httpx.get(f"{sim.base_url}/models", headers={"Authorization": "Bearer k"})
    return [m["id"] for m in response.json()["data"]]


def test_models_disappear_and_reappear_on_schedule(start_sim: Any, clock: ManualClock) -> None:
    sim = start_sim(DISAPPEARING, clock=clock)
    assert listed(sim) == ["stays", "gone", "blip"]
    clock.advance(10)
    assert listed(sim) == ["stays", "gone"]
    clock.advance(10)
    assert listed(sim) == ["stays", "gone", "blip"]
    clock.advance(40)
    assert listed(sim) == ["stays", "blip"]


def test_chat_to_a_disappeared_model_is_404(start_sim: Any, clock: ManualClock) -> None:
    sim = start_sim(DISAPPEARING, clock=clock)
    assert chat(sim, model="gone").status_code == 200
    clock.advance(60)
    response = chat(sim, model="gone")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
