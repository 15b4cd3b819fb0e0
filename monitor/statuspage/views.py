"""What the templates show: per-target and per-model rows, the banner, the uptime bar.

``build_index`` merges the database's ``PageData`` with the daemon's live
results (a live result newer than the stored one wins: the writer commits
within a second or so, the page should not lag it) and decides each state
(``state.verdict``). Rows are sorted so the ones to look at come first
(down, degraded, refused, unknown, skipped, up; then by name). Everything
here is plain data; escaping is the templates' (autoescape) job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from monitor.results import ProbeResult
from monitor.statuspage.incidents import CatalogChange, Incident
from monitor.statuspage.queries import DayFigures, ModelHistory, PageData
from monitor.statuspage.state import RANK, State, Verdict, availability_class, verdict

# Above this many models on ``/`` the uptime bars merge equal days into runs
# (one element per run, its tooltip the run's figures), so 1,000 models stay
# far below 500 KB; the per-model page always has one cell per day.
FULL_BAR_MAX_MODELS = 60

LiveKey = tuple[str, str, str]  # (target, probe, model)


def job_name(target: str, model: str) -> str:
    return f"{target} /models" if model == "" else f"{target}/{model}"


def model_path(target: str, model: str) -> str:
    """The per-model page's path; the id is percent-encoded (``/`` included)."""
    return f"/targets/{quote(target, safe='')}/models/{quote(model, safe='')}"


def badge_path(target: str, model: str, kind: str) -> str:
    return f"/badge/{quote(target, safe='')}/{quote(model, safe='')}/{kind}.svg"


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1.0:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def percent(value: float | None) -> str:
    if value is None:
        return "no data"
    if value >= 99.995 or value == 0:
        return f"{value:.0f} %"
    return f"{min(value, 99.99):.2f} %"


def ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    secs = max(0, int((now - then).total_seconds()))
    if secs < 120:
        return f"{secs} s ago"
    if secs < 7200:
        return f"{secs // 60} min ago"
    if secs < 172800:
        return f"{secs // 3600} h ago"
    return f"{secs // 86400} d ago"


