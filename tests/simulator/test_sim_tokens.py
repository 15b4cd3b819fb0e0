"""The deterministic tokenizer behind ``usage``."""

from __future__ import annotations

import pytest

from monitor.simulator import tokens


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("OK", 1),
        ("Reply with OK.", 4),
        ("Hello, world!", 4),
        ("don't", 3),
        ("  spaced   out  ", 2),
        ("naïve café", 2),
        ("x=1+2", 5),
    ],
)
def test_count_tokens(text: str, count: int) -> None:
    assert tokens.count_tokens(text) == count


def test_prompt_tokens_add_per_message_overhead() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Reply with OK."}], "name": "bob"},
    ]
    # priming 3 + (3 + system 1 + 3) + (3 + user 1 + 4 + bob 1)
    assert tokens.prompt_tokens(messages) == 19


@pytest.mark.parametrize(
    ("max_tokens", "expected"),
    [
        (None, ("One, two three.", 5, "stop")),
        (5, ("One, two three.", 5, "stop")),
        (4, ("One, two three", 4, "length")),
        (1, ("One", 1, "length")),
    ],
)
def test_complete_cuts_the_reply_at_max_tokens(
    max_tokens: int | None, expected: tuple[str, int, str]
) -> None:
    assert tokens.complete("One, two three.", max_tokens) == expected
