"""Status page render time at 10, 100 and 1,000 models, on SQLite and PostgreSQL.

    python benchmarks/statuspage_render.py [--models 10,100,1000] [--repeat 7] [--no-pg]

For each model count it builds the steady state of a daemon that has run
for 90 days with a 5-minute chat interval: 90 day rows and the last 24 hour
rows per model in ``probe_rollup_hourly`` (one model in twenty with a bad
day), ``rollup_state`` at the current hour, and the raw rows of the last two
hours (24 a model) in ``probe_results``. Writing 26 million raw rows and
rolling them up would give the same tables, an hour later.

It then times ``/``'s server work the way the route does it: read
(``PageReader.read``), build the view, render the template, gzip. ``cold``
is the first render (the rollup part parsed); ``warm`` the median of
``--repeat`` more (the parsed rollup kept, as until the next hourly refresh),
each a minute after the one before: a fifth of the models (a minute of a
5-minute interval) write a new result in between, outside the timing, so
the reader's caches hold only what a real minute would leave them. Page
bytes are the HTML as sent without and with gzip. Timings are wall clock on
whatever else the machine runs: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.statuspage import queries, render, views
from monitor.store.aggregate import floor_day, floor_hour
from monitor.store.batch import write_batch
from monitor.store.db import make_engine, upgrade
from monitor.store.histogram import bucket
from monitor.store.models import RollupHourly, RollupState
from tests.store.pgcluster import PgCluster, find_bin_dir

LOCATION = "bench"
TARGET = "nexorouter"
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


def _hist(rng: random.Random, probes: int) -> str:
    counts: dict[int, int] = {}
    for _ in range(min(probes, 60)):  # the shape of a lognormal around 250 ms
        index = bucket(rng.lognormvariate(-1.39, 0.45))
        counts[index] = counts.get(index, 0) + max(1, probes // 60)
    return json.dumps(counts, separators=(",", ":"))


def _rollup_row(span: str, at: datetime, model: str, probes: int, down: int, hist: str) -> dict:
    outcomes = {"ok": probes - down, **({"server_error": down} if down else {})}
    return {
        "span": span, "hour": at, "location": LOCATION, "target": TARGET, "probe": "chat",
        "model": model, "probes": probes, "successes": probes - down,
        "outcomes": json.dumps(outcomes, separators=(",", ":")), "p50_s": 0.25, "p95_s": 0.5,
        "p99_s": 0.8, "latency_hist": hist, "prompt_tokens": 12 * probes,
        "completion_tokens": 3 * probes, "total_tokens": 15 * probes,
        "cost_usd": Decimal("0.0000024") * probes, "unpriced": 0,
    }  # fmt: skip


def _names(models: int) -> list[str]:
    return [f"vendor-{m % 7}/model-{m:04d}-instruct" for m in range(models)]


def seed(engine: Engine, models: int) -> None:
    rng = random.Random(models)
    names = _names(models)
    today, hour = floor_day(NOW), floor_hour(NOW)
    days, hours = [], []
    for m, name in enumerate(names):
        hist_day, hist_hour = _hist(rng, 288), _hist(rng, 12)
        for d in range(1, 90):
            bad = m % 20 == 0 and d % 30 == 7
            days.append(
                _rollup_row("day", today - timedelta(days=d), name, 288, 40 * bad, hist_day)
            )
        for h in range(1, 25):
            hours.append(_rollup_row("hour", hour - timedelta(hours=h), name, 12, 0, hist_hour))
    raw = []
    for m, name in enumerate(names):
        for i in range(24):
            at = NOW - timedelta(minutes=5 * i, seconds=m % 300)
            down = m % 100 == 0 and i == 0
            raw.append(
                ProbeResult(
                    started_at=at, location=LOCATION, target=TARGET, probe="chat", model=name,
                    outcome=Outcome.SERVER_ERROR if down else Outcome.OK,
                    http_status=500 if down else 200,
                    duration_s=None if down else rng.lognormvariate(-1.39, 0.45),
                    phases=Phases(0.001, 0.002, 0.003, 0.2, 0.04), request_id=f"req-{m}-{i}",
                )
            )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(RollupHourly.__table__.insert(), days + hours)
        conn.execute(
            RollupState.__table__.insert().values(name="hourly", complete_before=hour, last_id=0)
        )
        write_batch(conn, [(f"{i:032x}", r) for i, r in enumerate(raw)])
    if engine.dialect.name == "postgresql":  # the statistics autovacuum would have by now
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()


def a_minute_later(engine: Engine, models: int, minute: int) -> None:
    """The results of the next minute: every fifth model, in turn, answers once more."""
    rng = random.Random(minute)
    rows = [
        ProbeResult(
            started_at=NOW - timedelta(seconds=60 - minute - m % 60 / 100), location=LOCATION,
            target=TARGET, probe="chat", model=name, outcome=Outcome.OK, http_status=200,
            duration_s=rng.lognormvariate(-1.39, 0.45),
            phases=Phases(0.001, 0.002, 0.003, 0.2, 0.04),
            request_id=f"req-{m}-next-{minute}",
        )
        for m, name in enumerate(_names(models)) if m % 5 == minute % 5
    ]  # fmt: skip
    with engine.begin() as conn:
        write_batch(conn, [(f"n{minute:03x}{i:028x}", r) for i, r in enumerate(rows)])


def render_once(engine: Engine, reader: queries.PageReader) -> tuple[float, int, int]:
    """Seconds for /'s server work, raw bytes, gzip bytes."""
    start = time.perf_counter()
    with engine.connect() as conn:
        data = reader.read(conn, LOCATION, NOW)
    view = views.build_index(data, {}, {TARGET: 1.0})
    html = render.index_page(view, location=LOCATION).encode()
    packed = gzip.compress(html, 6)
    return time.perf_counter() - start, len(html), len(packed)


def measure(url: str, models: int, repeat: int) -> dict[str, object]:
    upgrade(url)
    engine = make_engine(url)
    try:
        seed(engine, models)
        reader = queries.PageReader()
        cold, raw, packed = render_once(engine, reader)
        warm = []
        for minute in range(1, repeat + 1):
            a_minute_later(engine, models, minute)
            warm.append(render_once(engine, reader)[0])
        return {
            "models": models, "cold_ms": cold * 1000, "warm_ms": statistics.median(warm) * 1000,
            "warm_max_ms": max(warm) * 1000, "page_kb": raw / 1000, "gzip_kb": packed / 1000,
        }  # fmt: skip
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.models.split(",")]
    rows: list[tuple[str, dict[str, object]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            rows.append(("sqlite", measure(f"sqlite:///{tmp}/page-{n}.db", n, args.repeat)))
        bin_dir = None if args.no_pg else find_bin_dir()
        if bin_dir is not None:
            cluster = PgCluster(bin_dir)
            cluster.start()
            try:
                for n in counts:
                    name = cluster.create_database()
                    rows.append(("postgresql", measure(cluster.url(name), n, args.repeat)))
                    cluster.drop_database(name)
            finally:
                cluster.destroy()
    print(f"{'backend':<11} {'models':>6} {'cold ms':>8} {'warm ms':>8} {'warm max':>8} "
          f"{'page KB':>8} {'gzip KB':>8}")  # fmt: skip
    for backend, r in rows:
        print(
            f"{backend:<11} {r['models']:>6} {r['cold_ms']:>8.1f} {r['warm_ms']:>8.1f} "
            f"{r['warm_max_ms']:>8.1f} {r['page_kb']:>8.1f} {r['gzip_kb']:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
