"""``nexomon report``: availability, latency, outcomes, tokens and cost over a window.

Availability = ok / (ok + server_error + timeout + connection_error +
invalid_response) (``monitor.outcome.DOWN_OUTCOMES``); auth_error,
rate_limited, client_error and skipped are shown apart and do not count as
the gateway being down. Latency p50/p95/p99 are over ok probes, read from
merged fixed-bucket histograms (typically within 1-3 %, at most 10 %, see
``monitor.store.histogram``). Cost is a lower bound when some rows spent
tokens at no known price: ``unpriced_rows`` counts them and the table shows
``>=X``; when no row of a line had a price at all, its cost is ``unknown``
(JSON ``null``), never silently 0.

``--location X`` keeps only the rows measured by location X (any ``--by``).
Every row names the locations it covers (``location``: X, or ``*`` for every
location combined, see ``monitor.cli.report_rows``). ``--by location``
groups by (location, target, probe kind) and adds one combined ``*`` row per
(target, probe kind), after that pair's locations.

``--by day`` groups by (day, target, probe kind): the models probe (a
``GET /models``, about 1 ms) and the chat probes never share one p50 or one
availability. It adds the month-to-date spend. Every (day, target, probe)
line carries ``month_to_date_usd``: that target's and probe kind's cost from
00:00 UTC on the 1st of the day's month through the end of that day,
counted from the 1st even when ``--since`` starts later (it is read from the
store for the whole month), so a new month starts again from that month's
own spend. Shapes:

* table: a ``month_to_date_usd`` column after ``cost_usd``, and one closing line per
  month shown, ``month to date 2025-11 (UTC, through 2025-11-28): 0.012000``,
  the sum over targets and probe kinds of their last line in that month;
* json: the same list of row objects, day rows with ``month_to_date_usd``
  (a decimal string, ``null`` when unknown) and ``month_to_date_known``;
* csv: a ``month_to_date_usd`` column (no closing lines, so it stays one
  table).

Lower bounds and unknowns follow the cost rule above (``>=`` / ``unknown``).

``--by model`` chat rows carry ``substitutions`` (the models that answered
in their place, from the raw rows: ``monitor.cli.report_substitutions``).
Rendering and the table's width rule are in ``monitor.cli.report_render``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from monitor.cli.report_render import FORMATS, TABLE_WIDTH, month_totals, render
from monitor.cli.report_rows import (
    ALL_LOCATIONS,
    BY,
    ReportRow,
    by_day,
    make_row,
    with_combined,
)
from monitor.cli.report_substitutions import with_substitutions
from monitor.errors import UsageError
from monitor.store.aggregate import DAY, Aggregate, aggregate, by_location, by_model, floor_day
from monitor.store.sql_reader import Reader, reader_of

__all__ = [
    "ALL_LOCATIONS",
    "BY",
    "FORMATS",
    "TABLE_WIDTH",
    "ReportRow",
    "build_report",
    "month_start",
    "month_totals",
    "parse_since",
    "render",
]

_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_KEYS = {"model": by_model, "day": by_day, "location": by_location}


def parse_since(text: str, now: datetime) -> datetime:
    """``24h``, ``7d``, ``30d``, ``90m``, ``2w`` before ``now``, or an ISO date/datetime (UTC)."""
    match = _RELATIVE.match(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since: {text!r} is not a duration like 24h, 7d, 30d or an ISO date"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _order(row: ReportRow) -> tuple[str, str, str, str, bool, str]:
    """Day, target, probe, model; a pair's locations by name, the combined row last."""
    return (
        row.day or "",
        row.target,
        row.probe or "",
        row.model or "",
        row.location == ALL_LOCATIONS,
        row.location,
    )


def build_report(
    source: Any, *, since: datetime, by: str, location: str | None = None
) -> list[ReportRow]:
    """Rows for everything from ``since`` on (only ``location``'s when given), sorted.

    ``source``: a SQLAlchemy Session or Connection, or a ``sql_reader.Reader``
    (``nexomon report``'s own, without SQLAlchemy: ``monitor.store.reading``)."""
    if by not in BY:
        raise UsageError(f"--by: must be one of {', '.join(BY)}, not {by!r}")
    if location is not None and not location.strip():
        raise UsageError("--location: must name a location, not be empty")
    reader = reader_of(source)
    # --by day and --by location ignore the model: the per-target day rows do.
    groups = aggregate(
        reader, since=since, key=_KEYS[by], location=location, per_model=by == "model"
    )
    if by == "location":
        groups = with_combined(groups)
    rows = [make_row(key, agg, by, location) for key, agg in groups.items()]
    if by == "day":
        rows = _with_month_to_date(reader, rows, since, location, groups)
    if by == "model":
        rows = with_substitutions(reader, rows, since, location)
    return sorted(rows, key=_order)


def month_start(moment: datetime) -> datetime:
    """00:00 UTC on the 1st of ``moment``'s UTC month."""
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _with_month_to_date(
    reader: Reader,
    rows: list[ReportRow],
    since: datetime,
    location: str | None,
    groups: dict[Hashable, Aggregate],
) -> list[ReportRow]:
    """``rows`` (by day) with each (target, probe)'s running month-to-date cost filled in.

    Whole days from the 1st of ``since``'s month, so the first line counts
    its whole month even when ``since`` is later: the days through
    ``since``'s own day are aggregated again from the 1st, the later ones are
    the report's own ``groups`` (the same whole days; reading them twice was
    half of a long report's time).
    """
    first_day = floor_day(since)
    days = aggregate(
        reader,
        since=month_start(since),
        key=by_day,
        location=location,
        until=first_day + DAY,
        per_model=False,
    )
    days.update((k, agg) for k, agg in groups.items() if k[0] > first_day.date().isoformat())  # type: ignore[index]
    running: dict[tuple[str, str, str], tuple[Decimal, int]] = {}
    to_date: dict[tuple[str, str, str], tuple[Decimal, int]] = {}
    for day, target, probe in sorted(days):  # type: ignore[misc]
        agg = days[(day, target, probe)]
        usd, unpriced = running.get((day[:7], target, probe), (Decimal(0), 0))
        running[(day[:7], target, probe)] = to_date[(day, target, probe)] = (
            usd + agg.cost_usd,
            unpriced + agg.unpriced,
        )
    out = []
    for row in rows:
        usd, unpriced = to_date.get(
            (row.day or "", row.target, row.probe or ""), (row.cost_usd, row.unpriced_rows)
        )
        out.append(replace(row, mtd_usd=usd, mtd_unpriced_rows=unpriced))
    return out
