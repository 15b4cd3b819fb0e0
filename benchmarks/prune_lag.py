"""Scheduler lag while retention prunes a day of raw rows under a daemon probing 1,000 models.

    python benchmarks/prune_lag.py [--jobs 1000] [--interval 10] [--seconds 20]
                                   [--prune-models 1000] [--to-date-models 10000] [--pg] [--json]

The real daemon (``bench_common.InProcessDaemon``: scheduler, runner, writer,
exporter, HTTP routes, hourly maintenance) probes ``--jobs`` chat models every
``--interval`` s against the nginx responder, pinned as in
``benchmarks/scheduler_lag.py``, storing into SQLite (or, with ``--pg``, a
throwaway PostgreSQL cluster). Before it starts, the database gets one day of
raw rows for ``--prune-models`` models at one probe a minute (1.44 M rows by
default; ``benchmarks/history_data.py``, the writer's own insert tuples),
6 to 7 days old, and the rollup over them is built, so the daemon's own
maintenance at start has nothing big to do.

After one interval of warm-up, lags are recorded for ``--seconds`` s
(``baseline``), then ``retention.prune`` runs in a worker thread on the
daemon's engine, as the maintenance loop runs it, with ``now`` a day later
than the clock so that exactly that day is past ``retention_days`` (7): the
``during prune`` row holds every lag recorded while it ran. Target: p99 <
50 ms during the prune.

Then the rollup's to-date rows (``rollup.roll_to_date``, what each hourly
refresh adds): the database also holds the 23 hour rows of the day before
for ``--to-date-models`` models (``history_data.rollup_rows``, 10,000 by
default: the issue's largest catalog at the end of a day, its heaviest
``dtd`` build), and ``roll_to_date`` at 23:00 of that day runs in a worker
thread on the daemon's engine: the ``during to-date rows`` row. 0 skips it.

Then the running totals' daily step (``rollup.roll_running`` at a midnight,
what the first hourly refresh of a UTC day adds): the database also holds the
day rows of the two days before ``now``'s for the same ``--to-date-models``
models and the ``atd`` row at yesterday's midnight (built in ``prepare``), and
today's ``atd`` row (yesterday's plus yesterday's day rows, 2 rows a model) is
built in a worker thread on the daemon's engine: the ``during running totals``
row.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import history_data as data
from bench_common import (
    PROBER_CORE,
    InProcessDaemon,
    Responder,
    emit,
    parser,
    percentile,
    pin,
    write_config,
)

RETENTION_DAYS = 7  # bench_common.write_config's


def lag_row(setup: str, lags: list[float], seconds: float, **extra: object) -> dict:
    return {
        "setup": setup,
        "seconds": seconds,
        "runs": len(lags),
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "lag_max_ms": max(lags, default=float("nan")) * 1000,
        **extra,
    }


def to_date_end(now: datetime) -> datetime:
    """23:00 of the UTC day before ``now``'s: the end of the ``dtd`` row measured."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=1)


def prepare(url: str, models: int, now: datetime, dsn: str | None, to_date: int = 0) -> int:
    """Schema, one day of raw rows ending 6 days before ``now``, the rollup over them, and
    the hour rows of the day before ``now``'s for ``to_date`` models."""
    from monitor.store import rollup
    from monitor.store.batch import COLUMNS
    from monitor.store.db import make_engine, upgrade

    upgrade(url)
    rows = data.raw_rows(now - timedelta(days=6), models, 1, sqlite=dsn is None)
    if dsn is None:
        loaded = data.load_sqlite(url.removeprefix("sqlite:///"), rows, "probe_results", COLUMNS)
    else:
        loaded = data.load_pg(dsn, rows, "probe_results", COLUMNS)
    engine = make_engine(url)
    rollup.refresh(engine, now)
    engine.dispose()
    if to_date:
        end = to_date_end(now)
        hours = (
            row for row in data.rollup_rows(end, to_date, 1, sqlite=dsn is None) if row[0] == "hour"
        )
        midnight = end + timedelta(hours=1)
        days = (  # the day rows of the two days before ``now``'s
            row
            for row in data.rollup_rows(midnight, to_date, 2, sqlite=dsn is None)
            if row[0] == "day"
        )
        for batch in (hours, days):
            if dsn is None:
                sqlite_path = url.removeprefix("sqlite:///")
                data.load_sqlite(sqlite_path, batch, "probe_rollup_hourly", data.ROLLUP_COLUMNS)
            else:
                data.load_pg(dsn, batch, "probe_rollup_hourly", data.ROLLUP_COLUMNS)
        engine = make_engine(url)
        with engine.begin() as conn:  # yesterday's running total: the day before's rows
            rollup.roll_running(conn, midnight - timedelta(days=1), midnight - timedelta(days=1))
        engine.dispose()
    return loaded


