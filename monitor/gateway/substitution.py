"""Whether an answer came from the model that was asked for (silent model substitution).

A gateway that answers a request for model A with model B (a fallback, a
router, a cheaper model) fails its user without an error. ``substitution``
compares the ``model`` field of a chat answer with the requested id:

- the same id (ignoring case) is a match;
- one id being the other plus a date or version suffix is a match (either
  way round: a pinned request answered by its alias too): ``gpt-4o`` ->
  ``gpt-4o-2024-08-06``, ``gpt-4-0613``, ``claude-3-5-sonnet-20241022``,
  ``gemini-1.5-pro-002``, ``mistral-large-v2``, ``anthropic.claude-v2:1``;
- a provider prefix on either side is a match: ``gpt-4o`` and ``openai/gpt-4o``
  (and with a suffix too, ``openai/gpt-4o-2024-08-06``);
- anything else is a substitution, ``gpt-4o`` -> ``gpt-4o-mini`` included
  (a suffix that is a word, not a date or version, names another model);
- an absent or empty ``model`` field is unknown (None), never a
  substitution.

The answered id is untrusted text: callers store and show it cleaned and
bounded (monitor.gateway.headers.one_line); here it is only compared.
"""

from __future__ import annotations

import re

# A date or version after the requested id: -2024-08-06, -20241022, -0613,
# -002, -v2, -v1.5, :1, @20240229, -latest is NOT one (it can point anywhere).
_VERSION_SUFFIX = re.compile(
    r"(?:[-_@.:](?:\d{4}-\d{2}-\d{2}|\d{3,8}|v\d+(?:\.\d+)*)(?::\d+)?|:\d+)+"
)
_MAX_ID = 512  # longer "ids" are compared as they are: never a match by suffix


def _strip_provider(model_id: str) -> str:
    """``openai/gpt-4o`` -> ``gpt-4o``; ids without a provider stay as they are."""
    return model_id.rsplit("/", 1)[-1]


def substitution(requested: str, answered: str | None) -> bool | None:
    """True if ``answered`` names another model than ``requested``; None when unknown.

    See the module docstring for what counts as the same model.
    """
    if answered is None:
        return None
    answered = answered.strip()
    if not answered:
        return None
    want, got = requested.strip().lower(), answered.lower()
    if want == got:
        return False
    if len(got) > _MAX_ID:
        return True
    want_bare, got_bare = _strip_provider(want), _strip_provider(got)
    if want_bare == got_bare:
        return False
    return not (_versioned(got_bare, want_bare) or _versioned(want_bare, got_bare))


def _versioned(longer: str, base: str) -> bool:
    """Whether ``longer`` is ``base`` plus a date or version suffix."""
    return longer.startswith(base) and _VERSION_SUFFIX.fullmatch(longer[len(base) :]) is not None
