"""``nexomon report``: availability, latency, outcomes, tokens and cost over a window.

Availability = ok / (ok + server_error + timeout + connection_error +
invalid_response) (``monitor.outcome.DOWN_OUTCOMES``); auth_error,
rate_limited, client_error and skipped are shown apart and do not count as
the gateway being down. Latency p50/p95/p99 are over ok probes, read from
merged fixed-bucket histograms (within about 5 %, see
``monitor.store.histogram``). Cost is a lower bound when some rows spent
tokens at no known price: ``unpriced_rows`` counts them and the table shows
``>=X``; when no row of a line had a price at all, its cost is ``unknown``
(JSON ``null``), never silently 0.

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

Width: json, csv and the ``--wide`` table have every column (one per
outcome). The default table fits ``TABLE_WIDTH`` (120) where it can: the
key columns, probes, availability, p50, p95 and costs, then as many of
``OPTIONAL`` as still fit, in order; ``down`` sums the ``DOWN_OUTCOMES`` and
``refused`` auth_error + rate_limited + client_error (long model ids may
make even the key columns wider).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Hashable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from monitor.errors import UsageError
from monitor.outcome import DOWN_OUTCOMES, Outcome
from monitor.store.aggregate import Aggregate, aggregate, by_model
from monitor.untrusted import escape_controls

FORMATS = ("table", "json", "csv")
BY = ("model", "day")
OUTCOMES = tuple(o.value for o in Outcome)
_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TABLE_WIDTH = 120
REFUSED = (Outcome.AUTH_ERROR.value, Outcome.RATE_LIMITED.value, Outcome.CLIENT_ERROR.value)
# The default table: columns in display order, those always shown, then the
# optional ones in the order they are added while the table fits TABLE_WIDTH.
COMPACT = (
    "day", "target", "probe", "model", "probes", "availability_pct", "p50_ms", "p95_ms", "p99_ms",
    "ok", "down", "refused", "skipped", "tokens_in", "tokens_out", "cost_usd",
    "month_to_date_usd", "unpriced_rows",
)  # fmt: skip
OPTIONAL = (
    "down", "refused", "skipped", "ok", "p99_ms", "tokens_in", "tokens_out", "unpriced_rows",
)  # fmt: skip


def by_day(at: datetime, _location: str, target: str, probe: str, _model: str) -> Hashable:
    """The ``--by day`` key: (UTC day, target, probe kind)."""
    return (at.date().isoformat(), target, probe)


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


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One line of the report: a target/probe/model (by=model) or a day/target/probe (by=day)."""

    target: str
    probe: str | None
    model: str | None
    day: str | None
    probes: int
    availability_pct: float | None
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    outcomes: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    unpriced_rows: int
    # --by day only: the target's and probe kind's month-to-date spend (see module doc)
    mtd_usd: Decimal | None = None
    mtd_unpriced_rows: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "probe": self.probe,
            "model": self.model,
            "day": self.day,
            "probes": self.probes,
            "availability_pct": self.availability_pct,
            "p50_s": self.p50_s,
            "p95_s": self.p95_s,
            "p99_s": self.p99_s,
            "outcomes": self.outcomes,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": _json_usd(self.cost_usd, self.unpriced_rows),
            "cost_known": self.unpriced_rows == 0,
            "unpriced_rows": self.unpriced_rows,
            **(
                {}
                if self.day is None or self.mtd_usd is None
                else {
                    "month_to_date_usd": _json_usd(self.mtd_usd, self.mtd_unpriced_rows),
                    "month_to_date_known": self.mtd_unpriced_rows == 0,
                }
            ),
        }


def _json_usd(usd: Decimal, unpriced: int) -> str | None:
    """Cost as a decimal string; None when unknown (tokens spent, nothing priced)."""
    return None if unpriced and not usd else str(usd)


def _row(key: Hashable, agg: Aggregate, by: str) -> ReportRow:
    if by == "model":
        target, probe, model = key  # type: ignore[misc]
        day = None
    else:
        day, target, probe = key  # type: ignore[misc]
        model = None
    return ReportRow(
        target=target,
        probe=probe,
        model=model,
        day=day,
        probes=agg.probes,
        availability_pct=agg.availability_pct,
        p50_s=agg.latency.quantile(0.50),
        p95_s=agg.latency.quantile(0.95),
        p99_s=agg.latency.quantile(0.99),
        outcomes={o: agg.outcomes.get(o, 0) for o in OUTCOMES},
        prompt_tokens=agg.prompt_tokens,
        completion_tokens=agg.completion_tokens,
        cost_usd=agg.cost_usd,
        unpriced_rows=agg.unpriced,
    )


def build_report(
    session: Session, *, since: datetime, by: str, location: str | None = None
) -> list[ReportRow]:
    """Rows for everything from ``since`` on, sorted by target, probe, model (or day)."""
    if by not in BY:
        raise UsageError(f"--by: must be one of {', '.join(BY)}, not {by!r}")
    groups = aggregate(
        session, since=since, key=by_model if by == "model" else by_day, location=location
    )
    rows = [_row(key, agg, by) for key, agg in groups.items()]
    if by == "day":
        rows = _with_month_to_date(session, rows, since, location)
    return sorted(rows, key=lambda r: (r.day or "", r.target, r.probe or "", r.model or ""))