async def measure(
    cfg: Path, interval: float, seconds: float, now: datetime, to_date: int = 0
) -> list[dict]:
    from monitor.store import retention, rollup

    async with InProcessDaemon(cfg) as d:
        await asyncio.sleep(interval)
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        baseline = d.rec.lags_since(t0)
        assert d.daemon.store is not None
        engine = d.daemon.store.engine
        t1 = time.monotonic()
        later = now + timedelta(days=1)  # that day is now past retention
        deleted = await asyncio.to_thread(retention.prune, engine, RETENTION_DAYS, now=later)
        took = time.monotonic() - t1
        during = [lag for at, lag in d.rec.lags if at >= t1]
        rows = [
            lag_row("baseline", baseline, seconds),
            lag_row("during prune", during, took, rows_deleted=deleted),
        ]
        if to_date:
            await asyncio.sleep(interval)  # the prune's aftermath out of the next row
            t2 = time.monotonic()

            def build() -> None:
                with engine.begin() as conn:
                    rollup.roll_to_date(conn, to_date_end(now))

            await asyncio.to_thread(build)
            took = time.monotonic() - t2
            lags = [lag for at, lag in d.rec.lags if at >= t2]
            rows.append(lag_row("during to-date rows", lags, took, hour_rows=23 * to_date))
            await asyncio.sleep(interval)
            t3 = time.monotonic()
            midnight = to_date_end(now) + timedelta(hours=1)

            def running() -> None:
                with engine.begin() as conn:
                    rollup.roll_running(conn, midnight, midnight)

            await asyncio.to_thread(running)
            took = time.monotonic() - t3
            lags = [lag for at, lag in d.rec.lags if at >= t3]
            rows.append(lag_row("during running totals", lags, took, atd_rows=to_date))
    return rows


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--prune-models", type=int, default=1000)
    ap.add_argument("--to-date-models", type=int, default=10000)
    ap.add_argument("--pg", action="store_true", help="store into a throwaway PostgreSQL")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nexomon-prunelag-"))
    cluster = None
    try:
        with Responder(models=10) as responder:
            cfg = write_config(work, responder.base_url, args.jobs, chat_interval=args.interval)
            url, dsn = f"sqlite:///{work / 'nexomon.db'}", None
            if args.pg:
                from tests.store.pgcluster import PgCluster, find_bin_dir

                bin_dir = find_bin_dir()
                if bin_dir is None:
                    raise SystemExit("--pg: initdb/pg_ctl not found")
                cluster = PgCluster(bin_dir)
                cluster.start()
                name = cluster.create_database("prunelag")
                url = cluster.url(name)
                dsn = f"host=127.0.0.1 port={cluster.port} user=postgres dbname={name}"
                text = cfg.read_text().replace(f"sqlite:///{work / 'nexomon.db'}", url)
                cfg.write_text(text)
            now = datetime.now(UTC)
            loaded = prepare(url, args.prune_models, now, dsn, args.to_date_models)
            pin(PROBER_CORE)
            rows = asyncio.run(measure(cfg, args.interval, args.seconds, now, args.to_date_models))
    finally:
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)
    backend = "PostgreSQL" if args.pg else "SQLite"
    emit(
        args,
        f"scheduler lag while pruning a day of raw rows ({loaded:,} rows, {backend}, "
        f"{args.jobs} models every {args.interval:g} s)",
        rows,
        target="p99 < 50 ms during the prune, the to-date rows and the running totals",
    )


if __name__ == "__main__":
    main()
