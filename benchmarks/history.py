"""A year of history: `nexomon report` over 400 days of rollups, and database size.

    python benchmarks/history.py [--models 1000] [--days 400] [--raw-models 100]
                                 [--raw-days 30] [--runs 3] [--no-pg] [--no-sqlite] [--keep]
                                 [--json]

For SQLite (a file under the system temp dir) and PostgreSQL (a throwaway
cluster, tests/store/pgcluster.py; skipped when initdb/pg_ctl are missing):

1. ``nexomon db upgrade`` makes the schema; ``benchmarks/history_data.py``
   bulk-loads ``--days`` of hourly and daily rollup rows for ``--models``
   models and ``--raw-days`` of raw rows for ``--raw-models`` models at one
   probe a minute (SQLite: executemany; PostgreSQL: COPY with autovacuum off
   on the two tables, then VACUUM ANALYZE as autovacuum would, and autovacuum
   back on), then builds the per-target day and month rows from
   the day rows with ``rollup.backfill_levels`` (what migration 0005 runs),
   the running totals of every midnight (``atd``, ``rollup.backfill_running``:
   what a year of the daemon's daily refreshes leaves) and the to-date rows at
   the rollup's end (``rollup.roll_to_date``, what each hourly refresh leaves).
2. Times the real command, ``nexomon report -c CFG --since 365d --by model``
   and ``--by day`` (a fresh process each: imports, config, schema check,
   query, render), ``--runs`` times each; the table gives the median, and
   the slowest run. Targets: by model < 1 s, by day < 2 s.
   The package's bytecode is compiled first (``compile_package``); the
   table ends with ``cpu_yardstick_s`` (``bench_common``), through which
   timings from machines of different speeds are compared.
3. Sizes: the rollup table and the raw table with their indexes (SQLite:
   ``dbstat``; PostgreSQL: ``pg_total_relation_size``), and each per
   model-year (rollup: 365 days of hour and day rows; raw: 365 days at one
   probe a minute).

The generated databases (about 5 GB each at the defaults, under the system
temp dir) are removed at the end; ``--keep`` leaves them, and the PostgreSQL
cluster running, for profiling. The whole run takes about 10 minutes.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import history_data as data
from bench_common import emit, parser

from monitor.store.aggregate import STATE_NAME, floor_hour
from monitor.store.batch import COLUMNS
from tests.store.pgcluster import PgCluster, find_bin_dir

MIB = 1024 * 1024
# What the ``nexomon`` console script runs (without a pyenv or venv shim's own start-up).
ENTRY = "from monitor.cli.main import console; console()"


def write_config(directory: Path, url: str) -> Path:
    path = directory / "nexomon.toml"
    path.write_text(
        f'[monitor]\nlocation = "bench"\ndatabase_url = "{url}"\n\n'
        '[[targets]]\nname = "gw-00"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "NEXOMON_BENCH_KEY"\nmodels = ["m-0000"]\n'
    )
    return path


def upgrade(url: str) -> None:
    from monitor.store.db import upgrade as db_upgrade

    db_upgrade(url)


def generate(
    url: str, now: datetime, args: object, sqlite_path: str | None, dsn: str | None
) -> dict:
    """Load the rows; returns load timings and row counts."""
    a = args
    upgrade(url)
    out: dict = {}
    t = time.perf_counter()
    rollups = data.rollup_rows(now, a.models, a.days, sqlite_path is not None)  # type: ignore[attr-defined]
    raws = data.raw_rows(now, a.raw_models, a.raw_days, sqlite_path is not None)  # type: ignore[attr-defined]
    if sqlite_path is not None:
        out["rollup_rows"] = data.load_sqlite(
            sqlite_path, rollups, "probe_rollup_hourly", data.ROLLUP_COLUMNS
        )
        out["rollup_load_s"] = time.perf_counter() - t
        t = time.perf_counter()
        out["raw_rows"] = data.load_sqlite(sqlite_path, raws, "probe_results", COLUMNS)
        out["raw_load_s"] = time.perf_counter() - t
        conn = sqlite3.connect(sqlite_path)
        max_id = conn.execute("SELECT max(id) FROM probe_results").fetchone()[0]
        conn.execute(
            "INSERT INTO rollup_state (name, complete_before, last_id) VALUES (?, ?, ?)",
            (STATE_NAME, data.sqlite_time(floor_hour(now)), max_id),
        )
        conn.commit()
        conn.close()
        out["levels_s"] = build_levels(url)
        return out
    import psycopg

    assert dsn is not None
    # No autovacuum while loading: one racing the load (an auto-analyze's snapshot)
    # left two thirds of probe_results' pages not all-visible after the VACUUM
    # below, so the report's index-only scan of the substituted rows fetched
    # 28,000 heap rows (140 ms instead of 15 ms; EXPLAIN ANALYZE).
    _autovacuum(dsn, "false")
    out["rollup_rows"] = data.load_pg(dsn, rollups, "probe_rollup_hourly", data.ROLLUP_COLUMNS)
    out["rollup_load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    out["raw_rows"] = data.load_pg(dsn, raws, "probe_results", COLUMNS)
    out["raw_load_s"] = time.perf_counter() - t
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO rollup_state (name, complete_before, last_id)"
            " SELECT %s, %s, max(id) FROM probe_results",
            (STATE_NAME, floor_hour(now)),
        )
    out["levels_s"] = build_levels(url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        out["vacuum_s"] = time.perf_counter() - t
    _autovacuum(dsn, "true")
    return out


def _autovacuum(dsn: str, enabled: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("probe_rollup_hourly", "probe_results"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = {enabled})")


def build_levels(url: str) -> float:
    """The per-target day and month rows of the loaded day rows, as migration 0005 builds
    them (``rollup.backfill_levels``), the atd row of every midnight and the to-date
    rows at the rollup's end, as the daemon's refreshes leave them
    (``rollup.backfill_running``, ``rollup.roll_to_date``); returns the
    seconds it took."""
    from sqlalchemy import select

    from monitor.store.db import make_engine
    from monitor.store.models import RollupState
    from monitor.store.rollup import backfill_levels, backfill_running, roll_to_date

    engine = make_engine(url)
    t = time.perf_counter()
    with engine.begin() as conn:
        backfill_levels(conn)
        backfill_running(conn)
        done = conn.scalar(select(RollupState.complete_before))
        roll_to_date(conn, done)
    engine.dispose()
    return time.perf_counter() - t


def compile_package() -> None:
    """Write the package's bytecode caches before timing anything.

    An installed nexomon has them (pip compiles a wheel's modules), and an
    editable install writes them on its first run, unless the environment sets
    PYTHONDONTWRITEBYTECODE, as some sandboxes and containers do: then every
    report would compile the package's modules from source (0.2-0.3 s of a
    2.2 s run on a slow machine) and the benchmark would time the compiler too.
    """
    import compileall

    import monitor

    compileall.compile_dir(Path(monitor.__file__).parent, quiet=1)


def time_report(cfg: Path, by: str, runs: int) -> list[float]:
    """Seconds of ``nexomon report --since 365d --by BY``, a fresh process each of ``runs``."""
    cmd = [sys.executable, "-c", ENTRY, "report", "-c", str(cfg), "--since", "365d", "--by", by]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(
            cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "NEXOMON_BENCH_KEY": "x"}
        )
        times.append(time.perf_counter() - t)
    return times


def sqlite_sizes(path: str) -> tuple[int, int]:
    """(rollup bytes, raw bytes), each table with its indexes."""
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT s.name, sum(s.pgsize), m.tbl_name FROM dbstat s"
        " JOIN sqlite_master m ON m.name = s.name GROUP BY s.name"
    ).fetchall()
    conn.close()
    size = {"probe_rollup_hourly": 0, "probe_results": 0}
    for _name, pgsize, table in rows:
        if table in size:
            size[table] += pgsize
    return size["probe_rollup_hourly"], size["probe_results"]


def pg_sizes(dsn: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT pg_total_relation_size('probe_rollup_hourly'),"
            " pg_total_relation_size('probe_results')"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def measure(
    backend: str, url: str, work: Path, args: object, sqlite_path: str | None, dsn: str | None
) -> dict:
    a = args
    now = datetime.now(UTC)
    loaded = generate(url, now, args, sqlite_path, dsn)
    work.mkdir(exist_ok=True)
    cfg = write_config(work, url)
    row: dict = {"backend": backend}
    for by in ("model", "day"):
        times = time_report(cfg, by, a.runs)  # type: ignore[attr-defined]
        row[f"by_{by}_median_s"] = statistics.median(times)
        row[f"by_{by}_max_s"] = max(times)
    rollup_b, raw_b = sqlite_sizes(sqlite_path) if sqlite_path else pg_sizes(dsn or "")
    row["rollup_MiB"] = rollup_b / MIB
    row["raw_MiB"] = raw_b / MIB
    row["rollup_MiB_per_model_year"] = rollup_b / MIB / a.models * 365 / a.days  # type: ignore[attr-defined]
    row["raw_MiB_per_model_year"] = raw_b / MIB / a.raw_models * 365 / a.raw_days  # type: ignore[attr-defined]
    row["rows_rollup"] = loaded["rollup_rows"]
    row["rows_raw"] = loaded["raw_rows"]
    row["load_s"] = loaded["rollup_load_s"] + loaded["raw_load_s"]
    row["levels_s"] = loaded["levels_s"]
    print(f"{backend}: {row}", file=sys.stderr, flush=True)
    return row


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--days", type=int, default=400)
    ap.add_argument("--raw-models", type=int, default=100)
    ap.add_argument("--raw-days", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the databases (and the PostgreSQL cluster running) for profiling",
    )
    args = ap.parse_args()
    compile_package()
    rows = []
    work = Path(tempfile.mkdtemp(prefix="nexomon-history-"))
    try:
        if not args.no_sqlite:
            path = work / "history.db"
            rows.append(
                measure("SQLite", f"sqlite:///{path}", work / "sqlite", args, str(path), None)
            )
            if not args.keep:
                path.unlink()
        bin_dir = None if args.no_pg else find_bin_dir()
        if bin_dir is not None:
            cluster = PgCluster(bin_dir)
            try:
                cluster.start()
                name = cluster.create_database("history")
                dsn = f"host=127.0.0.1 port={cluster.port} user=postgres dbname={name}"
                rows.append(measure("PostgreSQL", cluster.url(name), work / "pg", args, None, dsn))
            finally:
                if not args.keep:
                    cluster.destroy()
                else:
                    print(f"kept: {cluster.url(name)} (data in {cluster.root})", file=sys.stderr)
        elif not args.no_pg:
            print("PostgreSQL skipped (no initdb/pg_ctl)", file=sys.stderr)
    finally:
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    emit(
        args,
        f"a year of history: {args.models} models x {args.days} days of rollups, "
        f"{args.raw_models} models x {args.raw_days} days of raw rows",
        rows,
        target="report --since 365d --by model < 1 s, --by day < 2 s",
    )


if __name__ == "__main__":
    main()
