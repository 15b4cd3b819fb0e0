"""Silent model substitution: which answered ids name the requested model (issue 18, point 2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.gateway.substitution import substitution


@pytest.mark.parametrize(
    ("requested", "answered"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o", "GPT-4o"),
        ("gpt-4o", "gpt-4o-2024-08-06"),
        ("gpt-4", "gpt-4-0613"),
        ("claude-3-5-sonnet", "claude-3-5-sonnet-20241022"),
        ("gemini-1.5-pro", "gemini-1.5-pro-002"),
        ("mistral-large", "mistral-large-v2"),
        ("anthropic.claude-v2", "anthropic.claude-v2:1"),
        ("gpt-4o", "openai/gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("gpt-4o", "openai/gpt-4o-2024-08-06"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("deepseek-v4-flash", "deepseek-v4-flash"),
    ],
)
def test_the_same_model_is_a_match(requested: str, answered: str) -> None:
    assert substitution(requested, answered) is False


@pytest.mark.parametrize(
    ("requested", "answered"),
    [
        ("gpt-4o", "gpt-4o-mini"),
        ("gpt-4o", "gpt-3.5-turbo"),
        ("gpt-4o", "gpt-4o-latest"),
        ("claude-3-5-sonnet", "claude-3-haiku-20240307"),
        ("sim-fast", "sim-fast-cheap"),
        ("gpt-4o", "anthropic/claude-3-5-sonnet"),
        ("gpt-4o", "gpt-4o" + "-0613" * 200),  # absurdly long: not read as a version
    ],
)
def test_another_model_is_a_substitution(requested: str, answered: str) -> None:
    assert substitution(requested, answered) is True


@pytest.mark.parametrize("answered", [None, "", "   "])
def test_an_absent_model_field_is_unknown_not_a_substitution(answered: str | None) -> None:
    assert substitution("gpt-4o", answered) is None


@given(st.text(max_size=40), st.one_of(st.none(), st.text(max_size=600)))
def test_any_pair_gives_an_answer_and_never_raises(requested: str, answered: str | None) -> None:
    assert substitution(requested, answered) in (True, False, None)
