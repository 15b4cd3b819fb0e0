"""OpenAI-shaped request validation and response bodies.

Validation follows NexoRouter's documented rules for ``POST
/chat/completions``: ``model`` a string, ``messages`` a non-empty list of
message objects, ``max_tokens`` a positive integer, ``temperature`` 0..2,
``top_p`` 0..1, ``stream`` a boolean, ``stream_options`` an object whose
``include_usage`` is a boolean (whether a model streams at all is the
app's decision: monitor.simulator.streamspec). A violation is a
``RequestError`` carrying the HTTP status and an OpenAI-style
``{"error": {"message", "type", "code", "param"}}``.
Error messages never contain the caller's API key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from monitor.simulator import tokens
from monitor.simulator.scenario import ModelSpec

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class RequestError(Exception):
    """A request the simulator answers with an OpenAI error (never a crash)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str = "invalid_value",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type_, code, param)


def error_body(message: str, type_: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage


def _bad(param: str, message: str, code: str = "invalid_value") -> RequestError:
    return RequestError(400, message, code=code, param=param)


def _number_in(body: dict[str, Any], key: str, high: float) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(key, f"'{key}' must be a number", "invalid_type")
    if not 0 <= value <= high:
        raise _bad(key, f"'{key}' must be between 0 and {high:g}, got {value}")


def parse_chat(raw: bytes, accept: frozenset[str] = frozenset()) -> ChatRequest:
    """Validate a chat completion body; raises RequestError(400) on the first problem.

    ``accept`` names rules not enforced (a scenario's ``contract_breaks``:
    ``invalid_temperature``, ``invalid_top_p``, ``invalid_max_tokens``,
    ``empty_messages``): such a request is answered as if it were valid.
    """
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RequestError(400, "request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object", code="invalid_type")
    model = body.get("model")
    if model is None:
        raise _bad("model", "'model' is required", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise _bad("model", "'model' must be a non-empty string", "invalid_type")
    messages = body.get("messages")
    if messages is None:
        raise _bad("messages", "'messages' is required", "missing_required_parameter")
    if not isinstance(messages, list) or (not messages and "empty_messages" not in accept):
        raise _bad("messages", "'messages' must be a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _bad(f"messages[{i}]", f"messages[{i}] must be an object with a valid 'role'")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"messages[{i}].content", f"messages[{i}].content must be a string")
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or (max_tokens < 1 and "invalid_max_tokens" not in accept)
    ):
        raise _bad("max_tokens", "'max_tokens' must be a positive integer")
    if "invalid_temperature" not in accept:
        _number_in(body, "temperature", 2.0)
    if "invalid_top_p" not in accept:
        _number_in(body, "top_p", 1.0)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", "'stream' must be a boolean", "invalid_type")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise _bad("stream_options", "'stream_options' must be an object", "invalid_type")
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise _bad("stream_options.include_usage", "'include_usage' must be a boolean")
    return ChatRequest(model, messages, max_tokens, stream, include_usage)


def no_streaming() -> RequestError:
    """The answer to ``stream: true`` for a model that does not stream."""
    return _bad("stream", "streaming is not supported by this gateway", "unsupported_value")


def completion_body(
    request: ChatRequest,
    reply: str,
    completion_id: str,
    created: int,
    answer_as: str | None = None,
) -> dict[str, Any]:
    """A well-formed ``chat.completion`` with usage counted by ``tokens``; its
    ``model`` is ``answer_as`` when set (a substitution), else the requested one."""
    content, completion_tokens, finish_reason = tokens.complete(reply, request.max_tokens)
    prompt_tokens = tokens.prompt_tokens(request.messages)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": answer_as or request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def models_body(models: list[ModelSpec], broken: bool = False) -> dict[str, Any]:
    """The /models listing; ``broken`` (contract break ``models_shape``) drops every
    entry's ``"object": "model"``, which nexomon's models probe does not need."""
    entry_object = {} if broken else {"object": "model"}
    return {
        "object": "list",
        "data": [
            {"id": m.id, **entry_object, "created": m.created, "owned_by": "nexorouter-sim"}
            for m in models
        ],
    }


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
