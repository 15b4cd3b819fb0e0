"""write_batch's driver-level insert stores exactly what SQLAlchemy's insert stored.

Each test runs on SQLite and PostgreSQL. The reference is the previous
``write_batch``: SQLAlchemy's ``insert().on_conflict_do_nothing().returning()``
over ``result_row`` dicts (bind processors, insertmanyvalues). The same
batches go through it into one database and through ``write_batch`` into
another; the return values must match, and every stored column of every
table must be the same value of the same storage type (SQLite ``typeof``,
PostgreSQL's text form of the stored value).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from monitor.catalog import CatalogEvent
from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.store import batch
from monitor.store.batch import RESULTS, apply_listing, write_batch
from monitor.store.db import make_engine, upgrade
from monitor.store.models import CatalogEventRow, CatalogModel
from monitor.store.spool import Item
from monitor.store.writer import ResultWriter
from tests.store.factory import T0, chat, listing
from tests.store.pgcluster import PgCluster

TABLES = (RESULTS, CatalogModel.__table__, CatalogEventRow.__table__)


def result_row(result_id: str, r: ProbeResult) -> dict[str, Any]:
    """The ``probe_results`` column values of one result (the previous write_batch's rows)."""
    return {
        "result_id": result_id,
        "started_at": r.started_at,
        "location": r.location,
        "target": r.target,
        "probe": r.probe,
        "model": r.model,
        "outcome": r.outcome.value,
        "success": r.success,
        "http_status": r.http_status,
        "duration_s": r.duration_s,
        "resolve_s": r.phases.resolve,
        "connect_s": r.phases.connect,
        "tls_s": r.phases.tls,
        "processing_s": r.phases.processing,
        "transfer_s": r.phases.transfer,
        "request_id": r.request_id,
        "error": r.error,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": r.total_tokens,
        "cost_usd": r.cost_usd,
        "ratelimit_limit": r.ratelimit_limit,
        "ratelimit_remaining": r.ratelimit_remaining,
        "retry_after_s": r.retry_after_s,
        "finish_reason": r.finish_reason,
        "response_model": r.response_model,
        "ratelimit_reset_s": r.ratelimit_reset_s,
        "ratelimit_limit_tokens": r.ratelimit_limit_tokens,
        "ratelimit_remaining_tokens": r.ratelimit_remaining_tokens,
        "ratelimit_reset_tokens_s": r.ratelimit_reset_tokens_s,
        "substituted_by": r.substituted_by,
    }


def reference_write_batch(conn: Connection, items: list[Item]) -> tuple[int, list[CatalogEvent]]:
    """The previous write_batch, kept verbatim as the reference."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(RESULTS)
        .on_conflict_do_nothing(index_elements=["result_id"])
        .returning(RESULTS.c.result_id)
    )
    inserted = set(conn.scalars(stmt, [result_row(rid, r) for rid, r in items]))
    fresh = [(rid, r) for rid, r in items if rid in inserted]
    events: list[CatalogEvent] = []
    for _, r in fresh:
        if r.probe == "models" and r.model_ids is not None:
            events.extend(apply_listing(conn, r.target, r.location, r.started_at, r.model_ids))
    return len(fresh), events


def odd_results() -> list[ProbeResult]:
    """Values where a conversion could differ from SQLAlchemy's."""
    plus2 = timezone(timedelta(hours=2))
    return [
        chat(0),
        chat(1, started_at=datetime(2025, 11, 20, 12, 0, 0)),  # naive: taken as UTC
        chat(2, started_at=datetime(2025, 11, 20, 14, 0, 0, 5, tzinfo=plus2)),
        chat(3, started_at=T0.replace(microsecond=0)),  # isoformat would drop ".000000"
        chat(4, started_at=datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)),  # 3-digit year
        chat(
            5,
            outcome=Outcome.TIMEOUT,
            http_status=None,
            duration_s=30,  # an int in a Float column
            phases=Phases(resolve=None, connect=0, tls=None, processing=1, transfer=0),
            prompt_tokens=None,
            completion_tokens=None,
            total_tokens=None,
            cost_usd=None,
            ratelimit_limit=None,
            ratelimit_remaining=None,
            error="read timeout: 100% 'quoted' \"double\" %s %(x)s ?; ünïcode ✓",
            finish_reason=None,
            response_model=None,
        ),
        chat(6, outcome=Outcome.SKIPPED, duration_s=None, retry_after_s=12.5, http_status=None),
        chat(7, cost_usd=Decimal("0.0000000123456789")),  # beyond NUMERIC(18, 9)'s scale
        chat(8, cost_usd=Decimal("0"), ratelimit_limit=2**40, ratelimit_remaining=2**33),
        chat(9, cost_usd=Decimal("123456789.123456789"), duration_s=0.1 + 0.2),
        chat(10, cost_usd=Decimal("1.5E-7"), request_id=None, error=""),
    ]


def listing_failed(i: int) -> ProbeResult:
    """A models probe that got no listing (model_ids None): no catalog change."""
    return listing(i, []).replace(outcome=Outcome.SERVER_ERROR, http_status=500, model_ids=None)


