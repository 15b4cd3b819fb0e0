"""Expected probe cost of a config: rows, totals, "*" targets and the budget verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from monitor.spend.forecast import (
    Forecast,
    ModelForecast,
    estimate_prompt_tokens,
    expected_cost,
    forecast,
    money,
    render_forecast,
)

D = Decimal


@dataclass(frozen=True)
class Price:
    input: Decimal
    output: Decimal


@dataclass(frozen=True)
class Target:
    """Stand-in for monitor.config.model's target (only what the forecast reads)."""

    name: str
    models: tuple[str, ...]
    chat_interval: float = 300.0
    models_interval: float = 60.0
    max_tokens: int = 16
    prompt: str = "Reply with OK."
    max_models: int = 100
    pricing: Mapping[str, Price] = field(default_factory=dict)
    stream_interval: float | None = None

    def price(self, model: str, default_pricing: Mapping[str, Price]) -> Price | None:
        return self.pricing.get(model) or default_pricing.get(model)


@dataclass(frozen=True)
class Budget:
    daily_usd: Decimal | None = None
    daily_tokens: int | None = None


@dataclass(frozen=True)
class Config:
    targets: tuple[Target, ...]
    pricing: Mapping[str, Price]
    budget: Budget = field(default_factory=Budget)


FLASH = Price(D("0.10"), D("0.40"))
BIG = Price(D("3"), D("15"))
PRICING = {"deepseek-v4-flash": FLASH, "big": BIG}


@pytest.mark.parametrize(
    ("prompt", "tokens"),
    [("", 14), ("Reply with OK.", 18), ("abcd", 15), ("abcde", 16), ("x" * 400, 114)],
)
def test_prompt_tokens_are_chars_over_four_plus_overhead_and_nonce(
    prompt: str, tokens: int
) -> None:
    assert estimate_prompt_tokens(prompt) == tokens


def test_example_config_forecast_numbers() -> None:
    config = Config((Target("nexorouter", ("deepseek-v4-flash",)),), PRICING, Budget(D("1.00")))
    f = forecast(config)
    (row,) = f.rows
    assert row.runs_per_day == 288
    assert (row.prompt_tokens, row.completion_tokens) == (18, 16)
    assert row.cost_per_run == D("0.0000082")  # 18 x 0.10/M + 16 x 0.40/M
    assert row.usd_per_day == D("0.0023616")
    assert f.usd_per_day == D("0.0023616")
    assert f.usd_per_month == D("0.070848")
    assert f.tokens_per_day == 288 * 34
    assert f.complete_usd and f.complete_tokens
    assert f.hours_until_usd_cap is None


def test_example_config_rendering() -> None:
    config = Config((Target("nexorouter", ("deepseek-v4-flash",)),), PRICING, Budget(D("1.00")))
    text = render_forecast(forecast(config))
    lines = text.splitlines()
    assert lines[0].split() == [
        "target", "model", "runs/day", "tokens/run", "$/run", "$/day", "$/month"
    ]  # fmt: skip
    assert lines[1].split() == [
        "nexorouter", "deepseek-v4-flash", "288", "18+16", "$0.0000082", "$0.002362", "$0.07085"
    ]  # fmt: skip
    assert lines[-1] == (
        "expected probe spend: $0.002362/day, $0.07085/month (30 d); budget $1.00/day never reached"
    )


def test_rows_and_totals_sum_over_targets_and_models() -> None:
    config = Config(
        (
            Target("a", ("deepseek-v4-flash", "big")),
            Target("b", ("big",), chat_interval=60.0, max_tokens=100, prompt="x" * 40),
        ),
        PRICING,
    )
    f = forecast(config)
    assert [(r.target, r.model) for r in f.rows] == [
        ("a", "deepseek-v4-flash"),
        ("a", "big"),
        ("b", "big"),
    ]
    big_a = (18 * D(3) + 16 * D(15)) / 10**6 * 288
    big_b = (24 * D(3) + 100 * D(15)) / 10**6 * 1440
    assert f.rows[1].usd_per_day == big_a
    assert f.rows[2].usd_per_day == big_b
    assert f.usd_per_day == D("0.0023616") + big_a + big_b
    assert "no daily_usd budget" in render_forecast(f)


