"""Every common rate-limit header family, read into one shape (issue 18, point 1).

The examples are the families' own documented forms: NexoRouter's reference,
OpenAI's rate-limit guide (Go durations), the IETF draft up to -07 and its
structured-field successor. Hostile values never raise and are counted.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.gateway.ratelimit import (
    HEADER_NAMES,
    RateLimits,
    Window,
    parse_epoch_reset,
    parse_go_duration,
    read_ratelimits,
)

NOW = 1_790_000_000.0  # a fixed "now" (2026-09-21) so epoch resets are exact


def read(**headers: str) -> RateLimits:
    return read_ratelimits({k.replace("_", "-"): v for k, v in headers.items()}, NOW)


def test_nexorouter_headers_are_the_requests_kind() -> None:
    got = read(x_ratelimit_limit="60", x_ratelimit_remaining="59")
    assert got == RateLimits(requests=Window(limit=60, remaining=59))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (str(int(NOW) + 30), 30.0),  # epoch seconds
        (str(int(NOW * 1000) + 1500), 1.5),  # epoch milliseconds, told apart by magnitude
        ("12", 12.0),  # small: seconds from now
        (str(int(NOW) - 100), 0.0),  # already past: resets now
    ],
)
def test_x_ratelimit_reset_is_epoch_seconds_milliseconds_or_a_delay(
    value: str, seconds: float
) -> None:
    assert read(x_ratelimit_reset=value).requests.reset_s == pytest.approx(seconds)


def test_openai_style_headers_give_both_kinds_with_go_duration_resets() -> None:
    got = read(
        x_ratelimit_limit_requests="500",
        x_ratelimit_remaining_requests="499",
        x_ratelimit_reset_requests="120ms",
        x_ratelimit_limit_tokens="30000",
        x_ratelimit_remaining_tokens="29984",
        x_ratelimit_reset_tokens="6m0s",
    )
    assert got.requests == Window(limit=500, remaining=499, reset_s=pytest.approx(0.12))
    assert got.tokens == Window(limit=30000, remaining=29984, reset_s=360.0)
    assert got.invalid == 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("7.5", 7.5)],
)
def test_go_durations(value: str, seconds: float) -> None:
    assert parse_go_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "s", "1x", "-1s", "1s2", "nan", "inf", "1e400", "9999h"])
def test_bad_go_durations_are_none(value: str) -> None:
    assert parse_go_duration(value) is None


def test_ietf_draft_headers_take_the_first_item_of_a_policy_list() -> None:
    got = read(ratelimit_limit="100, 100;w=60", ratelimit_remaining="7", ratelimit_reset="12")
    assert got.requests == Window(limit=100, remaining=7, reset_s=12.0)


def test_structured_ratelimit_joins_its_policy_by_name_and_unit() -> None:
    got = read(
        ratelimit='"default";r=50;t=30, "tok";r=900',
        ratelimit_policy='"default";q=100;w=60, "tok";q=1000;qu="tokens";w=60',
    )
    assert got.requests == Window(limit=100, remaining=50, reset_s=30.0)
    assert got.tokens == Window(limit=1000, remaining=900)
    assert got.invalid == 0


def test_the_first_family_wins_where_two_give_the_same_figure() -> None:
    got = read(x_ratelimit_remaining="5", ratelimit_remaining="9", x_ratelimit_limit_requests="50")
    assert got.requests.remaining == 5
    assert got.requests.limit == 50  # filled from whichever family sent it


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-limit": "lots"},
        {"x-ratelimit-remaining": "-1"},
        {"x-ratelimit-remaining-tokens": "9" * 30},
        {"x-ratelimit-reset": "tomorrow"},
        {"x-ratelimit-reset-requests": "6 minutes"},
        {"ratelimit": "garbage;;"},
        {"ratelimit": '"default";r=fifty'},
        {"ratelimit-limit": "1" * 10_000},
    ],
)
def test_a_value_that_does_not_parse_is_ignored_and_counted(headers: dict[str, str]) -> None:
    got = read_ratelimits(headers, NOW)
    assert got.requests.empty() and got.tokens.empty()
    assert got.invalid == 1


def test_epoch_reset_beyond_a_year_is_not_a_window() -> None:
    assert parse_epoch_reset(str(int(NOW) + 400 * 86400), NOW) is None


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(HEADER_NAMES)),
        st.text(max_size=80) | st.from_regex(r"[0-9a-z.;=\", ]{0,40}", fullmatch=True),
    )
)
def test_any_value_of_any_family_never_raises(headers: dict[str, str]) -> None:
    got = read_ratelimits(headers, NOW)
    for window in (got.requests, got.tokens):
        for count in (window.limit, window.remaining):
            assert count is None or 0 <= count < 2**63
        assert window.reset_s is None or 0 <= window.reset_s <= 366 * 86400
    assert 0 <= got.invalid <= len(headers) + 8
