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
one JSON object ({key: count}) per rollup row, or several joined by commas;
``read_groups`` adds two columns, the ``outcomes``/``latency_hist`` texts of
the rows it takes out (``less``). ``fold(agg, rows)`` adds such tuples to an
``Aggregate``. The statements are plain SQL sent through a
``monitor.store.sql_reader.Reader`` (SQLAlchemy's connection or the driver's
own, for ``nexomon report``), values converted as the model's types would. Every figure is
the one adding the rows one by one gives: counts are integer sums,
``cost_usd`` sums the same ``Decimal`` values (SQLite keeps ``NUMERIC`` as
a float: its ``quote()`` text reads back as the same float, which goes
through the column type's own result conversion), and the JSON objects are
added key by key.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from itertools import chain, repeat
from typing import Any

from monitor.store.histogram import LAST
from monitor.store.levels import ATD, DTD, MTD, floor_day
from monitor.store.sql_reader import Reader, reader_of

# (span, start, end): the ``span`` rows with ``hour`` in [start, end).
Span = tuple[str, datetime, datetime]

_ROLLUP = "probe_rollup_hourly"


def to_date_rows(
    source: Any, done: datetime, heads: Sequence[datetime] = ()
) -> frozenset[tuple[str, datetime]]:
    """The (span, hour) of the to-date rows a window ending by ``done`` (the rollup's
    ``complete_before``) may read, each when present: ``dtd`` at ``done``, ``mtd`` at
    its midnight, and ``atd`` at each midnight of ``heads``.

    ``dtd`` and ``mtd`` only at ``done``: the refresh that moves ``done`` rebuilds
    them whole, older ones may miss a late row re-rolled into an hour or day they
    cover. ``atd`` rows are kept at every midnight and rebuilt from a re-rolled
    day on (``rollup.roll_to_date``), so any of them matches the day rows.
    ``source``: a Reader, Connection or Session (``sql_reader.reader_of``)."""
    reader = reader_of(source)
    found = set()
    wanted = [(DTD, done), (MTD, floor_day(done))]
    wanted += [(ATD, day) for day in heads if day == floor_day(day)]
    query = f"SELECT span FROM {_ROLLUP} WHERE span = ? AND hour = ? LIMIT 1"
    for span, hour in wanted:
        if reader.rows(query, (span, hour)):
            found.add((span, hour))
    return frozenset(found)


def _parts_where(parts: Sequence[Span], location: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of the rows of ``parts`` (of ``location``)."""
    clause = " OR ".join(["(span = ? AND hour >= ? AND hour < ?)"] * len(parts))
    params: list[Any] = [value for part in parts for value in part]
    if location is not None:
        clause = f"({clause}) AND location = ?"
        params.append(location)
    return clause, params


def read_rows(reader: Reader, parts: Sequence[Span], location: str | None) -> list[Any]:
    """Every rollup row of ``parts``."""
    parts = [p for p in parts if p[1] < p[2]]
    if not parts:
        return []
    where, params = _parts_where(parts, location)
    query = (
        "SELECT hour, location, target, probe, model, probes, successes, outcomes, "
        "latency_hist, prompt_tokens, completion_tokens, total_tokens, cost_usd, unpriced "
        f"FROM {_ROLLUP} WHERE {where}"
    )
    when, usd = reader.when, reader.usd
    return [(when(row[0]), *row[1:12], usd(row[12]), row[13]) for row in reader.rows(query, params)]


_SUMMED = ("probes", "successes", "prompt_tokens", "completion_tokens", "total_tokens", "unpriced")


def read_groups(
    reader: Reader, parts: Sequence[Span], location: str | None, less: Sequence[Span] = ()
) -> list[Any]:
    """The rollup rows of ``parts`` summed per (location, target, probe, model), the
    rows of ``less`` taken out (a window's start: a day's row minus its hours before).

    Rows of the module's shape plus two columns, the ``outcomes`` and
    ``latency_hist`` texts of ``less`` (None without); the numbers are net of
    ``less``. One query and one group each where a second query's groups took
    their rows out again in Python (a year's report: 2,000 groups, now 1,000).
    """
    parts = [p for p in parts if p[1] < p[2]]
    less = [p for p in less if p[1] < p[2]]
    if not parts:
        return []
    where, params = _parts_where(parts, location)
    columns = (
        "location, target, probe, model, probes, successes, outcomes, latency_hist, "
        "prompt_tokens, completion_tokens, total_tokens, cost_usd, unpriced"
    )
    rows = f"SELECT 1 AS sign, {columns} FROM {_ROLLUP} WHERE {where}"
    if less:
        less_where, less_params = _parts_where(less, location)
        rows += f" UNION ALL SELECT -1, {columns} FROM {_ROLLUP} WHERE {less_where}"
        params += less_params
    # SQLite: each cost as quote() text (round-trips the float), converted below.
    agg = "group_concat" if reader.sqlite else "string_agg"

    def texts(column: str, sign: str) -> str:  # NULL when no row of that sign
        return f"{agg}(CASE WHEN sign {sign} 0 THEN {column} END, ',')"

    if reader.sqlite:
        cost = f"{texts('quote(cost_usd)', '>')}, {texts('quote(cost_usd)', '<')}"
    else:
        cost = "sum(sign * cost_usd), NULL"
    probes, successes, prompt, completion, total, unpriced = (
        f"CAST(sum(sign * {c}) AS BIGINT)"  # SUM(bigint) is numeric on PostgreSQL
        for c in _SUMMED
    )
    query = (
        f"SELECT NULL, location, target, probe, model, {probes}, {successes}, "
        f"{texts('outcomes', '>')}, {texts('latency_hist', '>')}, {prompt}, {completion}, "
        f"{total}, {cost}, {unpriced}, {texts('outcomes', '<')}, "
        f"{texts('latency_hist', '<')} FROM ({rows}) AS signed "
        "GROUP BY location, target, probe, model"
    )
    if not reader.sqlite:
        # A year's sort is costed above jit_above_cost, and compiling it took 80 ms
        # of a 300 ms query; it is ~16 MB, spilled to disk at the default 4 MB
        # work_mem (EXPLAIN ANALYZE: 300 ms -> 145 ms without JIT -> 98 ms in memory).
        reader.execute("SET LOCAL jit = off")
        reader.execute("SET LOCAL work_mem = '32MB'")
        try:
            return [(*row[:13], row[14], row[15], row[16]) for row in reader.rows(query, params)]
        finally:
            reader.execute("SET LOCAL jit TO DEFAULT")
            reader.execute("SET LOCAL work_mem TO DEFAULT")
    usd = reader.usd

    def cost_of(plus: str | None, minus: str | None) -> Decimal:
        total = sum(map(usd, map(float, plus.split(",") if plus else ())), Decimal(0))
        return total - sum(map(usd, map(float, minus.split(",") if minus else ())), Decimal(0))

    return [
        (*row[:12], cost_of(row[12], row[13]), row[14], row[15], row[16])
        for row in reader.rows(query, params)
    ]


def fold(agg: Any, rows: Sequence[Any]) -> None:
    """Add rows of the module's shape (one group's) to ``agg``, an
    ``monitor.store.aggregate.Aggregate`` (typed Any: that module imports this one);
    ``read_groups``' texts of rows to take out, when there are any, come off its
    outcome and bucket counts (none left at 0 or below)."""
    cols = tuple(zip(*rows, strict=True))
    agg.probes += sum(cols[5])
    agg.successes += sum(cols[6])
    agg.prompt_tokens += sum(cols[9])
    agg.completion_tokens += sum(cols[10])
    agg.total_tokens += sum(cols[11])
    agg.cost_usd = sum(cols[12], agg.cost_usd)
    agg.unpriced += sum(cols[13])
    outcomes, hists = _present(cols[7]), _present(cols[8])
    less_outcomes = _present(cols[14]) if len(cols) > 14 else []
    less_hists = _present(cols[15]) if len(cols) > 14 else []
    agg.outcomes.update(sum_json(outcomes))
    if less_outcomes:
        agg.outcomes = minus(agg.outcomes, sum_json(less_outcomes))
    if less_hists and agg.latency.counts:  # counts already there: add, then take out
        agg.latency.counts.update(sum_hist(hists))
        agg.latency.counts = minus(agg.latency.counts, sum_hist(less_hists))
    else:  # the usual case: any subtraction inside the bucket sums
        agg.latency.counts.update(sum_hist(hists, less_hists))


def _present(texts: Sequence[str | None]) -> list[str]:
    return [text for text in texts if text]


def minus(counts: Counter[Any], less: Mapping[Any, int]) -> Counter[Any]:
    """``+(counts - less)``: no zero counts left behind; one pass (``Counter.subtract``
    then ``+`` was a twentieth of a year's report)."""
    get = less.get
    out: Counter[Any] = Counter()
    for name, count in counts.items():
        if (left := count - get(name, 0)) > 0:
            out[name] = left
    return out


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


def sum_hist(texts: Sequence[str], less: Sequence[str] = ()) -> dict[int, int]:
    """The ``latency_hist`` objects in ``texts`` added up, those of ``less`` taken out:
    {bucket index: count}, buckets left at 0 or below dropped.

    Read as one flat array per chunk (no dict, no key string per bucket, no
    list per object). When nothing is taken out and no bucket repeats (a group
    of one row: ``--by day`` reads one ``tday`` row a group) the array pairs up
    into the answer at C speed; otherwise the counts are added up in a list
    indexed by bucket, and only the buckets seen are read back out of it.
    """
    slots = [0] * (LAST + 1)
    seen: set[int] = set()
    for sign, group in ((1, texts), (-1, less)):
        for at in range(0, len(group), _CHUNK):
            text = ",".join(group[at : at + _CHUNK])
            if "{}" in text:
                text = _EMPTY.sub("", text)
            try:
                if "-" in text:  # a negative index would count from the end: not ours
                    raise IndexError(text)
                flat = json.loads("[" + text.translate(_AS_PAIRS) + "]")
                indexes, counts = flat[0::2], flat[1::2]
                if (
                    not less
                    and len(texts) <= _CHUNK
                    and len(set(indexes)) == len(indexes) == len(counts)
                ):
                    return {i: count for i, count in zip(indexes, counts, strict=True) if count > 0}
                it = iter(flat)
                if sign > 0:
                    for index in it:  # index, count, index, count, ...
                        slots[index] += next(it)
                else:
                    for index in it:
                        slots[index] -= next(it)
                seen.update(indexes)
            except (IndexError, StopIteration, TypeError):  # not a histogram.to_json text
                net = minus(Counter(sum_json(texts)), sum_json(less))
                return {int(index): count for index, count in net.items()}
    return {index: slots[index] for index in seen if slots[index] > 0}