def test_per_target_price_override_is_used() -> None:
    cheap = Price(D("0.01"), D("0.02"))
    config = Config((Target("a", ("big",), pricing={"big": cheap}),), PRICING)
    (row,) = forecast(config).rows
    assert row.cost_per_run == D("0.0000005")  # 18 x 0.01/M + 16 x 0.02/M


def test_unpriced_model_has_unknown_cost_not_zero() -> None:
    config = Config((Target("a", ("deepseek-v4-flash", "mystery")),), PRICING, Budget(D("1.00")))
    f = forecast(config)
    assert f.rows[1].cost_per_run is None
    assert f.rows[1].usd_per_day is None
    assert not f.complete_usd
    assert f.complete_tokens  # tokens are still known
    text = render_forecast(f)
    assert "no price" in text
    assert "at least $0.002362/day" in text
    assert "plus 1 row of unknown cost" in text
    assert "budget $1.00/day may be reached (cost unknown)" in text


def test_wildcard_target_is_unknown_with_a_per_model_figure() -> None:
    config = Config((Target("gw", ("*",), max_models=50),), PRICING, Budget(D("1.00")))
    f = forecast(config)
    (row,) = f.rows
    assert row.wildcard
    assert row.usd_per_day is None
    assert row.price_model == "big"  # the dearest configured price
    assert row.cost_per_run == D("0.000294")  # 18 x 3/M + 16 x 15/M
    assert row.per_model_usd_per_day == D("0.084672")
    assert row.max_models == 50
    assert not f.complete_usd and not f.complete_tokens
    text = render_forecast(f)
    assert 'gw "*" = every listed model, up to 50' in text
    assert "$0.08467/day at the dearest configured price (big)" in text
    # the total is unknown, not "at least $0.00/day" (issue 16, point 8)
    assert 'expected probe spend: unknown (gw "*": models unknown until /models answers)' in text
    assert "$0.00" not in text


def test_wildcard_without_any_price_says_so() -> None:
    f = forecast(Config((Target("gw", ("*",)),), {}))
    (row,) = f.rows
    assert row.cost_per_run is None and row.price_model is None
    assert "no price configured" in render_forecast(f)


def test_wildcard_without_any_price_is_unknown_not_zero() -> None:
    # issue 16, point 8: models = ["*"] and no prices printed "at least $0.00/day"
    f = forecast(Config((Target("gw", ("*",)),), {}, Budget(D("1.00"))))
    assert not f.known_usd
    last = render_forecast(f).splitlines()[-1]
    assert last == (
        'expected probe spend: unknown (gw "*": no price for any model: add [pricing."MODEL"] '
        "for the models it lists); budget $1.00/day may be reached (cost unknown)"
    )


def test_unknown_rows_name_the_missing_prices() -> None:
    config = Config(
        (Target("a", ("deepseek-v4-flash", *(f"x{i}" for i in range(7)))), Target("gw", ("*",))),
        PRICING,
    )
    f = forecast(config)
    assert f.missing == (
        "no price for a/x0, a/x1, a/x2, a/x3, a/x4 and 2 more",
        'gw "*": models unknown until /models answers',
    )
    assert render_forecast(f).splitlines()[-1] == (
        "expected probe spend: at least $0.002362/day, $0.07085/month (30 d), plus 8 rows of "
        'unknown cost (no price for a/x0, a/x1, a/x2, a/x3, a/x4 and 2 more; gw "*": models '
        "unknown until /models answers); no daily_usd budget"
    )


