"""The 24-hour summary of ``/api/v1/status``, kept current by reading only the rows added since.

``queries.status_summary`` reads every raw row of the window the rollup does
not hold and groups a day of rows for each job's last result: at 10,000
models probed every minute that is 14 million rows, a minute of work, every
refresh. ``WindowTally`` reads that much once, then only what changed:

- The window starts at the top of the hour 24 hours ago
  (``window_start``): 24 to 25 hours, as Gatus' hourly uptime buckets are,
  so the hours that leave it are whole rollup hours.
- ``summary(session, now)``: the first call, and the first after the
  rollup's ``complete_before`` moved (once an hour, when the rollup has just
  taken the raw rows of the hour before), builds the sums: rollup rows up to
  ``complete_before`` (``aggregate``), raw rows after it. Every other call
  adds the rows with an id above the highest it has read (a primary-key
  range) and takes out the hours that left the window (``aggregate`` over
  them: their rollup rows, or their raw rows while the rollup is behind).
- Each job's last result is its row with the highest id, as in
  ``status_summary``: a rebuild keeps the ids read before and reads those of
  the rows added since. The first build reads the ids of the raw rows after
  ``complete_before``; a job with none there is found by one index lookup
  (``target, model, started_at``: its latest row).

The numbers are those of ``status_summary(session, window_start(now))``
(tests/store/test_status_tally.py checks it step by step). A row committed
with an id below one already read (two locations' writers sharing a
PostgreSQL database commit out of order) is counted at the next rebuild,
within the hour. Not thread-safe: one caller at a time (the status window's
lock).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from monitor.store.aggregate import (
    Aggregate,
    add_raw_row,
    aggregate,
    complete_before,
    floor_hour,
)
from monitor.store.models import ProbeResultRow
from monitor.store.queries import StatusRow, status_row
from monitor.store.rollup import raw_columns

WINDOW = timedelta(hours=24)
Key = tuple[str, str, str]  # target, probe, model
_CHUNK = 500  # ids per ``IN (...)``: well under SQLite's 999 bound parameters


def window_start(now: datetime) -> datetime:
    """The top of the hour 24 hours before ``now``."""
    return floor_hour(now - WINDOW)


@dataclass
class _Sums:
    start: datetime  # the window's start
    done: datetime | None  # rollup_state.complete_before when built
    seen_id: int  # the highest probe_results.id folded in
    groups: dict[Key, Aggregate]
    last: dict[Key, int]  # each job's highest id


class WindowTally:
    """The sums and last rows of one database's 24 h window (see the module docstring)."""

    def __init__(self) -> None:
        self._sums: _Sums | None = None

    def summary(self, session: Session, now: datetime) -> list[StatusRow]:
        """One row per target, probe and model seen in the window, sorted by them.

        Raises what the driver raises; the sums are then rebuilt by the next call.
        """
        try:
            sums = self._update(session, now)
            return _status_rows(session, sums)
        except BaseException:
            self._sums = None  # half-folded: start again
            raise

    def _update(self, session: Session, now: datetime) -> _Sums:
        start = window_start(now)
        done = complete_before(session)
        sums = self._sums
        if sums is None or sums.done != done or start < sums.start:
            sums = self._sums = _build(session, start, done, sums)
            return sums
        _add_new(session, sums)
        if start > sums.start:
            _take_out(session, sums, start)
        return sums


