"""A small deterministic tokenizer for the simulator's ``usage`` counts.

Not a real BPE: a token is a run of word characters (``\\w+``) or a single
other non-space character (punctuation, symbols). ``"Reply with OK."`` is 4
tokens: ``Reply``, ``with``, ``OK``, ``.``. Good enough for plausible,
reproducible ``prompt_tokens`` / ``completion_tokens``, which is all the
monitor's token and cost accounting needs to be tested against.

Prompt tokens follow OpenAI's chat accounting shape: every message costs
``PER_MESSAGE_TOKENS`` on top of its role and content tokens (plus its
``name``, if any), and the reply is primed with ``REPLY_PRIMING_TOKENS``.
"""

from __future__ import annotations

import re
from typing import Any

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
PER_MESSAGE_TOKENS = 3
REPLY_PRIMING_TOKENS = 3


def count_tokens(text: str) -> int:
    """Tokens in ``text`` by the rule above."""
    return sum(1 for _ in TOKEN_RE.finditer(text))


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of a validated chat message list."""
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += PER_MESSAGE_TOKENS
        total += count_tokens(str(message.get("role", "")))
        total += count_tokens(content_text(message.get("content")))
        name = message.get("name")
        if isinstance(name, str):
            total += count_tokens(name)
    return total


def complete(reply: str, max_tokens: int | None) -> tuple[str, int, str]:
    """The reply cut to ``max_tokens``: (content, completion_tokens, finish_reason).

    ``finish_reason`` is "length" when the cut happened, "stop" otherwise.
    """
    spans = [m.end() for m in TOKEN_RE.finditer(reply)]
    if max_tokens is None or len(spans) <= max_tokens:
        return reply, len(spans), "stop"
    return reply[: spans[max_tokens - 1]], max_tokens, "length"
