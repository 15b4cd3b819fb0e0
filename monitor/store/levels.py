"""Which rollup rows cover a window: the plan ``aggregate`` reads.

``probe_rollup_hourly`` holds hour rows, day rows merged from them, and two
levels merged from the day rows (``monitor.store.rollup``): ``tday`` (a day
of every model of a target) and ``month`` (a complete month of one model).
``plan(start, end, ...)`` names the rows that add up to [start, end) with as
few rows per model as it can: whole months from month rows, other whole
days from day rows (or every whole day from ``tday`` rows when the grouping
ignores the model), and the hours around them from hour rows.

The partial unit at the window's start (the end of a day, or the end of a
month) is read as the whole unit's row minus the rows before the window
when that is fewer rows: 06:00-24:00 is one day row minus six hour rows,
not 18 hour rows. Every sum in a rollup row (counts, outcomes, histogram
buckets, tokens, cost) is exact, so the difference is too. It is used only
for a unit that starts after ``oldest``: rollup retention deletes small rows
before big ones (a month row outlives its first days), and the difference
must not take out rows that are gone.

The window's end, the current month and day, would be up to 30 day rows and
23 hour rows per model, most of a year's rows (benchmarks/history.py). The
to-date rows (``monitor.store.rollup``) stand for them: ``dtd`` at hour H,
the hour rows of [00:00 of H's day, H), and ``mtd`` at midnight D, the day
rows of [1st of D's month, D). A to-date row's ``hour`` is the end of what it
covers. ``plan`` reads one only when ``to_date`` names it as present
(``rollup_read.to_date_rows``: ``dtd`` and ``mtd`` only at the rollup's current point).

The whole days in between are one more kind of to-date row: ``atd`` at
midnight D, every day row before D (a running total, kept at every midnight
for ``KEEP_DAYS``, rebuilt from a re-rolled day on). Whole days [a, b) of a
model are ``atd`` at b minus ``atd`` at a, 2 rows instead of up to 16 day
rows, 11 month rows and an ``mtd`` row: a year then reads 3 rows a model
plus the hours at its start. Every sum in a row is exact, so the difference
is too, and it holds after retention took the day rows before a (both
``atd`` rows keep them). Where either ``atd`` row is missing (a database
that ran an older nexomon, before its first refresh with them) the plan
reads month, day and ``mtd`` rows as above: the same figures.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
KEEP_DAYS = 400  # rollup rows are kept this long (rollup.refresh, retention.prune)
DTD = "dtd"  # day to date: hour rows from midnight to the row's hour
MTD = "mtd"  # month to date: day rows from the 1st to the row's midnight
ATD = "atd"  # all to date: every day row before the row's midnight

# (+1 to add or -1 to take out, span, start, end): the ``span`` rows with
# ``hour`` in [start, end).
Part = tuple[int, str, datetime, datetime]


def floor_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def next_month(month: datetime) -> datetime:
    """The 1st of the month after ``month`` (a 1st, 00:00 UTC)."""
    return (month + timedelta(days=32)).replace(day=1)


def plan(
    start: datetime,
    end: datetime,
    *,
    per_model: bool,
    oldest: datetime,
    to_date: Collection[tuple[str, datetime]] = (),
) -> list[Part]:
    """The rows that add up to [start, end): whole UTC hours, ``end`` not after the
    rollup's ``complete_before``. ``per_model=False``: the grouping ignores the
    model, so whole days come from ``tday`` rows. ``to_date``: the (span, hour)
    of the to-date rows that may be read."""
    days_from = floor_day(start)
    if days_from != start:
        days_from += DAY
    days_to = floor_day(end)
    today = _today(start, days_to, end, to_date)
    if days_from >= days_to and today[0][1] != DTD:
        return [(1, "hour", start, end)]
    # Without whole days (days_from == days_to) the parts before ``today`` are
    # the end of the day before, or nothing.
    day_span = "day" if per_model else "tday"
    parts = _tail(start, days_from, day_span, floor_day(start), "hour", HOUR, oldest)
    if days_from < days_to and per_model:
        parts += _days(days_from, days_to, oldest, to_date)
    elif days_from < days_to:
        parts.append((1, "tday", days_from, days_to))
    return parts + today


def _today(
    start: datetime, days_to: datetime, end: datetime, to_date: Collection[tuple[str, datetime]]
) -> list[Part]:
    """[days_to, end), the hours of ``end``'s day: its ``dtd`` row when there is one."""
    if start <= days_to < end and (DTD, end) in to_date:
        return [(1, DTD, end, end + HOUR)]
    return [(1, "hour", days_to, end)]


def _days(
    start: datetime, end: datetime, oldest: datetime, to_date: Collection[tuple[str, datetime]]
) -> list[Part]:
    """Whole days [start, end) of each model: two ``atd`` rows when both are there,
    else month rows, and day rows (or the ``mtd`` row of the days of ``end``'s month)
    around them."""
    if (ATD, start) in to_date and (ATD, end) in to_date and (end - start) // DAY > 2:
        return [(1, ATD, end, end + HOUR), (-1, ATD, start, start + HOUR)]
    first_month = start.replace(day=1)
    months_from = start if start == first_month else next_month(first_month)
    months_to = end.replace(day=1)
    if months_from > months_to:
        return [(1, "day", start, end)]
    parts = _tail(start, months_from, "month", first_month, "day", DAY, oldest)
    parts.append((1, "month", months_from, months_to))
    if months_to < end and (MTD, end) in to_date:
        parts.append((1, MTD, end, end + HOUR))
    else:
        parts.append((1, "day", months_to, end))
    return parts


def _tail(
    start: datetime,
    end: datetime,
    big: str,
    big_start: datetime,
    small: str,
    unit: timedelta,
    oldest: datetime,
) -> list[Part]:
    """[start, end): the end of the ``big`` unit beginning at ``big_start``, from its
    ``small`` rows, or from its ``big`` row minus the ``small`` rows before ``start``
    when that reads fewer rows."""
    if start >= end:
        return []
    inside = (end - start) // unit
    before = (start - big_start) // unit
    if 1 + before >= inside or big_start < oldest:
        return [(1, small, start, end)]
    return [(1, big, big_start, start), (-1, small, big_start, start)]