def minutes(delta_s: float) -> str:
    mins = int(delta_s // 60)
    return f"{mins} min" if mins < 120 else f"{mins // 60} h {mins % 60} min"


def incident_title(item: Incident | CatalogChange) -> str:
    """One line naming what happened: ``gw/m1 down (server_error)``, ``gw: m2 added``."""
    if isinstance(item, Incident):
        return f"{job_name(item.target, item.model)} {item.kind} ({item.outcome})"
    if item.model == "" or item.count > 1:
        return f"{item.target}: {item.count} models {item.change}"
    return f"{item.target}: {item.model} {item.change}"


@dataclass(frozen=True, slots=True)
class Cell:
    """One uptime-bar element: a day, or a run of ``span`` days with the same colour."""

    css: str
    title: str
    span: int = 1


def day_title(d: DayFigures) -> str:
    if d.probes == 0:
        return f"{d.day.isoformat()}: no data"
    return (
        f"{d.day.isoformat()}: {percent(d.availability_pct)} available, "
        f"{d.probes} probes, {d.down} down"
    )


@dataclass(frozen=True, slots=True)
class _Run:
    """Equal neighbouring days of an uptime bar, with their sums."""

    css: str
    first: DayFigures
    last: DayFigures
    days: int
    probes: int
    ok: int
    down: int

    def cell(self) -> Cell:
        if self.probes == 0:  # grey says "no data" (the legend); a title here is 30 KB a page
            return Cell(self.css, "", self.days)
        counted = self.ok + self.down
        avail = 100.0 * self.ok / counted if counted else None
        span = f"{self.first.day:%m-%d}"
        if self.days > 1:
            span += f" to {self.last.day:%m-%d}"
        figures = f"{percent(avail)}, {self.probes} probes"
        if self.down:
            figures += f", {self.down} down"
        return Cell(self.css, f"{span}: {figures}", self.days)


def _merge(days: Iterable[DayFigures], runs: list[_Run]) -> list[_Run]:
    """Append ``days`` to ``runs``, joining equal neighbours; never changes a run in place."""
    for d in days:
        css = availability_class(d.availability_pct)
        if runs and runs[-1].css == css:
            r = runs[-1]
            runs[-1] = _Run(
                css, r.first, d, r.days + 1, r.probes + d.probes, r.ok + d.ok, r.down + d.down
            )
        else:
            runs.append(_Run(css, d, d, 1, d.probes, d.ok, d.down))
    return runs


def bar_cells(history: ModelHistory, runs: bool) -> list[Cell]:
    """The uptime bar, one cell per day; with ``runs``, equal neighbours merged.

    The runs of the days the rollup settled, and their cells, are kept on
    ``history.prefix`` (until the next refresh), so a render merges only the
    last day or two. A run's tooltip is short (``11-02 to 11-10: 100 %, 36
    probes``): on a 1,000-model page every byte of it is paid a few thousand
    times.
    """
    days = history.days
    if not runs:
        return [Cell(availability_class(d.availability_pct), day_title(d)) for d in days]
    prefix = history.prefix
    if prefix is None:
        return [run.cell() for run in _merge(days, [])]
    memo = prefix.memo.get("runs")
    if memo is None:
        settled = _merge(prefix.days, [])
        # Every settled run but the last is final; the last may grow into the tail.
        memo = prefix.memo["runs"] = ([run.cell() for run in settled[:-1]], settled[-1:])
    cells, open_run = memo  # type: ignore[misc]
    tail = _merge(days[len(prefix.days) :], list(open_run))
    return [*cells, *(run.cell() for run in tail)]


@dataclass(frozen=True, slots=True)
class ModelView:
    target: str
    model: str
    verdict: Verdict
    last: ProbeResult | None
    history: ModelHistory | None

    @property
    def url(self) -> str:
        return model_path(self.target, self.model)


@dataclass(frozen=True, slots=True)
class TargetView:
    name: str
    listing: Verdict  # the gateway's /models
    listing_result: ProbeResult | None
    catalog_size: int | None
    models: tuple[ModelView, ...]

    def count(self, state: State) -> int:
        return sum(1 for m in self.models if m.verdict.state is state)


@dataclass(frozen=True, slots=True)
class IndexView:
    now: datetime
    targets: tuple[TargetView, ...]
    banner: str
    banner_state: State
    runs: bool  # compact uptime bars
    model_count: int
    note: str = ""  # e.g. the database is unavailable


def with_note(view: IndexView, note: str) -> IndexView:
    return dataclasses.replace(view, note=note)


def newer(a: ProbeResult | None, b: ProbeResult | None) -> ProbeResult | None:
    if a is None or b is None:
        return a or b
    return a if a.started_at >= b.started_at else b


def build_index(
    data: PageData,
    live: Mapping[LiveKey, ProbeResult],
    degraded_latency: Mapping[str, float],
) -> IndexView:
    """The ``/`` page's rows from the database's figures and the daemon's last results."""
    latest: dict[LiveKey, ProbeResult | None] = dict(data.latest)
    for key, result in live.items():
        latest[key] = newer(latest.get(key), result)
    chat_keys = {(t, m) for (t, p, m) in latest if p == "chat"} | set(data.history)
    names = {t for t, _ in chat_keys} | {t for (t, p, _m) in latest if p == "models"}
    targets = []
    for name in sorted(names):
        models = [
            ModelView(
                target=name,
                model=model,
                verdict=verdict(last, degraded_latency.get(name)),
                last=last,
                history=data.history.get((name, model)),
            )
            for (t, model) in chat_keys
            if t == name
            for last in [latest.get((name, "chat", model))]
        ]
        models.sort(key=lambda m: (RANK[m.verdict.state], m.model))
        listing = latest.get((name, "models", ""))
        targets.append(
            TargetView(
                name=name,
                listing=verdict(listing),
                listing_result=listing,
                catalog_size=data.catalog_size.get(name),
                models=tuple(models),
            )
        )
    count = sum(len(t.models) for t in targets)
    banner, banner_state = _banner([m for t in targets for m in t.models])
    return IndexView(
        data.now, tuple(targets), banner, banner_state, count > FULL_BAR_MAX_MODELS, count
    )


def _banner(models: list[ModelView]) -> tuple[str, State]:
    """``"all 12 models up"``, or the worst states first: ``"2 down: gw/a, gw/b; 1 degraded"``."""
    if not models:
        return "no models probed yet", State.UNKNOWN
    by_state: dict[State, list[ModelView]] = {}
    for m in models:
        by_state.setdefault(m.verdict.state, []).append(m)
    if set(by_state) == {State.UP}:
        return f"all {len(models)} models up", State.UP
    parts = []
    for state in sorted(by_state, key=RANK.__getitem__):
        group = by_state[state]
        if state is State.UP:
            parts.append(f"{len(group)} up")
            continue
        names = ", ".join(job_name(m.target, m.model) for m in group[:5])
        more = f" and {len(group) - 5} more" if len(group) > 5 else ""
        parts.append(f"{len(group)} {state.value}: {names}{more}")
    worst = min(by_state, key=RANK.__getitem__)
    return "; ".join(parts), worst