def month_start(moment: datetime) -> datetime:
    """00:00 UTC on the 1st of ``moment``'s UTC month."""
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _with_month_to_date(
    session: Session, rows: list[ReportRow], since: datetime, location: str | None
) -> list[ReportRow]:
    """``rows`` (by day) with each (target, probe)'s running month-to-date cost filled in.

    A second aggregation from the 1st of ``since``'s month: whole days, so
    the first line counts its whole month even when ``since`` is later.
    """
    days = aggregate(session, since=month_start(since), key=by_day, location=location)
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


def month_totals(rows: list[ReportRow]) -> list[tuple[str, str, Decimal, int]]:
    """(month, last day, month-to-date cost, unpriced rows) per month of by-day ``rows``.

    The sum over (target, probe) of each one's last line in that month.
    """
    last: dict[tuple[str, str, str], ReportRow] = {}
    for row in rows:
        if row.day is not None and row.mtd_usd is not None:
            key = (row.day[:7], row.target, row.probe or "")
            if key not in last or (last[key].day or "") < row.day:
                last[key] = row
    months: dict[str, tuple[str, Decimal, int]] = {}
    for (month, _target, _probe), row in sorted(last.items()):
        day, usd, unpriced = months.get(month, ("", Decimal(0), 0))
        months[month] = (
            max(day, row.day or ""),
            usd + (row.mtd_usd or Decimal(0)),
            unpriced + row.mtd_unpriced_rows,
        )
    return [(m, d, usd, n) for m, (d, usd, n) in sorted(months.items())]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _usd(usd: Decimal, unpriced: int) -> str:
    """``0.012000``; ``>=0.012000`` when some rows had no price; ``unknown`` when none had."""
    if unpriced and not usd:
        return "unknown"
    text = f"{usd:.6f}"
    return text if unpriced == 0 else f">={text}"


def _cost(row: ReportRow) -> str:
    return _usd(row.cost_usd, row.unpriced_rows)


def _flat(row: ReportRow) -> dict[str, Any]:
    flat = {
        "day": row.day or "",
        "target": row.target,
        "probe": row.probe or "",
        "model": row.model or "",
        "probes": row.probes,
        "availability_pct": _pct(row.availability_pct),
        "p50_ms": _ms(row.p50_s),
        "p95_ms": _ms(row.p95_s),
        "p99_ms": _ms(row.p99_s),
    }
    flat.update(row.outcomes)
    flat.update(
        tokens_in=row.prompt_tokens,
        tokens_out=row.completion_tokens,
        cost_usd=_cost(row),
    )
    if row.day is not None and row.mtd_usd is not None:
        flat["month_to_date_usd"] = _usd(row.mtd_usd, row.mtd_unpriced_rows)
    flat["unpriced_rows"] = row.unpriced_rows
    return flat


def render(rows: list[ReportRow], fmt: str, *, wide: bool = False) -> str:
    """The report as ``table`` (aligned text, control characters escaped), ``json`` or ``csv``.

    ``wide`` only changes the table: every column instead of those that fit
    ``TABLE_WIDTH`` (see the module docstring).
    """
    if fmt == "json":
        return json.dumps([r.to_json() for r in rows], indent=2) + "\n"
    if fmt not in FORMATS:
        raise UsageError(f"--format: must be one of {', '.join(FORMATS)}, not {fmt!r}")
    flats = [_flat(r) for r in rows]
    if not flats:
        return "no probe results in this window\n" if fmt == "table" else ""
    by_day_mode = rows[0].day is not None
    drop = ("model",) if by_day_mode else ("day",)
    columns = [c for c in flats[0] if c not in drop]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(flats)
        return buffer.getvalue()
    # Model ids come from a gateway: control characters are shown as escapes,
    # so a row stays one line and sends the terminal nothing (csv/json escape
    # by their own rules).
    if not wide:
        flats = [{**f, **_outcome_groups(r)} for f, r in zip(flats, rows, strict=True)]
        columns = [c for c in COMPACT if c in flats[0] and c not in drop]
    cells = [[escape_controls(str(f[c])) for c in columns] for f in flats]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    if not wide:
        columns, cells, widths = _fit(columns, cells, widths)
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    if by_day_mode:
        lines += [
            f"month to date {month} (UTC, through {day}): {_usd(usd, unpriced)}"
            for month, day, usd, unpriced in month_totals(rows)
        ]
    return "\n".join(lines) + "\n"


def _outcome_groups(row: ReportRow) -> dict[str, int]:
    """``down`` and ``refused`` counts of a row (the availability rule's groups)."""
    return {
        "down": sum(row.outcomes.get(o.value, 0) for o in DOWN_OUTCOMES),
        "refused": sum(row.outcomes.get(o, 0) for o in REFUSED),
    }


def _fit(
    columns: list[str], cells: list[list[str]], widths: list[int]
) -> tuple[list[str], list[list[str]], list[int]]:
    """The always-shown columns plus the ``OPTIONAL`` ones, in order, while within the width."""
    keep = {i for i, c in enumerate(columns) if c not in OPTIONAL}
    for name in OPTIONAL:
        if name not in columns:
            continue
        i = columns.index(name)
        if sum(widths[j] + 2 for j in keep | {i}) - 2 > TABLE_WIDTH:
            break
        keep.add(i)
    shown = sorted(keep)
    return (
        [columns[i] for i in shown],
        [[row[i] for i in shown] for row in cells],
        [widths[i] for i in shown],
    )
