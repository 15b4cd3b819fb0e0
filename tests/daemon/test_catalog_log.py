"""Catalog events and their log lines stay bounded under a flapping catalog.

monitor.catalog bounds a listing's events (``limit`` per direction plus one
summary each); CatalogLog logs a model's change at most once per quiet
hour and counts the rest in ``nexomon_catalog_flaps_total``. A real
Exporter on its own registry takes the metrics; only the clock is ours.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from monitor.catalog import CatalogEvent, diff
from monitor.daemon.catalog_log import CatalogLog
from monitor.exporter.exporter import Exporter

AT = datetime(2026, 12, 4, tzinfo=UTC)
A = [f"a-{i:05d}" for i in range(50_000)]
B = [f"b-{i:05d}" for i in range(50_000)]


def _events(stored: list[str] | None, listed: list[str], limit: int | None) -> list[CatalogEvent]:
    was = None if stored is None else dict.fromkeys(stored, True)
    return diff(was, listed).events(at=AT, location="eu", target="gw", limit=limit)


def test_a_flapping_listing_has_at_most_two_limits_plus_two_events() -> None:
    events = _events(A, B, limit=50)
    assert len(events) == 2 * 50 + 2
    named = [e for e in events if not e.summary]
    summaries = [e for e in events if e.summary]
    assert [(e.change, e.count) for e in summaries] == [("added", 49_950), ("removed", 49_950)]
    assert {e.change for e in named} == {"added", "removed"}
    assert sum(e.count for e in events if e.change == "added") == 50_000
    assert [e.model for e in named if e.change == "added"] == B[:50]


def test_within_the_limit_every_change_is_named() -> None:
    events = _events(["m1", "m2"], ["m2", "m3"], limit=50)
    assert [(e.model, e.change, e.count) for e in events] == [
        ("m3", "added", 1),
        ("m1", "removed", 1),
    ]
    assert _events(["m1"], ["m2"], limit=None)[0].count == 1
    assert _events(None, A, limit=50) == []  # the first listing is a baseline


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    # Every series carries the exporter's location ("default" unless configured).
    return registry.get_sample_value(name, {"location": "default", **labels}) or 0.0


@pytest.fixture
def setup() -> tuple[CatalogLog, CollectorRegistry, Clock]:
    registry = CollectorRegistry()
    clock = Clock()
    return CatalogLog(Exporter(registry, version="t"), clock=clock), registry, clock


def test_a_flapping_model_is_logged_once_an_hour_and_counted(
    setup: tuple[CatalogLog, CollectorRegistry, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    sink, registry, clock = setup
    caplog.set_level(logging.INFO, logger="nexomon.catalog")
    for i in range(20):  # in and out every 30 s for 10 minutes
        sink([CatalogEvent(AT, "eu", "gw", "m-flap", "removed" if i % 2 else "added")])
        clock.now += 30
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["target gw: model m-flap added"]
    assert _value(registry, "nexomon_catalog_flaps_total", target="gw") == 19
    assert _value(registry, "nexomon_catalog_changes_total", target="gw", change="added") == 10
    clock.now += 3600
    sink([CatalogEvent(AT, "eu", "gw", "m-flap", "added")])
    assert [r.getMessage() for r in caplog.records][1:] == [
        "target gw: model m-flap changed 19 more times in the hour after its last line",
        "target gw: model m-flap added",
    ]


def test_a_summary_event_is_one_line_and_counts_every_model(
    setup: tuple[CatalogLog, CollectorRegistry, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    sink, registry, _ = setup
    caplog.set_level(logging.INFO, logger="nexomon.catalog")
    sink(_events(A, B, limit=50))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 102
    assert "target gw: 49950 more models added (beyond max_models, not named)" in messages
    assert _value(registry, "nexomon_catalog_changes_total", target="gw", change="added") == 50_000
    assert _value(registry, "nexomon_catalog_changes_total", target="gw", change="removed") == (
        50_000
    )


def test_the_table_of_logged_models_is_bounded() -> None:
    registry = CollectorRegistry()
    sink = CatalogLog(Exporter(registry, version="t"), max_tracked=100, clock=Clock())
    for i in range(1000):  # a gateway inventing a new id every time
        sink([CatalogEvent(AT, "eu", "gw", f"new-{i}", "added")])
    assert len(sink._recent) == 100
