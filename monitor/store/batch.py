"""Write one batch of results, and its catalog changes, in one transaction.

Rows are keyed by ``result_id``; the insert ignores ids already in the
table (ON CONFLICT DO NOTHING on SQLite and PostgreSQL, the two supported
backends), so a replayed batch is a no-op. Only
rows that are really new feed the catalog, in submission order.

The insert is the writer thread's hot path (one row per probe), so it skips
SQLAlchemy's per-row work (insertmanyvalues statement building and one bind
processor call per value, ~45 µs a row on SQLite): one plain
``INSERT ... ON CONFLICT (result_id) DO NOTHING`` text per dialect goes to
the driver's executemany through ``Connection.exec_driver_sql`` (so
SQLAlchemy still owns the transaction and wraps driver errors, which the
writer tells apart), with positional tuples converted by ``_row_values``
exactly as the column types' bind processors would (tests/store/
test_batch_fastpath.py compares every stored column with SQLAlchemy's own
insert on both backends). Runs of chat rows go in one executemany, counted
by the driver's summed rowcount (sqlite3 and psycopg 3 both add up the rows
each execution changed; a conflict changes none); a ``models`` row goes on
its own so its rowcount says whether it is new, which decides its catalog
events. Rows keep submission order, so ``id`` order is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, select, update

from monitor import catalog
from monitor.catalog import CatalogEvent
from monitor.results import ProbeResult
from monitor.store.models import CatalogEventRow, CatalogModel, ProbeResultRow
from monitor.store.spool import Item

RESULTS = ProbeResultRow.__table__


# The insert's columns: every one but the autoincrement id, in table order,
# which is also _row_values' order (tests/store/test_batch_fastpath.py holds
# them equal to the column-name mapping SQLAlchemy's insert was given).
COLUMNS = tuple(c.name for c in RESULTS.columns if c.name != "id")


@cache
def insert_sql(paramstyle: str) -> str:
    """``INSERT ... ON CONFLICT (result_id) DO NOTHING`` in one driver's paramstyle.

    The names need no quoting (lower case, not reserved on either backend;
    SQLAlchemy renders them bare too).
    """
    mark = "?" if paramstyle == "qmark" else "%s"  # sqlite3: qmark; psycopg: pyformat
    return (
        f"INSERT INTO {RESULTS.name} ({', '.join(COLUMNS)})"
        f" VALUES ({', '.join([mark] * len(COLUMNS))})"
        " ON CONFLICT (result_id) DO NOTHING"
    )


def _row_values(result_id: str, r: ProbeResult, sqlite: bool) -> tuple[Any, ...]:
    """One result's ``probe_results`` values in ``COLUMNS`` order, holding what
    SQLAlchemy's bind processors would bind.

    Both: ``UTCDateTime`` turns the time into UTC (naive input taken as UTC).
    SQLite (no native datetime, decimal or boolean): ``sqlite.DATETIME``
    binds naive UTC as ``YYYY-MM-DD HH:MM:SS.ffffff`` (microseconds always,
    the year 4 digits: ``isoformat(" ", "microseconds")`` of the aware UTC
    time with its ``+00:00`` cut off), ``Numeric`` binds ``float(cost)``,
    ``Boolean`` binds ``int()``. ``Float`` binds ``float()`` too, not
    repeated here: those columns have REAL affinity, which stores an int as
    the same REAL. PostgreSQL (psycopg): aware datetime, Decimal, bool as
    they are (no bind processors).
    """
    at = r.started_at
    tz = at.tzinfo
    if tz is not UTC:
        at = at.replace(tzinfo=UTC) if tz is None else at.astimezone(UTC)
    cost: Any = r.cost_usd
    success: Any = r.success
    when: Any = at
    if sqlite:
        when = at.isoformat(" ", "microseconds")[:26]
        success = int(success)
        if cost is not None:
            cost = float(cost)
    p = r.phases
    return (
        result_id,
        when,
        r.location,
        r.target,
        r.probe,
        r.model,
        r.outcome.value,
        success,
        r.http_status,
        r.duration_s,
        p.resolve,
        p.connect,
        p.tls,
        p.processing,
        p.transfer,
        r.request_id,
        r.error,
        r.prompt_tokens,
        r.completion_tokens,
        r.total_tokens,
        cost,
        r.ratelimit_limit,
        r.ratelimit_remaining,
        r.retry_after_s,
        r.finish_reason,
        r.response_model,
        r.ratelimit_reset_s,
        r.ratelimit_limit_tokens,
        r.ratelimit_remaining_tokens,
        r.ratelimit_reset_tokens_s,
        r.substituted_by,
    )


def write_batch(
    conn: Connection, items: list[Item], catalog_limits: Mapping[str, int] | None = None
) -> tuple[int, list[CatalogEvent]]:
    """Insert ``items`` inside the caller's transaction.

    Returns the number of rows really inserted and the catalog events of the
    new listings, in submission order. ``catalog_limits`` (target ->
    max_models) bounds each listing's named events (see ``apply_listing``).
    """
    dialect = conn.dialect
    if dialect.name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"unsupported database dialect {dialect.name!r}")
    sql = insert_sql(dialect.paramstyle)
    on_sqlite = dialect.name == "sqlite"
    inserted = 0
    run: list[tuple[Any, ...]] = []
    new_listings: list[tuple[ProbeResult, tuple[str, ...]]] = []
    for rid, r in items:
        model_ids = r.model_ids if r.probe == "models" else None
        if model_ids is None:
            run.append(_row_values(rid, r, on_sqlite))
            continue
        if run:
            inserted += _rowcount(conn, sql, run)
            run = []
        if _rowcount(conn, sql, [_row_values(rid, r, on_sqlite)]):
            inserted += 1
            new_listings.append((r, model_ids))
    if run:
        inserted += _rowcount(conn, sql, run)
    # Catalog work after every insert, as before: only listings really new.
    events: list[CatalogEvent] = []
    for r, model_ids in new_listings:
        limit = None if catalog_limits is None else catalog_limits.get(r.target)
        events.extend(apply_listing(conn, r.target, r.location, r.started_at, model_ids, limit))
    return inserted, events


def _rowcount(conn: Connection, sql: str, rows: list[tuple[Any, ...]]) -> int:
    """Rows ``sql`` really inserted: the driver's rowcount, summed over executemany."""
    count = conn.exec_driver_sql(sql, rows if len(rows) > 1 else rows[0]).rowcount
    if count < 0:  # a driver that cannot count would break the exactly-once accounting
        raise RuntimeError(f"{conn.dialect.driver} reported no rowcount for the insert")
    return count


