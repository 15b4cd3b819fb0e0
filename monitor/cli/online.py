"""``nexomon config check --online``: one ``GET /models`` per target, no chat.

Each target gets exactly one listing request through the daemon's own
``GatewayClient``, classified by ``gateway.classify`` and read by
``probes.models.read_listing``, so a check passes or fails exactly where the
daemon's models probe would. Only when ``/models`` answers 404 and the
configured ``base_url`` does not already end in ``/v1`` is a second request
sent, to ``base_url + "/v1"``, to suggest the likely fix. Chat completions
are never sent (they cost money).

Contract: ``run_online`` returns one ``TargetCheck`` per target, in config
order; ``render`` turns them into one line each, every line scrubbed of the
API keys the scrubber knows; ``exit_code`` is 0 when every check passed, else 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monitor.config.model import Config, TargetConfig
from monitor.gateway.classify import classify
from monitor.gateway.client import GatewayClient
from monitor.logs import SecretScrubber
from monitor.outcome import Outcome
from monitor.probes.models import Listing, check_shape, read_listing
from monitor.untrusted import escape_controls

ClientFactory = Callable[[str, str, TargetConfig], GatewayClient]


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """The verdict for one target: ``ok`` and the line that says why."""

    target: str
    ok: bool
    detail: str


def _client(base_url: str, key: str, target: TargetConfig) -> GatewayClient:
    return GatewayClient(
        base_url, key, timeout=target.timeout, max_body_bytes=target.max_body_bytes
    )


async def _listing(
    factory: ClientFactory, base_url: str, key: str, target: TargetConfig
) -> tuple[Outcome, str | None, int | None, Listing | None]:
    """One GET /models: (outcome, error line, HTTP status, listing when OK)."""
    client = factory(base_url, key, target)
    try:
        exchange = await client.list_models()
    finally:
        await client.aclose()
    outcome, error = classify(exchange, expect=check_shape)
    listing = read_listing(exchange.body) if outcome is Outcome.OK else None
    return outcome, error, exchange.status, listing if isinstance(listing, Listing) else None


async def check_target(
    target: TargetConfig, key: str, factory: ClientFactory = _client
) -> TargetCheck:
    """Check one target's key, base URL and explicit models with one /models call.

    A 401/403 is "the key is refused"; a 404 at a base URL without ``/v1``
    tries ``/v1`` once and, when that lists models, suggests it; any other
    failure is its outcome and error line; an OK listing fails only when an
    explicitly configured model (not ``"*"``) is missing from it.
    """
    base = target.base_url.rstrip("/")
    outcome, error, status, listing = await _listing(factory, base, key, target)
    if outcome is Outcome.AUTH_ERROR:
        return TargetCheck(target.name, False, f"the key is refused (HTTP {status})")
    if status == 404 and not base.endswith("/v1"):
        suggestion = base + "/v1"
        alt_outcome, _, _, alt_listing = await _listing(factory, suggestion, key, target)
        if alt_outcome is Outcome.OK and alt_listing is not None:
            return TargetCheck(
                target.name,
                False,
                f"GET /models is HTTP 404 at {base}; did you mean {suggestion}?",
            )
    if listing is None:
        return TargetCheck(target.name, False, f"GET /models failed: {outcome.value}: {error}")
    listed = set(listing.ids)
    missing = [m for m in target.models if m != "*" and m not in listed]
    if missing:
        names = ", ".join(missing)
        return TargetCheck(
            target.name,
            False,
            f"{len(missing)} configured model(s) not in the catalog: {names}",
        )
    return TargetCheck(target.name, True, f"ok (key accepted, {len(listing.ids)} models listed)")


async def run_online(
    config: Config, scrubber: SecretScrubber, factory: ClientFactory = _client
) -> list[TargetCheck]:
    """Check every target concurrently; each key read is registered with ``scrubber``."""
    keys = []
    for target in config.targets:
        key = target.api_key()
        scrubber.add(key)
        keys.append(key)
    return list(
        await asyncio.gather(
            *(check_target(t, k, factory) for t, k in zip(config.targets, keys, strict=True))
        )
    )


def render(checks: Sequence[TargetCheck], scrubber: SecretScrubber) -> str:
    """One line per target: ``online: NAME: ok ...`` or ``online: NAME: FAILED: why``."""
    lines = []
    for check in checks:
        verdict = check.detail if check.ok else f"FAILED: {check.detail}"
        lines.append(scrubber.scrub(escape_controls(f"online: {check.target}: {verdict}")))
    return "\n".join(lines)


def exit_code(checks: Sequence[TargetCheck]) -> int:
    """0 when every target passed, 1 otherwise."""
    return 0 if all(c.ok for c in checks) else 1
