"""``nexomon report``'s output: a table, JSON or CSV from ``ReportRow``s.

Width: json, csv and the ``--wide`` table have every column (one per
outcome). The default table fits ``TABLE_WIDTH`` (120) where it can: the
key columns, probes, availability, p50, p95 and costs, then as many of
``OPTIONAL`` as still fit, in order; ``down`` sums the ``DOWN_OUTCOMES`` and
``refused`` auth_error + rate_limited + client_error (long model ids may
make even the key columns wider).

Key columns by mode: ``--by model`` target, probe, model; ``--by day`` day,
target, probe; ``--by location`` location, target, probe. csv and json
always carry ``location`` (``*``: every location combined); the table shows
it only in ``--by location`` mode.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

from monitor.cli.report_rows import ReportRow
from monitor.cli.report_substitutions import substitution_lines
from monitor.errors import UsageError
from monitor.outcome import DOWN_OUTCOMES, Outcome
from monitor.untrusted import escape_controls

FORMATS = ("table", "json", "csv")
TABLE_WIDTH = 120
REFUSED = (Outcome.AUTH_ERROR.value, Outcome.RATE_LIMITED.value, Outcome.CLIENT_ERROR.value)
# The default table: columns in display order, those always shown, then the
# optional ones in the order they are added while the table fits TABLE_WIDTH.
COMPACT = (
    "location", "day", "target", "probe", "model", "probes", "availability_pct", "p50_ms",
    "p95_ms", "p99_ms", "ok", "down", "refused", "skipped", "tokens_in", "tokens_out", "cost_usd",
    "month_to_date_usd", "unpriced_rows",
)  # fmt: skip
OPTIONAL = (
    "down", "refused", "skipped", "ok", "p99_ms", "tokens_in", "tokens_out", "unpriced_rows",
)  # fmt: skip


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


def usd_text(usd: Decimal, unpriced: int) -> str:
    """``0.012000``; ``>=0.012000`` when some rows had no price; ``unknown`` when none had."""
    if unpriced and not usd:
        return "unknown"
    text = f"{usd:.6f}"
    return text if unpriced == 0 else f">={text}"


def _flat(row: ReportRow) -> dict[str, Any]:
    flat = {
        "location": row.location,
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
        cost_usd=usd_text(row.cost_usd, row.unpriced_rows),
    )
    if row.day is not None and row.mtd_usd is not None:
        flat["month_to_date_usd"] = usd_text(row.mtd_usd, row.mtd_unpriced_rows)
    flat["unpriced_rows"] = row.unpriced_rows
    if row.model is not None:  # --by model: answers from another model (chat rows)
        subs = row.substitutions
        flat["substituted"] = "" if subs is None else sum(subs.values())
    return flat


def _mode(row: ReportRow) -> str:
    """The ``--by`` a row came from: day rows have a day, model rows a model."""
    if row.day is not None:
        return "day"
    return "model" if row.model is not None else "location"


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
    mode = _mode(rows[0])
    drop = {"day": ("model",), "model": ("day",), "location": ("day", "model")}[mode]
    columns = [c for c in flats[0] if c not in drop]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(flats)
        return buffer.getvalue()
    if mode != "location":
        drop += ("location",)
    # Model ids come from a gateway: control characters are shown as escapes,
    # so a row stays one line and sends the terminal nothing (csv/json escape
    # by their own rules).
    if wide:
        columns = [c for c in columns if c not in drop]
    else:
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
    if mode == "day":
        lines += [
            f"month to date {month} (UTC, through {day}): {usd_text(usd, unpriced)}"
            for month, day, usd, unpriced in month_totals(rows)
        ]
    lines += [escape_controls(line) for line in substitution_lines(rows)]
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
