"""One round of probes right now: what ``nexomon probe`` runs and prints.

A round probes every selected target concurrently. Within a target the
models probe goes first, because with ``models = ["*"]`` the listed ids
decide which chat probes run; the chat probes then run concurrently.
With ``model`` given (``--model``), a target runs only that one chat probe.
A target with ``contract_interval`` also runs its documented-contract checks;
one with ``stream_interval`` a stream probe per chat-probed model, after the
chat probes (with ``--model``, that model's).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from monitor.catalog import usable_ids
from monitor.config.model import Config, TargetConfig
from monitor.daemon.runner import ProbeRunner
from monitor.probes import contract
from monitor.results import ProbeResult
from monitor.untrusted import escape_controls


def chat_models(target: TargetConfig, listed: Sequence[str] | None) -> list[str]:
    """The models a target chat-probes: its configured ids, or the listing for "*".

    "*" takes listed ids in the gateway's order, at most ``max_models`` of them.
    When the listing failed, "*" yields no chat probe (nothing to name).
    """
    if "*" not in target.models:
        return list(target.models)
    explicit = [m for m in target.models if m != "*"]
    wanted = explicit + [m for m in usable_ids(listed or ()) if m not in explicit]
    return wanted[: target.max_models]


async def run_round(
    runner: ProbeRunner,
    config: Config,
    *,
    target: str | None = None,
    model: str | None = None,
) -> list[ProbeResult | None]:
    """Runs the round; a None entry is a probe that crashed (a bug, already logged)."""
    targets = [t for t in config.targets if target is None or t.name == target]
    per_target = await asyncio.gather(*(_target_round(runner, t, model) for t in targets))
    return [r for results in per_target for r in results]


async def _target_round(
    runner: ProbeRunner, target: TargetConfig, model: str | None
) -> list[ProbeResult | None]:
    if model is not None:
        # --model names the one chat probe; a listing would be a request
        # nobody sees (its result is not part of the round).
        return [
            await runner.run(target.name, "chat", model),
            *await _streams(runner, target, [model]),
        ]
    listing = await runner.run(target.name, "models")
    names = chat_models(target, listing.model_ids if listing is not None else None)
    chats = await asyncio.gather(*(runner.run(target.name, "chat", m) for m in names))
    streams = await _streams(runner, target, names)
    checks: list[ProbeResult | None] = []
    if target.contract_interval is not None:  # opt-in, like the daemon's contract jobs
        checks = await asyncio.gather(
            *(runner.run(target.name, contract.KIND, c) for c in contract.CHECKS)
        )
    return [listing, *chats, *streams, *checks]


async def _streams(
    runner: ProbeRunner, target: TargetConfig, models: Sequence[str]
) -> list[ProbeResult | None]:
    """The stream probes of ``models`` when the target opted in (``stream_interval``)."""
    if target.stream_interval is None:
        return []
    return list(await asyncio.gather(*(runner.run(target.name, "stream", m) for m in models)))


COLUMNS = (
    ("TARGET", lambda r: r.target),
    ("PROBE", lambda r: r.probe),
    ("MODEL", lambda r: r.model or "-"),
    ("OUTCOME", lambda r: r.outcome.value),
    ("HTTP", lambda r: "-" if r.http_status is None else str(r.http_status)),
    ("LATENCY_MS", lambda r: "-" if r.duration_s is None else f"{r.duration_s * 1000:.1f}"),
    ("TOKENS_IN", lambda r: _dash(r.prompt_tokens)),
    ("TOKENS_OUT", lambda r: _dash(r.completion_tokens)),
    ("RL_REMAINING", lambda r: _ratelimit(r)),
    ("REQUEST_ID", lambda r: r.request_id or "-"),
    ("ERROR", lambda r: r.error or ""),
)


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _ratelimit(result: ProbeResult) -> str:
    if result.ratelimit_remaining is None:
        return "-"
    if result.ratelimit_limit is None:
        return str(result.ratelimit_remaining)
    return f"{result.ratelimit_remaining}/{result.ratelimit_limit}"


def render_table(results: Sequence[ProbeResult]) -> str:
    """An aligned plain-text table, one row per result; errors cut to 60 chars.

    Control characters in a cell (a model id or an error holding ``\\n`` or
    ``ESC``) are shown as escapes (monitor.untrusted.escape_controls): one
    row stays one line and nothing reaches the terminal as a command.
    """
    rows = [[title for title, _ in COLUMNS]]
    for result in results:
        row = [escape_controls(getter(result)) for _, getter in COLUMNS]
        row[-1] = row[-1] if len(row[-1]) <= 60 else row[-1][:59] + "…"
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def render_json(results: Sequence[ProbeResult]) -> str:
    return json.dumps([r.to_json() for r in results], indent=2)
