"""Incidents: state changes of each job over the last 30 days, and catalog changes.

An incident is a run of results that are not ``up``: it starts at the first
result of the run and ends at the next ``ok`` result (``end`` None while it
goes on). ``skipped`` results send no request and say nothing: they neither
start nor end one. A change between down and refused ends one incident and
starts the next. The database does the walk: a ``LAG`` window per
(target, probe, model) returns only the rows whose state differs from the
row before, so a month of probes comes back as a few transitions (SQLite
3.25+ and PostgreSQL both have window functions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, func, or_, select

from monitor.outcome import DOWN_OUTCOMES, Outcome
from monitor.statuspage.state import REFUSED_KIND, State
from monitor.store.models import CatalogEventRow, ProbeResultRow

WINDOW = timedelta(days=30)
MAX_ITEMS = 500  # newest first; older ones are left out (and counted)


@dataclass(frozen=True, slots=True)
class Incident:
    """One run of down (or refused) results of one job."""

    target: str
    probe: str
    model: str  # "" for the models probe
    state: State  # DOWN or REFUSED
    outcome: str  # the first result's outcome
    error: str | None  # the first result's error line (gateway text, already cleaned)
    request_id: str | None
    start: datetime
    end: datetime | None  # the next ok result; None: still going on
    before_window: bool  # it had already begun when the window opened

    @property
    def at(self) -> datetime:
        return self.start

    @property
    def kind(self) -> str:
        if self.state is State.REFUSED:
            return f"refused ({REFUSED_KIND.get(Outcome(self.outcome), 'client')})"
        return "down"

    def duration(self, now: datetime) -> timedelta:
        return (self.end or now) - self.start


@dataclass(frozen=True, slots=True)
class CatalogChange:
    """A model added to or removed from a target's ``/models`` (``count`` > 1: a summary)."""

    at: datetime
    target: str
    model: str
    change: str  # added, removed
    count: int


@dataclass(frozen=True, slots=True)
class Timeline:
    items: tuple[Incident | CatalogChange, ...]  # newest first
    since: datetime
    left_out: int


def _state_sql():  # type: ignore[no-untyped-def]
    p = ProbeResultRow
    return case(
        (p.outcome == Outcome.OK.value, State.UP.value),
        (p.outcome.in_([o.value for o in DOWN_OUTCOMES]), State.DOWN.value),
        else_=State.REFUSED.value,
    )


def incidents(
    conn: Connection, location: str, since: datetime, *, target: str | None = None,
    model: str | None = None,
) -> list[Incident]:  # fmt: skip
    """The incidents of ``location`` from ``since`` on, oldest first; optionally one job."""
    p = ProbeResultRow
    state = _state_sql()
    filters = [p.location == location, p.started_at >= since, p.outcome != Outcome.SKIPPED.value]
    if target is not None:
        filters.append(p.target == target)
    if model is not None:
        filters.append(p.model == model)
    inner = (
        select(
            p.started_at, p.target, p.probe, p.model, p.outcome, p.error, p.request_id,
            state.label("state"),
            func.lag(state)
            .over(partition_by=(p.target, p.probe, p.model), order_by=(p.started_at, p.id))
            .label("prev"),
        )
        .where(*filters)
        .subquery()
    )  # fmt: skip
    c = inner.c
    changes = (
        select(c.started_at, c.target, c.probe, c.model, c.outcome, c.error, c.request_id,
               c.state, c.prev)
        .where(or_(c.prev.is_(None), c.state != c.prev))
        .order_by(c.target, c.probe, c.model, c.started_at)
    )  # fmt: skip
    out: list[Incident] = []
    open_: dict[tuple[str, str, str], Incident] = {}
    for row in conn.execute(changes):
        key = (row.target, row.probe, row.model)
        started = open_.pop(key, None)
        if started is not None:
            out.append(_closed(started, row.started_at))
        if row.state != State.UP.value:
            open_[key] = Incident(
                target=row.target,
                probe=row.probe,
                model=row.model,
                state=State(row.state),
                outcome=row.outcome,
                error=row.error,
                request_id=row.request_id,
                start=row.started_at,
                end=None,
                before_window=row.prev is None and row.started_at - since < timedelta(hours=1),
            )
    out.extend(open_.values())
    out.sort(key=lambda i: (i.start, i.target, i.probe, i.model))
    return out


def _closed(incident: Incident, end: datetime) -> Incident:
    return Incident(
        incident.target, incident.probe, incident.model, incident.state, incident.outcome,
        incident.error, incident.request_id, incident.start, end, incident.before_window,
    )  # fmt: skip


def catalog_changes(conn: Connection, location: str, since: datetime) -> list[CatalogChange]:
    """Catalog events of ``location`` from ``since`` on, oldest first."""
    e = CatalogEventRow
    query = (
        select(e.at, e.target, e.model, e.change, e.count)
        .where(e.location == location, e.at >= since)
        .order_by(e.at, e.id)
    )
    return [CatalogChange(r.at, r.target, r.model, r.change, r.count) for r in conn.execute(query)]


def timeline(conn: Connection, location: str, now: datetime) -> Timeline:
    """Incidents and catalog changes of the last 30 days, newest first, at most ``MAX_ITEMS``."""
    since = now - WINDOW
    items: list[Incident | CatalogChange] = [
        *incidents(conn, location, since),
        *catalog_changes(conn, location, since),
    ]
    items.sort(key=lambda i: i.at, reverse=True)
    return Timeline(tuple(items[:MAX_ITEMS]), since, max(0, len(items) - MAX_ITEMS))
