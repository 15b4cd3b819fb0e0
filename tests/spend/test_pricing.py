"""Exact Decimal cost from usage and prices; unknown stays None; one warning per unpriced pair."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.spend.pricing import COST_QUANTUM, UnpricedTracker, cost, price_result

D = Decimal


@dataclass(frozen=True)
class Price:
    """Stand-in for monitor.config.model.Price (USD per million tokens)."""

    input: Decimal
    output: Decimal


def chat_result(
    prompt: int | None = 18,
    completion: int | None = 16,
    *,
    model: str = "deepseek-v4-flash",
    target: str = "nexorouter",
) -> ProbeResult:
    total = None if prompt is None or completion is None else prompt + completion
    return ProbeResult(
        started_at=datetime(2025, 1, 1, 12, tzinfo=UTC),
        location="test",
        target=target,
        probe="chat",
        model=model,
        outcome=Outcome.OK,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
    )


@pytest.mark.parametrize(
    ("price", "prompt", "completion", "expected"),
    [
        (Price(D("0.10"), D("0.40")), 18, 16, D("0.0000082")),
        (Price(D("0.10"), D("0.40")), 20, 18, D("0.0000092")),
        (Price(D("3"), D("15")), 1_000_000, 1_000_000, D("18")),
        (Price(D("2.50"), D("10.00")), 1_234, 567, D("0.008755")),
        (Price(D("0.0001"), D("0.0001")), 1, 0, D("1E-10")),  # smallest exact amount
        (Price(D("0.00004"), D("0")), 1, 0, D("0")),  # 4e-11: half-even rounds it to 0
        (Price(D("0.00005"), D("0")), 3, 0, D("2E-10")),  # 1.5e-10: half-even -> 2e-10
        (Price(D("0"), D("0")), 500, 500, D("0")),  # a free model costs exactly 0
        (Price(D("0.10"), D("0.40")), 0, 0, D("0")),
        (Price(D("60"), D("120")), 10**12, 10**12, D("180000000")),  # no precision loss
    ],
)
def test_cost_is_exact_decimal(
    price: Price, prompt: int, completion: int, expected: Decimal
) -> None:
    result = cost(price, prompt, completion)
    assert isinstance(result, Decimal)
    assert result == expected
    assert result.as_tuple().exponent == COST_QUANTUM.as_tuple().exponent


@pytest.mark.parametrize(
    ("price", "prompt", "completion"),
    [
        (None, 18, 16),
        (Price(D("0.10"), D("0.40")), None, 16),
        (Price(D("0.10"), D("0.40")), 18, None),
        (Price(D("0.10"), D("0.40")), None, None),
    ],
)
def test_cost_is_none_when_price_or_usage_unknown(
    price: Price | None, prompt: int | None, completion: int | None
) -> None:
    assert cost(price, prompt, completion) is None


def test_price_result_fills_cost_and_leaves_the_original_unchanged() -> None:
    original = chat_result(18, 16)
    priced = price_result(original, Price(D("0.10"), D("0.40")))
    assert priced.cost_usd == D("0.0000082")
    assert original.cost_usd is None
    assert priced.replace(cost_usd=None) == original
    assert priced.to_json()["cost_usd"] == "0.0000082000"


@pytest.mark.parametrize(
    ("result", "price"),
    [
        (chat_result(18, 16), None),
        (chat_result(None, None), Price(D("0.10"), D("0.40"))),
    ],
)
def test_price_result_leaves_unknown_cost_as_none(result: ProbeResult, price: Price | None) -> None:
    assert price_result(result, price).cost_usd is None


def test_unpriced_tracker_warns_once_per_pair() -> None:
    tracker = UnpricedTracker()
    assert tracker.observe(chat_result(model="mystery"), None) is True
    assert tracker.observe(chat_result(model="mystery"), None) is False
    assert tracker.observe(chat_result(model="other"), None) is True
    assert tracker.observe(chat_result(model="mystery", target="second"), None) is True
    assert tracker.is_unpriced("nexorouter", "mystery")
    assert tracker.pairs == {
        ("nexorouter", "mystery"),
        ("nexorouter", "other"),
        ("second", "mystery"),
    }


@pytest.mark.parametrize(
    "result",
    [chat_result(None, None), chat_result(0, 0)],
    ids=["usage missing", "zero tokens"],
)
def test_unpriced_tracker_ignores_results_that_spent_no_tokens(result: ProbeResult) -> None:
    tracker = UnpricedTracker()
    assert tracker.observe(result, None) is False
    assert not tracker.is_unpriced("nexorouter", "deepseek-v4-flash")


def test_unpriced_tracker_forgets_a_pair_that_gets_a_price() -> None:
    tracker = UnpricedTracker()
    assert tracker.observe(chat_result(), None) is True
    assert tracker.observe(chat_result(), Price(D("0.10"), D("0.40"))) is False
    assert not tracker.is_unpriced("nexorouter", "deepseek-v4-flash")
    assert tracker.observe(chat_result(), None) is True  # price removed again: warn again


def test_unpriced_warning_names_target_and_model() -> None:
    text = UnpricedTracker.warning("nexorouter", "mystery")
    assert "'nexorouter'" in text
    assert '[pricing."mystery"]' in text