def test_only_unpriced_explicit_models_are_unknown() -> None:
    f = forecast(Config((Target("a", ("mystery",)),), PRICING))
    assert f.missing == ("no price for a/mystery",)
    assert render_forecast(f).splitlines()[-1] == (
        "expected probe spend: unknown (no price for a/mystery); no daily_usd budget"
    )


def test_complete_forecast_names_nothing_missing() -> None:
    f = forecast(Config((Target("a", ("big",)),), PRICING))
    assert f.missing == () and f.known_usd


def test_wildcard_uses_target_override_prices_too() -> None:
    pricey = Price(D("100"), D("100"))
    f = forecast(Config((Target("gw", ("*",), pricing={"special": pricey}),), PRICING))
    assert f.rows[0].price_model == "special"


def test_budget_cap_reached_after_hours() -> None:
    # 8,640 runs/day of the big model: $2.54016/day against a $1 cap
    config = Config((Target("a", ("big",), chat_interval=10.0),), PRICING, Budget(D("1.00")))
    f = forecast(config)
    assert f.usd_per_day == D("2.54016")
    assert f.hours_until_usd_cap == D(24) / D("2.54016")
    text = render_forecast(f)
    assert "budget $1.00/day reached after 9.4 h each UTC day" in text
    assert "spend capped at $30.00/month" in text


def test_budget_reached_within_hours_when_costs_are_partly_unknown() -> None:
    config = Config(
        (Target("a", ("big", "mystery"), chat_interval=10.0),), PRICING, Budget(D("1.00"))
    )
    assert "reached within 9.4 h" in render_forecast(forecast(config))


def test_token_budget_comparison() -> None:
    config = Config((Target("a", ("deepseek-v4-flash",)),), PRICING, Budget(None, 4896))
    f = forecast(config)
    assert f.tokens_per_day == 9792
    assert f.hours_until_token_cap == 12
    lines = render_forecast(f).splitlines()
    assert lines[-1] == (
        "expected probe tokens: 9,792/day; token budget 4,896/day reached after 12.0 h each UTC day"
    )


def test_token_budget_never_reached() -> None:
    config = Config((Target("a", ("deepseek-v4-flash",)),), PRICING, Budget(None, 10_000))
    assert render_forecast(forecast(config)).endswith("token budget 10,000/day never reached")


def test_duplicate_models_are_counted_once() -> None:
    f = forecast(Config((Target("a", ("big", "big")),), PRICING))
    assert len(f.rows) == 1


def test_expected_cost_matches_the_forecast_row() -> None:
    target = Target("a", ("big",))
    assert expected_cost(target, BIG) == forecast(Config((target,), PRICING)).rows[0].cost_per_run
    assert expected_cost(target, None) is None


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (None, "unknown"),
        (D("0"), "$0.00"),
        (D("0.5"), "$0.50"),
        (D("0.0023616"), "$0.002362"),
        (D("0.0000082"), "$0.0000082"),
        (D("2.54016"), "$2.54"),
        (D("1234.5"), "$1,234.50"),
    ],
)
def test_money(amount: Decimal | None, text: str) -> None:
    assert money(amount) == text


def test_model_forecast_fractional_runs_render() -> None:
    row = ModelForecast("a", "m", D(86400) / D(7), 18, 16, D("0.000001"))
    assert "12,342.9" in render_forecast(Forecast((row,)))


def test_a_streaming_target_counts_its_stream_runs_too() -> None:
    plain = forecast(Config((Target("gw", ("m",)),), {"m": FLASH}))
    both = forecast(Config((Target("gw", ("m",), stream_interval=600.0),), {"m": FLASH}))
    # 288 chat runs a day, plus 144 streams of the same prompt and max_tokens
    assert (plain.rows[0].runs_per_day, both.rows[0].runs_per_day) == (288, 288 + 144)
    assert both.usd_per_day == plain.usd_per_day * D("1.5")
