"""The cached 24 h window of /api/v1/status (monitor.daemon.status_window), on real SQLite.

The first answer is computed at once; a later one within a minute is the same
rows; past a minute the stale rows are served and one background refresh
brings the new ones; a broken database keeps the last rows.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

from harness import write_config
from sqlalchemy import text

from monitor.config import model as config_mod
from monitor.daemon.status_window import StatusWindow
from monitor.store.startup import Store, open_store
from tests.store.factory import T0, chat


def _store(tmp_path: Path) -> Store:
    return open_store(config_mod.load(write_config(tmp_path, "http://127.0.0.1:9/v1")))


def _write(store: Store, *results: object) -> None:
    for result in results:
        store.writer.submit(result)  # type: ignore[arg-type]
    deadline = time.monotonic() + 10
    while store.writer.pending and time.monotonic() < deadline:
        time.sleep(0.02)


def _probes(rows: bytes) -> dict[str, int]:
    return {row["model"]: row["probes"] for row in json.loads(rows)}


def test_rows_are_cached_then_refreshed_in_the_background(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        now = T0 + timedelta(minutes=1)
        window = StatusWindow(lambda: store, now=lambda: now, max_age_s=60)
        _write(store, chat(1, model="a"), chat(2, model="a"))

        computed_at, rows = window.rows(now)
        assert computed_at == now and _probes(rows) == {"a": 2}

        _write(store, chat(3, model="a"), chat(4, model="b"))
        later = now + timedelta(seconds=30)
        assert window.rows(later) == (now, rows)  # within a minute: the same rows

        stale_at = now + timedelta(seconds=61)
        now = stale_at  # what the background refresh reads as its time
        assert window.rows(stale_at) == (T0 + timedelta(minutes=1), rows)  # served stale
        deadline = time.monotonic() + 10
        while window.rows(stale_at)[0] != stale_at:
            assert time.monotonic() < deadline, "no background refresh"
            time.sleep(0.02)
        assert _probes(window.rows(stale_at)[1]) == {"a": 3, "b": 1}
    finally:
        store.close()


def test_a_failing_database_keeps_the_last_rows(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        _write(store, chat(1, model="a"))
        window = StatusWindow(lambda: store, now=lambda: T0, max_age_s=0)
        computed_at, rows = window.rows(T0 + timedelta(minutes=1))
        assert _probes(rows) == {"a": 1}
        with store.engine.begin() as conn:
            conn.execute(text("DROP TABLE probe_results"))
        assert window._compute(T0 + timedelta(minutes=2)) == (computed_at, rows)
    finally:
        store.close()


def test_no_store_no_rows() -> None:
    window = StatusWindow(lambda: None, now=lambda: T0)
    assert window.rows(T0) == (None, b"[]")
