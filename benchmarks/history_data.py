"""A year of history for ``benchmarks/history.py``: rollup and raw rows, bulk-loaded.

Shape: ``models`` chat models (10 targets ``gw-00`` .. ``gw-09``, models
``m-0000`` ..) with ``days`` days of ``probe_rollup_hourly`` rows (one hour
row per model per hour, one day row per model per complete UTC day), plus
``raw_days`` days of ``probe_results`` rows for the first ``raw_models``
models at one probe a minute. The newest hour row is the hour before ``now``;
``rollup_state`` says the rollup is current, as after the daemon's hourly
``rollup.refresh``.

Rows are made by the code that writes them in production, then copied:
- hour rows: ``TEMPLATES`` hours of 60 probes (97 % ok, log-normal
  latency, some unpriced) folded by ``aggregate.add_raw_row`` and turned into
  rows by ``rollup._row``, exactly as ``rollup.roll_hour`` does;
- day rows: ``DAY_PATTERNS`` sequences of 24 hour templates merged as
  ``rollup.roll_day`` merges them (``aggregate.add_rollup_rows`` reads the
  same JSON), so every day row is the true merge of its 24 hour rows;
- raw rows: ``batch._row_values`` (the writer's own insert tuples) of a few
  ``ProbeResult`` shapes (ok, server_error, timeout, rate_limited, an ok
  answered by a substitute model), varied in id, time, model and latency.

Loading goes around the ORM, since 9.6 M rows one by one would take hours:
SQLite gets ``executemany`` of the writer's own ``INSERT``, PostgreSQL gets
``COPY`` (psycopg 3), both into the schema ``nexomon db upgrade`` made. The
raw rows of the last ``raw_days`` are not the source of those days' hour
rows (both are synthetic); a report reads the same number of rows either way.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.store.aggregate import DAY, HOUR, Aggregate, add_raw_row, floor_hour
from monitor.store.batch import COLUMNS, _row_values
from monitor.store.histogram import exact_quantile
from monitor.store.models import RollupHourly
from monitor.store.rollup import _row

TEMPLATES = 64
DAY_PATTERNS = 32
LOCATION = "bench"
PRICE = Decimal("0.0000024")
ROLLUP_COLUMNS = tuple(c.name for c in RollupHourly.__table__.columns)
_KEY_COLUMNS = ("span", "hour", "location", "target", "probe", "model")
_VALUE_COLUMNS = tuple(c for c in ROLLUP_COLUMNS if c not in _KEY_COLUMNS)
_OUTCOMES = ["ok"] * 97 + ["server_error", "timeout", "rate_limited"]


def model_name(index: int) -> tuple[str, str]:
    """(target, model) of model ``index``: 100 models per target."""
    return f"gw-{index // 100:02d}", f"m-{index:04d}"


def _hour_aggregate(rng: random.Random, priced: bool) -> tuple[Aggregate, list[float]]:
    """60 probes of one hour folded as ``rollup.roll_hour`` folds raw rows."""
    agg, durations = Aggregate(), []
    for _ in range(60):
        outcome = _OUTCOMES[rng.randrange(100)]
        ok = outcome == "ok"
        duration = rng.lognormvariate(-1.5, 0.5)
        tokens = (12, 3, 15) if ok else (None, None, None)
        cost = PRICE if ok and priced else None
        # raw_columns() order: started_at, target, probe, model, outcome, duration_s,
        # prompt, completion, total tokens, cost_usd, location
        add_raw_row(agg, (None, "", "chat", "", outcome, duration, *tokens, cost, LOCATION))
        if ok:
            durations.append(duration)
    return agg, durations


def templates(seed: int = 7) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[int]]:
    """(hour value tuples, day value tuples, each day pattern's first template).

    A day of pattern ``d`` uses hour templates ``(first[d] + h) % TEMPLATES``
    for hours h = 0..23; its day row is their merge.
    """
    rng = random.Random(seed)
    key = (LOCATION, "", "chat", "")
    hour_aggs = [_hour_aggregate(rng, priced=k % 8 != 0) for k in range(TEMPLATES)]
    hours = []
    for agg, durations in hour_aggs:
        ordered = sorted(durations)
        quantiles = tuple(exact_quantile(ordered, q) for q in (0.50, 0.95, 0.99))
        row = _row("hour", datetime.now(UTC), key, agg, quantiles)  # type: ignore[arg-type]
        hours.append(tuple(row[c] for c in _VALUE_COLUMNS))
    first = [rng.randrange(TEMPLATES) for _ in range(DAY_PATTERNS)]
    days = []
    for start in first:
        merged = Aggregate()
        for h in range(24):
            merged.merge(_from_row(hours[(start + h) % TEMPLATES]))
        quantiles = tuple(merged.latency.quantile(q) for q in (0.50, 0.95, 0.99))
        row = _row("day", datetime.now(UTC), key, merged, quantiles)  # type: ignore[arg-type]
        days.append(tuple(row[c] for c in _VALUE_COLUMNS))
    return hours, days, first


def _from_row(values: tuple[Any, ...]) -> Aggregate:
    """An hour row back into an Aggregate, reading its JSON as ``add_rollup_rows`` does."""
    row = dict(zip(_VALUE_COLUMNS, values, strict=True))
    agg = Aggregate(
        probes=row["probes"],
        successes=row["successes"],
        outcomes=Counter(json.loads(row["outcomes"])),
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        total_tokens=row["total_tokens"],
        cost_usd=row["cost_usd"],
        unpriced=row["unpriced"],
    )
    for index, count in json.loads(row["latency_hist"]).items():
        agg.latency.counts[int(index)] += count
    return agg


def sqlite_time(at: datetime) -> str:
    """How SQLAlchemy's SQLite DATETIME binds an aware UTC time (see batch._row_values)."""
    return at.astimezone(UTC).isoformat(" ", "microseconds")[:26]


def rollup_rows(now: datetime, models: int, days: int, sqlite: bool) -> Iterator[tuple[Any, ...]]:
    """Every rollup row, in the order the rollup writes them (hour by hour, then the day)."""
    hours, day_rows, first = templates()
    end = floor_hour(now)
    start = end - days * DAY
    names = [model_name(m) for m in range(models)]
    cost_at = _VALUE_COLUMNS.index("cost_usd")

    def fix(values: tuple[Any, ...]) -> tuple[Any, ...]:
        if not sqlite:
            return values
        return (*values[:cost_at], float(values[cost_at]), *values[cost_at + 1 :])

    hours = [fix(v) for v in hours]
    day_rows = [fix(v) for v in day_rows]
    hour = start
    assert start.tzinfo is UTC
    while hour < end:
        stamp = sqlite_time(hour) if sqlite else hour
        day, h = hour.toordinal(), hour.hour  # UTC: the pattern of the UTC day
        for m, (target, model) in enumerate(names):
            t = (first[(m + day * 7) % DAY_PATTERNS] + h) % TEMPLATES
            yield ("hour", stamp, LOCATION, target, "chat", model, *hours[t])
        hour += HOUR
        if hour.hour == 0:  # a UTC day is complete: its day rows
            midnight = hour - DAY
            if midnight < start:  # the first day is partial: no day row
                continue
            stamp = sqlite_time(midnight) if sqlite else midnight
            for m, (target, model) in enumerate(names):
                d = day_rows[(m + day * 7) % DAY_PATTERNS]
                yield ("day", stamp, LOCATION, target, "chat", model, *d)


def _raw_shapes() -> list[ProbeResult]:
    base = ProbeResult(
        started_at=datetime.now(UTC),
        location=LOCATION,
        target="gw-00",
        probe="chat",
        model="m-0000",
        outcome=Outcome.OK,
        http_status=200,
        duration_s=0.2,
        phases=Phases(0.0, 0.0, 0.0, 0.15, 0.05),
        request_id="req-0123456789abcdef",
        prompt_tokens=12,
        completion_tokens=3,
        total_tokens=15,
        cost_usd=PRICE,
        ratelimit_limit=600,
        ratelimit_remaining=599,
        finish_reason="stop",
        response_model="m-0000",
    )
    from dataclasses import replace

    down = dict(
        prompt_tokens=None,
        completion_tokens=None,
        total_tokens=None,
        cost_usd=None,
        finish_reason=None,
        response_model=None,
    )
    return [
        base,
        replace(base, outcome=Outcome.SERVER_ERROR, http_status=502, error="HTTP 502", **down),
        replace(base, outcome=Outcome.TIMEOUT, http_status=None, error="read timeout", **down),
        replace(base, outcome=Outcome.RATE_LIMITED, http_status=429, retry_after_s=1.0, **down),
        replace(base, substituted_by="m-cheap", response_model="m-cheap"),
    ]


def raw_rows(
    now: datetime, raw_models: int, raw_days: int, sqlite: bool
) -> Iterator[tuple[Any, ...]]:
    """One chat row a minute per model for ``raw_days`` up to ``now``, in time order."""
    rng = random.Random(11)
    shapes = [_row_values("", r, sqlite) for r in _raw_shapes()]
    when_at, model_at, duration_at = COLUMNS.index("started_at"), 5, COLUMNS.index("duration_s")
    assert COLUMNS[model_at] == "model" and COLUMNS[3] == "target"
    start = (now - timedelta(days=raw_days)).replace(second=0, microsecond=0)
    names = [model_name(m) for m in range(raw_models)]
    for minute in range(raw_days * 24 * 60):
        at = start + timedelta(minutes=minute)
        when = sqlite_time(at) if sqlite else at
        for target, model in names:
            pick = rng.randrange(100)
            shape = shapes[0 if pick < 96 else 4 if pick == 96 else pick - 96]
            row = list(shape)
            row[0] = uuid.uuid4().hex
            row[when_at] = when
            row[3], row[model_at] = target, model
            row[duration_at] = rng.lognormvariate(-1.5, 0.5)
            yield tuple(row)


def load_sqlite(
    path: str, rows: Iterator[tuple[Any, ...]], table: str, columns: tuple[str, ...]
) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    marks = ", ".join("?" * len(columns))
    counted = 0

    def counting() -> Iterator[tuple[Any, ...]]:
        nonlocal counted
        for row in rows:
            counted += 1
            yield row

    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", counting())
    conn.commit()
    conn.close()
    return counted


def load_pg(dsn: str, rows: Iterator[tuple[Any, ...]], table: str, columns: tuple[str, ...]) -> int:
    import psycopg

    counted = 0
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with psycopg.connect(dsn) as conn, conn.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)
            counted += 1
    return counted
