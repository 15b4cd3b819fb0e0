"""ProbeResult.replace gives what dataclasses.replace gives."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult

RESULT = ProbeResult(
    started_at=datetime(2026, 12, 6, 12, 0, tzinfo=UTC),
    location="eu",
    target="gw",
    probe="chat",
    model="m",
    outcome=Outcome.OK,
    http_status=200,
    duration_s=0.25,
    phases=Phases(connect=0.01, processing=0.2, transfer=0.04),
    prompt_tokens=16,
    completion_tokens=12,
    total_tokens=28,
    chunk_gaps_s=(0.1, 0.2),
)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(ProbeResult)])
def test_replace_changes_only_the_field_named(name: str) -> None:
    value = {"cost_usd": Decimal("0.000001"), "outcome": Outcome.TIMEOUT}.get(name, object())
    copy = RESULT.replace(**{name: value})
    assert copy == dataclasses.replace(RESULT, **{name: value})
    assert getattr(copy, name) is value
    assert all(
        getattr(copy, f.name) is getattr(RESULT, f.name)
        for f in dataclasses.fields(ProbeResult)
        if f.name != name
    )


def test_replace_with_no_field_of_that_name_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="no field 'costs'"):
        RESULT.replace(costs=1)