def _build(session: Session, start: datetime, done: datetime | None, old: _Sums | None) -> _Sums:
    p = ProbeResultRow
    # Read the bound first and fold only ids up to it: the next call's
    # ``id > seen_id`` then neither repeats nor skips a row added meanwhile.
    seen_id = session.scalar(select(func.max(p.id))) or 0
    groups: dict[Key, Aggregate] = {}
    raw_from = start
    if done is not None and done > start:
        groups = cast(dict[Key, Aggregate], aggregate(session, since=start, until=done))
        raw_from = done
    last: dict[Key, int] = {}
    query = select(p.id, *raw_columns()).where(p.started_at >= raw_from, p.id <= seen_id)
    _fold(session.execute(query), groups, last)
    if old is not None:  # ids read before, and those of late rows since, may be higher
        late = select(p.id, p.target, p.probe, p.model).where(
            p.id > old.seen_id, p.id <= seen_id, p.started_at >= start, p.started_at < raw_from
        )
        for row_id, *key in session.execute(late):
            _keep_highest(old.last, (key[0], key[1], key[2]), row_id)
        for key, row_id in old.last.items():
            if key in groups:
                _keep_highest(last, key, row_id)
    for key in [k for k in groups if k not in last]:
        found = _last_id(session, key, start, seen_id)
        if found is not None:
            last[key] = found
    return _Sums(start=start, done=done, seen_id=seen_id, groups=groups, last=last)


def _last_id(session: Session, key: Key, start: datetime, seen_id: int) -> int | None:
    """The id of ``key``'s latest row since ``start`` (the target+model+started_at index)."""
    p = ProbeResultRow
    target, probe, model = key
    query = (
        select(p.id)
        .where(p.target == target, p.model == model, p.probe == probe)
        .where(p.started_at >= start, p.id <= seen_id)
        .order_by(p.started_at.desc(), p.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def _add_new(session: Session, sums: _Sums) -> None:
    """Fold the rows with an id above ``seen_id`` that started inside the window.

    One query with no ``started_at`` bound, so a row that started before the
    window (a spool replayed late) is passed over here and never read again."""
    p = ProbeResultRow
    rows = session.execute(select(p.id, *raw_columns()).where(p.id > sums.seen_id))
    sums.seen_id = max(sums.seen_id, _fold(rows, sums.groups, sums.last, since=sums.start))


def _take_out(session: Session, sums: _Sums, start: datetime) -> None:
    """Subtract the hours [sums.start, start) that left the window."""
    gone = cast(dict[Key, Aggregate], aggregate(session, since=sums.start, until=start))
    for key, less in gone.items():
        agg = sums.groups.get(key)
        if agg is None:
            continue
        agg.subtract(less)
        if agg.probes <= 0:  # every row of the job has left the window
            del sums.groups[key]
            sums.last.pop(key, None)
    sums.start = start


def _fold(
    rows: Iterable[Row[Any]],
    groups: dict[Key, Aggregate],
    last: dict[Key, int],
    *,
    since: datetime | None = None,
) -> int:
    """Add ``(id, *raw_columns())`` rows to ``groups`` (those started at ``since`` or
    later when given); keep each job's highest id in ``last``; return the highest
    id read, folded or not (0 for none)."""
    top = 0
    for row in rows:
        row_id, raw = row[0], row[1:]
        top = max(top, row_id)
        if since is not None and raw[0] < since:
            continue
        key = (raw[1], raw[2], raw[3])
        agg = groups.get(key)
        if agg is None:
            agg = groups[key] = Aggregate()
        add_raw_row(agg, raw)
        _keep_highest(last, key, row_id)
    return top


def _keep_highest(last: dict[Key, int], key: Key, row_id: int) -> None:
    if row_id > last.get(key, 0):
        last[key] = row_id


def _status_rows(session: Session, sums: _Sums) -> list[StatusRow]:
    p = ProbeResultRow
    ids = list(sums.last.values())
    found: dict[int, Any] = {}
    table = p.__table__
    for i in range(0, len(ids), _CHUNK):
        # Core rows: named like the mapped attributes, a third of the ORM objects' cost.
        for row in session.execute(select(table).where(table.c.id.in_(ids[i : i + _CHUNK]))):
            found[row.id] = row
    out = []
    for key in sorted(sums.groups):
        row = found.get(sums.last.get(key, -1))
        if row is not None:  # None: no raw row left (raw retention shorter than a day)
            out.append(status_row(row, sums.groups[key]))
    return out
