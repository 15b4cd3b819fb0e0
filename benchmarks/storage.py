"""Storage benchmark: rows/s through ResultWriter, and `report` time over 30 days.

    python benchmarks/storage.py [--rows 50000] [--days 30] [--models 100] [--no-pg]
                                 [--models-every N] [--skip-report]

1. Writes ``--rows`` results through ``ResultWriter`` (batch 200) into a
   fresh SQLite file and, when PostgreSQL binaries are found, a throwaway
   PostgreSQL cluster (tests/store/pgcluster.py); prints rows/s and the
   writer thread's own CPU per row (its CPU clock, read once every row is
   committed: the cost the daemon's process pays, contention barely moves
   it). Every ``--models-every``-th result is a ``models`` listing (0: none).
2. Bulk-loads ``days x 24 x 60 x models`` chat rows (one probe a minute per
   model; 4.32 M by default) into SQLite with plain executemany, builds the
   hourly rollup, and times ``build_report(--since 30d)`` by model and by day.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.cli.report import build_report, parse_since
from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.store import rollup
from monitor.store.db import make_engine, upgrade
from monitor.store.writer import ResultWriter
from tests.store.pgcluster import PgCluster, find_bin_dir


def sample(i: int, now: datetime) -> ProbeResult:
    return ProbeResult(
        started_at=now - timedelta(seconds=i),
        location="bench",
        target="nexorouter",
        probe="chat",
        model=f"model-{i % 100:03d}",
        outcome=Outcome.OK,
        http_status=200,
        duration_s=0.2,
        phases=Phases(0.001, 0.002, 0.003, 0.15, 0.044),
        request_id=f"req-{i}",
        prompt_tokens=12,
        completion_tokens=3,
        total_tokens=15,
        cost_usd=Decimal("0.0000024"),
        ratelimit_limit=600,
        ratelimit_remaining=599,
        finish_reason="stop",
        response_model="m",
    )


def listing_sample(i: int, now: datetime) -> ProbeResult:
    """A ``models`` result; the listing changes every time (catalog events)."""
    return ProbeResult(
        started_at=now - timedelta(seconds=i),
        location="bench",
        target="nexorouter",
        probe="models",
        model="",
        outcome=Outcome.OK,
        http_status=200,
        duration_s=0.05,
        model_ids=tuple(f"model-{m:03d}" for m in range(100) if m != i % 100),
    )


def writer_rate(url: str, rows: int, spool_dir: Path, models_every: int) -> tuple[float, float]:
    """(rows/s, writer-thread CPU µs per row) for ``rows`` results through ResultWriter."""
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    results = [
        listing_sample(i, now) if models_every and i % models_every == 0 else sample(i, now)
        for i in range(rows)
    ]
    writer = ResultWriter(engine, spool_dir=spool_dir, batch_size=200, flush_interval=0.2)
    writer.start()
    assert writer._thread is not None and writer._thread.ident is not None
    clock = time.pthread_getcpuclockid(writer._thread.ident)
    cpu0 = time.clock_gettime(clock)
    start = time.perf_counter()
    for result in results:
        writer.submit(result)
    while writer.written_total < rows:  # read the clock while the thread still exists
        time.sleep(0.005)
    cpu = time.clock_gettime(clock) - cpu0
    elapsed = time.perf_counter() - start
    writer.close(timeout=600)
    assert writer.written_total == rows, (writer.written_total, rows)
    engine.dispose()
    return rows / elapsed, cpu / rows * 1e6


def bulk_load(path: Path, days: int, models: int, now: datetime) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    rng = random.Random(7)
    outcomes = ["ok"] * 97 + ["server_error", "timeout", "rate_limited"]
    start = (now - timedelta(days=days)).replace(second=0, microsecond=0)
    minutes = days * 24 * 60

    def rows():  # type: ignore[no-untyped-def]
        for minute in range(minutes):
            at = (start + timedelta(minutes=minute)).replace(tzinfo=None).isoformat(" ")
            for m in range(models):
                outcome = outcomes[rng.randrange(100)]
                ok = outcome == "ok"
                yield (
                    uuid.uuid4().hex, at, "bench", "nexorouter", "chat", f"model-{m:03d}",
                    outcome, ok, 200 if ok else 500, rng.lognormvariate(-1.5, 0.5),
                    12 if ok else None, 3 if ok else None, 15 if ok else None,
                    0.0000024 if ok and m % 10 else None,
                )  # fmt: skip

    conn.executemany(
        "INSERT INTO probe_results (result_id, started_at, location, target, probe, model,"
        " outcome, success, http_status, duration_s, prompt_tokens, completion_tokens,"
        " total_tokens, cost_usd) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows(),
    )
    conn.commit()
    conn.close()
    return minutes * models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--models-every", type=int, default=0, metavar="N")
    parser.add_argument("--skip-report", action="store_true", help="writer rates only")
    args = parser.parse_args(argv)
    table: list[tuple[str, str]] = []
    every = args.models_every
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rate, us = writer_rate(f"sqlite:///{root / 'w.db'}", args.rows, root / "s1", every)
        table.append((f"ResultWriter SQLite ({args.rows} rows)", _rate(rate, us)))
        bin_dir = None if args.no_pg else find_bin_dir()
        if bin_dir is not None:
            cluster = PgCluster(bin_dir)
            try:
                cluster.start()
                url = cluster.url(cluster.create_database("bench"))
                rate, us = writer_rate(url, args.rows, root / "s2", every)
                table.append((f"ResultWriter PostgreSQL ({args.rows} rows)", _rate(rate, us)))
            finally:
                cluster.destroy()
        else:
            table.append(("ResultWriter PostgreSQL", "skipped (no initdb/pg_ctl)"))
        if not args.skip_report:
            report_times(root, args.days, args.models, table)
    width = max(len(k) for k, _ in table)
    print(f"{'measure'.ljust(width)}  result")
    for key, value in table:
        print(f"{key.ljust(width)}  {value}")
    return 0


def _rate(rows_per_s: float, cpu_us_per_row: float) -> str:
    return f"{rows_per_s:,.0f} rows/s, writer CPU {cpu_us_per_row:.1f} µs/row"


def report_times(root: Path, days: int, models: int, table: list[tuple[str, str]]) -> None:
    """Bulk-load ``days`` of rows, roll them up and time the reports over them."""
    now = datetime.now(UTC)
    db = root / "report.db"
    url = f"sqlite:///{db}"
    upgrade(url)
    t = time.perf_counter()
    n = bulk_load(db, days, models, now)
    table.append((f"bulk load {n:,} rows (SQLite executemany)", f"{time.perf_counter() - t:.1f} s"))
    engine = make_engine(url)
    t = time.perf_counter()
    hours = rollup.refresh(engine, now)
    table.append((f"rollup.refresh, {hours} hours", f"{time.perf_counter() - t:.1f} s"))
    since = parse_since(f"{days}d", now)
    for by in ("model", "day"):
        with Session(engine) as session:
            t = time.perf_counter()
            rows = build_report(session, since=since, by=by)
            elapsed = time.perf_counter() - t
        total = sum(r.probes for r in rows)
        table.append(
            (f"report --since {days}d --by {by} ({len(rows)} rows, {total:,} probes)",
             f"{elapsed:.3f} s")
        )  # fmt: skip
    engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
