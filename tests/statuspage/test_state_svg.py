"""States from results, the uptime colours, and the SVG pieces (escaping, shapes)."""

from __future__ import annotations

import re
from dataclasses import replace
from xml.etree import ElementTree as ET

import pytest

from monitor.outcome import Outcome
from monitor.statuspage import queries, render, svg
from monitor.statuspage.state import State, availability_class, verdict
from tests.store.factory import chat

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("outcome", "state", "label"),
    [
        (Outcome.OK, State.UP, "up"),
        (Outcome.SERVER_ERROR, State.DOWN, "down"),
        (Outcome.TIMEOUT, State.DOWN, "down"),
        (Outcome.CONNECTION_ERROR, State.DOWN, "down"),
        (Outcome.INVALID_RESPONSE, State.DOWN, "down"),
        (Outcome.AUTH_ERROR, State.REFUSED, "refused (auth)"),
        (Outcome.RATE_LIMITED, State.REFUSED, "refused (quota)"),
        (Outcome.CLIENT_ERROR, State.REFUSED, "refused (client)"),
        (Outcome.SKIPPED, State.SKIPPED, "skipped"),
    ],
)
def test_every_outcome_has_a_state(outcome: Outcome, state: State, label: str) -> None:
    found = verdict(replace(chat(), outcome=outcome))
    assert (found.state, found.label) == (state, label)
    assert found.icon  # never colour alone


def test_degraded_is_up_but_slower_than_the_threshold() -> None:
    slow = replace(chat(), duration_s=1.5)
    assert verdict(slow, None).state is State.UP  # off when unset
    assert verdict(slow, 2.0).state is State.UP
    assert verdict(slow, 1.0).state is State.DEGRADED
    assert verdict(replace(slow, outcome=Outcome.SERVER_ERROR), 1.0).state is State.DOWN
    assert verdict(None).state is State.UNKNOWN


def test_no_data_is_grey_never_green() -> None:
    assert availability_class(None) == "a-none"
    assert availability_class(100.0) == "a-100"
    assert availability_class(99.5) == "a-99"
    assert availability_class(96.0) == "a-95"
    assert availability_class(50.0) == "a-low"


def test_a_badge_escapes_its_text_and_is_well_formed() -> None:
    body = svg.badge('<b>"x" & y</b>', "up", svg.BADGE_COLOURS["up"])
    root = ET.fromstring(body)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == ['<b>"x" & y</b>'] * 2 + ["up"] * 2
    assert root.get("aria-label") == '<b>"x" & y</b>: up'
    wide = ET.fromstring(svg.badge("a-much-longer-model-name", "up", "#000"))
    assert int(wide.get("width")) > int(root.get("width"))


def test_a_sparkline_has_gaps_and_marks_no_data() -> None:
    # HTML, not XML (unquoted attributes keep a 1,000-row page small): read it with re.
    assert 'class="nodata"' in svg.sparkline([None] * 24)
    line = svg.sparkline([0.1, 0.2, None, 0.4, None])
    d = re.search(r'<path d="([^"]*)"', line).group(1)  # type: ignore[union-attr]
    assert d.count("M") == 2 and d.count("L") == 1  # a gap, and a lone point as a dash
    assert d.endswith("h3")
    assert "aria-hidden=true" in line  # the figures beside it say it


def test_a_kept_sparkline_is_redrawn_when_an_hour_changes() -> None:
    """``/`` keeps each model's line on its rollup prefix; new hourly figures must redraw it."""
    prefix = queries.Prefix(())
    before = (0.2, None, 0.3, *([0.25] * 21))
    after = (*before[:-1], 2.5)  # this hour got slow

    def history(hours: tuple[float | None, ...]) -> queries.ModelHistory:
        return queries.ModelHistory((), hours, 0.25, 0.3, prefix)

    assert render._history_spark(history(before)) == svg.sparkline(before)
    assert render._history_spark(history(after)) == svg.sparkline(after)
    assert svg.sparkline(after) != svg.sparkline(before)
    assert render._history_spark(history(after)) == svg.sparkline(after)
    assert render._history_spark(None) == svg.sparkline([])