def apply_listing(
    conn: Connection,
    target: str,
    location: str,
    at: datetime,
    model_ids: tuple[str, ...],
    limit: int | None = None,
) -> list[CatalogEvent]:
    """Update ``catalog_models`` for one listing and append its ``catalog_events``.

    ``limit`` (the target's max_models) bounds the named events per direction;
    the rest is one summary event each (monitor.catalog).
    """
    table = CatalogModel.__table__
    stored = {
        row.model: bool(row.listed)
        for row in conn.execute(
            select(CatalogModel.model, CatalogModel.listed).where(CatalogModel.target == target)
        )
    }
    model_ids = catalog.usable_ids(model_ids)
    change = catalog.diff(stored, model_ids)
    listed = set(model_ids)
    new = sorted(listed - stored.keys())
    if new:
        conn.execute(
            table.insert(),
            [
                {"target": target, "model": m, "first_seen": at, "last_seen": at, "listed": True}
                for m in new
            ],
        )
    seen_again = sorted(listed & stored.keys())
    for start in range(0, len(seen_again), 500):
        conn.execute(
            update(CatalogModel)
            .where(CatalogModel.target == target)
            .where(CatalogModel.model.in_(seen_again[start : start + 500]))
            .values(last_seen=at, listed=True)
        )
    if change.removed:
        conn.execute(
            update(CatalogModel)
            .where(CatalogModel.target == target)
            .where(CatalogModel.model.in_(sorted(change.removed)))
            .values(listed=False)
        )
    events = change.events(at=at, location=location, target=target, limit=limit)
    if events:
        conn.execute(
            CatalogEventRow.__table__.insert(),
            [
                {
                    "at": e.at,
                    "location": e.location,
                    "target": e.target,
                    "model": e.model,
                    "change": e.change,
                    "count": e.count,
                }
                for e in events
            ],
        )
    return events