def batches() -> list[list[Item]]:
    """Chat runs split by listings; the later batches replay some ids."""
    results = odd_results()
    first: list[Item] = [(f"a{i:031x}", r) for i, r in enumerate(results[:5])]
    first.insert(2, ("l" + "1" * 31, listing(20, ["m1", "m2"])))
    first.insert(4, ("l" + "2" * 31, listing(21, ["x1"], target="other")))
    first.append(("f" + "1" * 31, listing_failed(22)))
    first.append(("l" + "5" * 31, listing(25, ["m1", "m2", "m4"])))
    second: list[Item] = [(f"a{i:031x}", r) for i, r in enumerate(results)]  # 5 replayed
    second[6:6] = [
        ("l" + "1" * 31, listing(20, ["m1", "m2"])),
        ("l" + "3" * 31, listing(23, ["m2"])),
    ]
    second.append(("l" + "4" * 31, listing(24, ["m2", "m3"])))
    return [first, second, second, [first[0]]]


@pytest.fixture
def engines(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Engine, Engine]]:
    """Two empty migrated databases on ``backend``: (reference, fast path)."""
    if backend == "sqlite":
        urls = [f"sqlite:///{tmp_path / name}" for name in ("ref.db", "new.db")]
        names: list[str] = []
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        cluster.start()
        names = [cluster.create_database(), cluster.create_database()]
        urls = [cluster.url(name) for name in names]
    made = []
    try:
        for url in urls:
            upgrade(url)
            made.append(make_engine(url))
        yield made[0], made[1]
    finally:
        for engine in made:
            engine.dispose()
        for name in names:
            cluster.drop_database(name)


def stored(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every column of every row of the written tables, with its storage form."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        on_sqlite = conn.dialect.name == "sqlite"
        for table in TABLES:
            parts = []
            for c in table.columns:
                parts += [
                    c.name,
                    f"typeof({c.name})" if on_sqlite else f"{c.name}::text AS {c.name}_text",
                ]
            sql = f"SELECT {', '.join(parts)} FROM {table.name} ORDER BY id"
            tables[table.name] = [tuple(row) for row in conn.exec_driver_sql(sql)]
    return tables


def test_columns_follow_result_row() -> None:
    row = result_row("x" * 32, chat(1))
    assert tuple(row) == batch.COLUMNS
    assert len(batch._row_values("x" * 32, chat(1), True)) == len(batch.COLUMNS)
    assert len(batch._row_values("x" * 32, chat(1), False)) == len(batch.COLUMNS)


def test_stores_what_sqlalchemy_stored(engines: tuple[Engine, Engine]) -> None:
    reference, fast = engines
    for items in batches():
        with reference.begin() as conn:
            expected = reference_write_batch(conn, items)
        with fast.begin() as conn:
            got = write_batch(conn, items)
        assert got == expected
    want, have = stored(reference), stored(fast)
    assert len(want["probe_results"]) == 17 and len(want["catalog_events"]) == 4
    for name in want:
        assert have[name] == want[name], name


def test_counts_only_new_rows_and_their_events_in_order(engines: tuple[Engine, Engine]) -> None:
    _, engine = engines
    first, second, replay, _ = batches()
    with engine.begin() as conn:
        inserted, events = write_batch(conn, first)
    assert inserted == len(first)
    # The first listing of a target is its baseline: no events.
    assert [(e.target, e.model, e.change) for e in events] == [("nexorouter", "m4", "added")]
    with engine.begin() as conn:
        inserted, events = write_batch(conn, second)
    assert inserted == len(second) - 6  # five chat rows and listing l1 were there
    assert [(e.model, e.change, e.at) for e in events] == [
        ("m1", "removed", listing(23, []).started_at),  # l3 lists only m2
        ("m4", "removed", listing(23, []).started_at),
        ("m3", "added", listing(24, []).started_at),
    ]
    with engine.begin() as conn:
        assert write_batch(conn, replay) == (0, [])
    with engine.connect() as conn:
        ids = list(
            conn.exec_driver_sql("SELECT result_id FROM probe_results ORDER BY id").scalars()
        )
    # Submission order, listings included, whatever run they were inserted in.
    assert ids == [rid for rid, _ in first] + [
        rid for rid, _ in second if rid not in {i for i, _ in first}
    ]


def test_a_rejected_row_raises_sqlalchemy_error_and_the_writer_refuses_only_it(
    engines: tuple[Engine, Engine], tmp_path: Path
) -> None:
    _, engine = engines
    bad = chat(1).replace(location=None)  # NOT NULL on both backends
    with pytest.raises(IntegrityError), engine.begin() as conn:
        write_batch(conn, [("b" * 32, chat(0)), ("c" * 32, bad)])
    writer = ResultWriter(engine, spool_dir=tmp_path / "spool", batch_size=10, flush_interval=0.05)
    writer.start()
    for result in (chat(0), bad, listing(2, ["m1"]), chat(3)):
        writer.submit(result)
    writer.close()
    assert writer.written_total == 3 and writer.refused_total == 1 and writer.pending == 0
    assert writer.dropped_total == 0  # kept in the dead-letter file, not lost
    with engine.connect() as conn:
        probes = conn.exec_driver_sql("SELECT probe FROM probe_results ORDER BY id").scalars()
        assert list(probes) == ["chat", "models", "chat"]
