"""Reading ``probe_rollup_hourly`` for ``monitor.store.aggregate``: the queries and the fold.

``read_rows`` gives one tuple per rollup row of the parts (a part is a
``(span, start, end)`` of ``monitor.store.levels.plan``); ``read_groups``
gives the same columns summed in the database, one tuple per
(location, target, probe, model), for a grouping that never looks at the
hour (``--by model``, ``--by location``): a 365-day report then fetches
1,000 rows instead of 44,000 (benchmarks/history.py). Both shapes are

    (hour, location, target, probe, model, probes, successes, outcomes,
     latency_hist, prompt_tokens, completion_tokens, total_tokens, cost_usd,
     unpriced)

with ``hour`` None from ``read_groups``, and ``outcomes``/``latency_hist``
one JSON object ({key: count}) per rollup row, or several joined by commas.
``fold(agg, rows)`` adds such tuples to an ``Aggregate``. Every figure is
the one adding the rows one by one gives: counts are integer sums,
``cost_usd`` sums the same ``Decimal`` values (SQLite keeps ``NUMERIC`` as
a float: its ``quote()`` text reads back as the same float, which goes
through the column type's own result conversion), and the JSON objects are
added key by key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from itertools import chain, repeat
from typing import Any

from sqlalchemy import BigInteger, Connection, and_, cast, func, null, or_, select

from monitor.store.histogram import LAST
from monitor.store.levels import ATD, DTD, MTD, floor_day
from monitor.store.models import RollupHourly

# (span, start, end): the ``span`` rows with ``hour`` in [start, end).
Span = tuple[str, datetime, datetime]


def to_date_rows(
    conn: Connection, done: datetime, heads: Sequence[datetime] = ()
) -> frozenset[tuple[str, datetime]]:
    """The (span, hour) of the to-date rows a window ending by ``done`` (the rollup's
    ``complete_before``) may read, each when present: ``dtd`` at ``done``, ``mtd`` at
    its midnight, and ``atd`` at each midnight of ``heads``.

    ``dtd`` and ``mtd`` only at ``done``: the refresh that moves ``done`` rebuilds
    them whole, older ones may miss a late row re-rolled into an hour or day they
    cover. ``atd`` rows are kept at every midnight and rebuilt from a re-rolled
    day on (``rollup.roll_to_date``), so any of them matches the day rows."""
    r = RollupHourly
    found = set()
    wanted = [(DTD, done), (MTD, floor_day(done))]
    wanted += [(ATD, day) for day in heads if day == floor_day(day)]
    for span, hour in wanted:
        query = select(r.span).where(r.span == span, r.hour == hour).limit(1)
        if conn.execute(query).first() is not None:
            found.add((span, hour))
    return frozenset(found)


def read_rows(conn: Connection, parts: Sequence[Span], location: str | None) -> list[Any]:
    """Every rollup row of ``parts``."""
    r = RollupHourly
    rows: list[Any] = []
    for span, start, end in parts:
        if start >= end:
            continue
        query = select(
            r.hour, r.location, r.target, r.probe, r.model, r.probes, r.successes, r.outcomes,
            r.latency_hist, r.prompt_tokens, r.completion_tokens, r.total_tokens, r.cost_usd,
            r.unpriced,
        ).where(r.span == span, r.hour >= start, r.hour < end)  # fmt: skip
        if location is not None:
            query = query.where(r.location == location)
        rows += conn.execute(query).all()
    return rows


def read_groups(conn: Connection, parts: Sequence[Span], location: str | None) -> list[Any]:
    """The rollup rows of ``parts`` summed per (location, target, probe, model)."""
    r = RollupHourly
    parts = [p for p in parts if p[1] < p[2]]
    if not parts:
        return []
    sqlite = conn.dialect.name == "sqlite"

    def total(column: Any) -> Any:  # SUM(bigint) is numeric on PostgreSQL
        return cast(func.sum(column), BigInteger)

    def joined(column: Any) -> Any:
        return func.group_concat(column, ",") if sqlite else func.string_agg(column, ",")

    # SQLite: each value as quote() text (round-trips the float), converted below.
    cost = joined(func.quote(r.cost_usd)) if sqlite else func.sum(r.cost_usd)
    columns = (
        null(), r.location, r.target, r.probe, r.model, total(r.probes), total(r.successes),
        joined(r.outcomes), joined(r.latency_hist), total(r.prompt_tokens),
        total(r.completion_tokens), total(r.total_tokens), cost, total(r.unpriced),
    )  # fmt: skip
    query = (
        select(*columns)
        .where(or_(*(and_(r.span == s, r.hour >= a, r.hour < b) for s, a, b in parts)))
        .group_by(r.location, r.target, r.probe, r.model)
    )
    if location is not None:
        query = query.where(r.location == location)
    if sqlite:
        rows = conn.execute(query).all()
    else:
        # A year's sort is costed above jit_above_cost, and compiling it took 80 ms
        # of a 300 ms query; it is ~16 MB, spilled to disk at the default 4 MB
        # work_mem (EXPLAIN ANALYZE: 300 ms -> 145 ms without JIT -> 98 ms in memory).
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL work_mem = '32MB'")
        try:
            return conn.execute(query).all()  # type: ignore[return-value]
        finally:
            conn.exec_driver_sql("SET LOCAL jit TO DEFAULT")
            conn.exec_driver_sql("SET LOCAL work_mem TO DEFAULT")
    # The conversion SQLAlchemy gives the column ("%.9f" of the float, as Decimal).
    to_decimal = r.cost_usd.type.result_processor(conn.dialect, None)
    assert to_decimal is not None
    return [
        (*row[:12], sum(map(to_decimal, map(float, row[12].split(","))), Decimal(0)), row[13])
        for row in rows
    ]


def fold(agg: Any, rows: Sequence[Any]) -> None:
    """Add rows of the module's shape (one group's) to ``agg``, an
    ``monitor.store.aggregate.Aggregate`` (typed Any: that module imports this one)."""
    cols = tuple(zip(*rows, strict=True))
    agg.probes += sum(cols[5])
    agg.successes += sum(cols[6])
    agg.prompt_tokens += sum(cols[9])
    agg.completion_tokens += sum(cols[10])
    agg.total_tokens += sum(cols[11])
    agg.cost_usd = sum(cols[12], agg.cost_usd)
    agg.unpriced += sum(cols[13])
    agg.outcomes.update(sum_json(cols[7]))
    agg.latency.counts.update(sum_hist(cols[8]))


def sum_json(texts: Sequence[str]) -> dict[str, int]:
    """The JSON objects in ``texts`` ({key: count}, several to a text when joined by
    commas) added up, keys in order of first appearance.

    One parse for all, then one C-level sum per key: per-row ``json.loads`` and a
    Python loop over every histogram bucket were most of a 365-day report.
    """
    total: dict[str, int] = {}
    for at in range(0, len(texts), _CHUNK):  # a bounded number of parsed objects at a time
        part = _add_up(json.loads("[" + ",".join(texts[at : at + _CHUNK]) + "]"))
        if not total:
            total = part
            continue
        for name, count in part.items():
            total[name] = total.get(name, 0) + count
    return total


_CHUNK = 256  # texts: one object each from read_rows, a group's from read_groups


def _add_up(counts: list[dict[str, int]]) -> dict[str, int]:
    if len(counts) == 1:
        return counts[0]
    get = dict.get
    return {
        name: sum(map(get, counts, repeat(name), repeat(0)))
        for name in dict.fromkeys(chain.from_iterable(counts))
    }


# {"49":2,"50":3} -> 49,2,50,3: histograms as one flat array of (index, count) pairs.
_AS_PAIRS = str.maketrans({"{": None, "}": None, '"': None, ":": ","})
# An empty object and one comma beside it: it would leave a stray comma in the flat array.
_EMPTY = re.compile(r",\{\}|\{\},?")


def sum_hist(texts: Sequence[str]) -> dict[int, int]:
    """The ``latency_hist`` objects in ``texts`` added up: {bucket index: count}.

    Read as one flat array per chunk (no dict, no key string per bucket, no
    list per object) and added up in a list indexed by bucket: a third less
    than ``sum_json`` on a year's report, and a fifth less than a list per object.
    """
    slots = [0] * (LAST + 1)
    for at in range(0, len(texts), _CHUNK):
        text = ",".join(texts[at : at + _CHUNK])
        if "{}" in text:
            text = _EMPTY.sub("", text)
        try:
            if "-" in text:  # a negative index would count from the end: not ours
                raise IndexError(text)
            flat = json.loads("[" + text.translate(_AS_PAIRS) + "]")
            it = iter(flat)
            for index in it:  # index, count, index, count, ...
                slots[index] += next(it)
        except (IndexError, StopIteration):  # not a histogram.to_json text: the general way
            return {int(index): count for index, count in sum_json(texts).items()}
    return {index: count for index, count in enumerate(slots) if count}
