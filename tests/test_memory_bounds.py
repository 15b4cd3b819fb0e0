"""Memory stays bounded: the per-result path keeps no per-result state, SQLite's
statement cache stays small, and a current database is opened without Alembic.

RSS over a long run is measured by benchmarks/memory.py (and diagnosed by
benchmarks/memory_trace.py), never asserted here; these tests pin the causes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import subprocess
import sys
import textwrap
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.daemon.statelog import StateLog
from monitor.exporter.exporter import Exporter
from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.store.batch import write_batch
from monitor.store.db import alembic_config, head_revision, make_engine, upgrade
from tests.store.factory import schema_versions


def _result(model: str, n: int, ok: bool) -> ProbeResult:
    return ProbeResult(
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        location="here",
        target="gw",
        probe="chat",
        model=model,
        outcome=Outcome.OK if ok else Outcome.SERVER_ERROR,
        http_status=200 if ok else 500,
        duration_s=0.01 + n * 1e-6,
        phases=Phases(resolve=0.0, connect=0.001, processing=0.005, transfer=0.001),
        prompt_tokens=5,
        completion_tokens=1,
        total_tokens=6,
        cost_usd=Decimal("0.000001"),
        error=None if ok else f"HTTP 500 #{n}",
    )


def test_result_path_heap_stays_flat_over_rounds() -> None:
    """Exporter + StateLog + /metrics render over the same models: after the
    first rounds created every series, further rounds add nothing to the heap."""
    models = [f"m{i:03d}" for i in range(200)]
    registry = CollectorRegistry()
    exporter = Exporter(registry, version="test")
    exporter.configure_target("gw", len(models))
    # Its lines go nowhere: pytest's log capture would keep every record.
    quiet = logging.getLogger("test_memory_bounds.statelog")
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    state = StateLog(quiet)

    def one_round(r: int) -> None:
        for i, model in enumerate(models):
            result = _result(model, r * 1000 + i, ok=(r + i) % 7 != 0)  # some flap
            exporter.observe(result)
            state(result)
        exporter.render(registry)

    for r in range(5):  # every series, label and cache entry exists after these
        one_round(r)
    gc.collect()
    tracemalloc.start()
    try:
        # Warm up to round 15: every per-job counter then has two digits and
        # keeps two through round 45, so the cached exposition lines keep
        # their length (a counter going from 9 to 10 grows ~1,800 lines by a
        # byte each, which is text, not a leak: it flaked this test once).
        for r in range(5, 15):
            one_round(r)
        gc.collect()
        warm, _ = tracemalloc.get_traced_memory()
        for r in range(15, 45):
            one_round(r)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 30 rounds x 200 results: even 100 bytes kept per result would be 600 kB.
    assert after - warm < 64 * 1024
    # The state log keeps one entry per failing job, never one per result.
    assert 0 < len(state._failing) <= len(models)


_UPGRADE = textwrap.dedent(
    """
    import sys
    from monitor.store.db import upgrade

    upgrade(sys.argv[1])
    print(sorted({m.split(".")[0] for m in sys.modules} & {"alembic", "mako", "pygments"}))
    """
)


def _upgrade_in_child(url: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _UPGRADE, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


def test_upgrade_of_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nexomon.db'}"
    assert _upgrade_in_child(url) != "[]"  # a fresh database: Alembic migrates it
    assert schema_versions(url) == [head_revision()]
    assert _upgrade_in_child(url) == "[]"  # a restart: nothing to do, nothing imported
    assert schema_versions(url) == [head_revision()]


def test_upgrade_of_an_older_database_still_migrates(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'nexomon.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.downgrade(config, "-1")
    finally:
        engine.dispose()
    assert schema_versions(url) != [head_revision()]
    upgrade(url)
    assert schema_versions(url) == [head_revision()]


def _sqlite_heap_mb() -> float:
    import _sqlite3

    name = ctypes.util.find_library("sqlite3")
    lib = ctypes.CDLL(name) if name else ctypes.CDLL(_sqlite3.__file__)
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return lib.sqlite3_memory_used() / 2**20


def test_sqlite_statement_cache_stays_small_across_batch_sizes(tmp_path: Path) -> None:
    """Every batch size is a different multi-row INSERT; with the sqlite3
    module's default 128 cached statements, 120 sizes kept ~17 MB in SQLite."""
    url = f"sqlite:///{tmp_path / 'nexomon.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        before = _sqlite_heap_mb()
        n = 0
        for size in range(1, 121):
            items = [(f"{n + i:032x}", _result(f"m{i}", i, True)) for i in range(size)]
            n += size
            with engine.begin() as conn:
                write_batch(conn, items)
        grown = _sqlite_heap_mb() - before
    finally:
        engine.dispose()
    assert grown < 8.0
