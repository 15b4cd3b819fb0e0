"""The report's substitutions: which model answered chat probes for another one.

``nexomon report --by model`` gives each chat row ``substitutions``: the
models that answered in the asked model's place, with how many answers
each (``{}`` when every answer came from the model asked for). It is read
from the raw rows (``probe_results.substituted_by``, kept ``retention_days``),
not from the hourly rollup, so a window longer than the retention counts
only the retained days. The table adds one closing line per substitute:
``substituted: gw/sim-a answered by sim-cheap 12 times``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from monitor.cli.report_rows import ALL_LOCATIONS, ReportRow
from monitor.store.sql_reader import reader_of


def read_substitutions(
    source: Any, since: datetime, location: str | None
) -> dict[tuple[str, str], dict[str, int]]:
    """(target, model) -> {substitute: answers} for chat rows from ``since`` on
    (``source``: a Session, Connection or ``sql_reader.Reader``)."""
    query = (
        "SELECT target, model, substituted_by, count(*) FROM probe_results "
        "WHERE started_at >= ? AND probe = 'chat' AND substituted_by IS NOT NULL"
    )
    params: list[Any] = [since]
    if location is not None:
        query += " AND location = ?"
        params.append(location)
    query += " GROUP BY target, model, substituted_by"
    found: dict[tuple[str, str], dict[str, int]] = {}
    for target, model, substitute, count in reader_of(source).rows(query, params):
        found.setdefault((target, model), {})[substitute] = int(count)
    return found


def with_substitutions(
    source: Any, rows: list[ReportRow], since: datetime, location: str | None
) -> list[ReportRow]:
    """``rows`` (by model) with each chat row's ``substitutions`` filled in."""
    found = read_substitutions(source, since, location)
    return [
        replace(row, substitutions=found.get((row.target, row.model or ""), {}))
        if row.probe == "chat" and row.model is not None
        else row
        for row in rows
    ]


def substitution_lines(rows: list[ReportRow]) -> list[str]:
    """The table's closing lines, one per (row, substitute), most answers first."""
    lines = []
    for row in rows:
        where = "" if row.location == ALL_LOCATIONS else f" from {row.location}"
        ranked = sorted((row.substitutions or {}).items(), key=lambda kv: (-kv[1], kv[0]))
        for substitute, count in ranked:
            times = "once" if count == 1 else f"{count} times"
            lines.append(
                f"substituted: {row.target}/{row.model} answered by {substitute} {times}{where}"
            )
    return lines
