"""The cached 24 h window of /api/v1/status (monitor.daemon.status_window), on real SQLite.

The first answer is computed at once; later requests get the cached rows
and never compute; a keeper thread refreshes them in the background while
someone asks, and stops when nobody does; a broken database keeps the last
rows.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from harness import write_config
from sqlalchemy import text

from monitor.config import model as config_mod
from monitor.daemon.status_window import StatusWindow
from monitor.store.startup import Store, open_store
from tests.store.factory import T0, chat


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(config_mod.load(write_config(tmp_path, "http://127.0.0.1:9/v1")))
    yield opened
    opened.close()


def _write(store: Store, *results: object) -> None:
    for result in results:
        store.writer.submit(result)  # type: ignore[arg-type]
    deadline = time.monotonic() + 10
    while store.writer.pending and time.monotonic() < deadline:
        time.sleep(0.02)


def _probes(rows: bytes) -> dict[str, int]:
    return {row["model"]: row["probes"] for row in json.loads(rows)}


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_requests_get_the_cached_rows_without_computing(store: Store) -> None:
    now = T0 + timedelta(minutes=1)
    window = StatusWindow(lambda: store, now=lambda: now, max_age_s=60)
    _write(store, chat(1, model="a"), chat(2, model="a"))
    computed_at, rows = window.rows(now)
    assert computed_at == now and _probes(rows) == {"a": 2}

    _write(store, chat(3, model="a"), chat(4, model="b"))
    later = now + timedelta(minutes=5)  # stale by the clock: still served, never computed here
    assert window.rows(later) == (now, rows)
    window.close()


def test_the_keeper_refreshes_the_rows_in_the_background(store: Store) -> None:
    clock = [T0 + timedelta(minutes=1)]
    window = StatusWindow(lambda: store, now=lambda: clock[0], max_age_s=0.05)
    _write(store, chat(1, model="a"), chat(2, model="a"))
    assert _probes(window.rows(clock[0])[1]) == {"a": 2}

    _write(store, chat(3, model="a"), chat(4, model="b"))
    clock[0] += timedelta(seconds=30)
    _wait_for(lambda: window.rows(clock[0])[0] == clock[0], "no background refresh")
    assert _probes(window.rows(clock[0])[1]) == {"a": 3, "b": 1}
    window.close()
    _wait_for(lambda: window._keeper is None, "close() left the keeper running")


def test_the_keeper_stops_when_nobody_asks_and_the_next_request_restarts_it(store: Store) -> None:
    clock = [T0 + timedelta(minutes=1)]
    window = StatusWindow(lambda: store, now=lambda: clock[0], max_age_s=0.05, idle_s=0.3)
    _write(store, chat(1, model="a"))
    first = window.rows(clock[0])
    _wait_for(lambda: window._keeper is None, "the keeper kept going with nobody asking")

    _write(store, chat(2, model="a"))
    clock[0] += timedelta(minutes=10)
    assert window.rows(clock[0]) == first  # the rows it left; the keeper starts again
    _wait_for(lambda: _probes(window.rows(clock[0])[1]) == {"a": 2}, "not restarted")
    window.close()


def test_a_failing_database_keeps_the_last_rows(store: Store) -> None:
    _write(store, chat(1, model="a"))
    window = StatusWindow(lambda: store, now=lambda: T0, max_age_s=60)
    computed_at, rows = window.rows(T0 + timedelta(minutes=1))
    assert _probes(rows) == {"a": 1}
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE probe_results"))
    assert window._compute(T0 + timedelta(minutes=2)) == (computed_at, rows)
    window.close()


def test_no_store_no_rows() -> None:
    window = StatusWindow(lambda: None, now=lambda: T0)
    assert window.rows(T0) == (None, b"[]")
    window.close()


def test_the_keeper_warms_between_refreshes_only_while_asked(store: Store) -> None:
    calls: list[float] = []
    window = StatusWindow(
        lambda: store, now=lambda: T0, max_age_s=60, idle_s=0.5,
        warm=lambda: calls.append(time.monotonic()), warm_every_s=0.05,
    )  # fmt: skip
    _write(store, chat(1, model="a"))
    window.rows(T0 + timedelta(minutes=1))
    _wait_for(lambda: len(calls) >= 4, "warm() not called every warm_every_s")
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(calls))
    _wait_for(lambda: window._keeper is None, "the keeper kept warming with nobody asking")
    stopped = len(calls)
    time.sleep(0.2)
    assert len(calls) == stopped
    window.close()


def test_a_failing_warm_does_not_stop_the_refresh(store: Store) -> None:
    clock = [T0 + timedelta(minutes=1)]
    tries = [0]

    def broken() -> None:
        tries[0] += 1
        raise RuntimeError("bug")

    window = StatusWindow(
        lambda: store, now=lambda: clock[0], max_age_s=0.2, warm=broken, warm_every_s=0.02
    )
    _write(store, chat(1, model="a"))
    window.rows(clock[0])
    _write(store, chat(2, model="a"))
    clock[0] += timedelta(seconds=30)
    _wait_for(lambda: _probes(window.rows(clock[0])[1]) == {"a": 2}, "no refresh after warm raised")
    assert tries[0] >= 2 and window._keeper is not None
    window.close()
