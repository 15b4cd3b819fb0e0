"""Shared constants and helpers of the simulator tests (imported as ``sim_helpers``)."""

from __future__ import annotations

from typing import Any

GOOD_KEY = "sk-good-0123456789"
AUTH = {"Authorization": f"Bearer {GOOD_KEY}"}

# One model per fault, each firing on every request; latency 0 keeps tests fast.
FAULT_MODELS: dict[str, dict[str, Any]] = {
    "m-ok": {},
    "m-errors": {"error_rate": 1.0},
    "m-hang": {"faults": [{"kind": "hang", "rate": 1.0}]},
    "m-reset": {"faults": [{"kind": "reset", "rate": 1.0}]},
    "m-server-error": {"faults": [{"kind": "server_error", "rate": 1.0, "status": 504}]},
    "m-malformed": {"faults": [{"kind": "malformed_json", "rate": 1.0}]},
    "m-html": {"faults": [{"kind": "html_200", "rate": 1.0}]},
    "m-no-usage": {"faults": [{"kind": "missing_usage", "rate": 1.0}]},
    "m-error-200": {"faults": [{"kind": "error_in_200", "rate": 1.0}]},
    "m-no-choices": {"faults": [{"kind": "empty_choices", "rate": 1.0}]},
    "m-drip": {"faults": [{"kind": "slow_drip", "rate": 1.0, "interval_s": 0.001}]},
    "m-huge": {"faults": [{"kind": "oversized", "rate": 1.0, "size_bytes": 3_000_000}]},
}

SHARED_SCENARIO: dict[str, Any] = {
    "name": "test",
    "seed": 7,
    "reply": "Hello there, this is a reply.",
    "api_keys": [GOOD_KEY, "sk-second"],
    "revoked_keys": ["sk-revoked"],
    "models": FAULT_MODELS,
}


def chat_body(model: str = "m-ok", content: str = "Reply with OK.", **extra: Any) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}
