"""The Jinja2 environment and one function per page: data in, HTML text out.

Autoescape is on for every template: model ids, error lines and request ids
are gateway input and reach the page only as escaped text. The SVG helpers
return markup built from escaped text (``svg.xml_escape``), so they are the
only values marked safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape

from monitor.statuspage import svg, views
from monitor.statuspage.incidents import Timeline
from monitor.statuspage.modelpage import ModelDetail
from monitor.statuspage.queries import ModelHistory
from monitor.statuspage.state import ICONS
from monitor.untrusted import escape_controls

TEMPLATES = Path(__file__).resolve().parent / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
# Gateway text (model ids, error lines, request ids) through ``shown``: controls,
# newlines and bidi overrides become visible escapes, so a model id cannot break
# a line or reorder what sits next to it; autoescape then makes it HTML text.
_env.filters["shown"] = escape_controls


def _spark(values: Sequence[float | None]) -> Markup:
    return Markup(svg.sparkline(values))  # svg escapes its text


def _history_spark(history: ModelHistory | None) -> Markup:
    """A model's 24 h sparkline on ``/``.

    Kept on the model's rollup ``prefix`` and reused while its hourly
    medians are unchanged: between two renders a minute apart most models
    have no new answer (~15 µs a line, 15 ms a page at 1,000 models).
    """
    if history is None:
        return _spark([])
    memo = None if history.prefix is None else history.prefix.memo
    kept = None if memo is None else memo.get("spark")
    if isinstance(kept, tuple) and kept[0] == history.hour_p50:
        return cast(Markup, kept[1])
    line = _spark(history.hour_p50)
    if memo is not None:
        memo["spark"] = (history.hour_p50, line)
    return line


def _lines(series: dict[str, Sequence[float | None]]) -> Markup:
    return Markup(svg.lines(series))  # svg escapes its text


def _bar(history: ModelHistory | None, runs: bool) -> Markup:
    """The uptime bar's cells as HTML (in Python: a template loop cost ~40 ms per 1,000 rows)."""
    if history is None:
        return Markup("")
    parts = []
    for cell in views.bar_cells(history, runs):
        title = f' title="{escape(cell.title)}"' if cell.title else ""
        flex = f" style=flex:{cell.span}" if cell.span > 1 else ""
        parts.append(f"<i class={cell.css}{title}{flex}></i>")
    return Markup("".join(parts))  # css is ours, the title escaped


def _common(location: str, now: datetime, feed: bool) -> dict[str, Any]:
    return {
        "location": location,
        "now": now,
        "feed": feed,
        "icons": ICONS,
        "ago": lambda then: views.ago(now, then),
        "seconds": views.seconds,
        "percent": views.percent,
        "minutes": views.minutes,
        "job": views.job_name,
        "title": views.incident_title,
        "iso": lambda t: t.isoformat(),
        "hm": lambda t: t.strftime("%Y-%m-%d %H:%M"),
        "spark": _spark,
        "lines": _lines,
        "phase_colours": svg.PHASE_COLOURS,
    }


def index_page(view: views.IndexView, *, location: str, feed: bool = True) -> str:
    """``/``: the banner, one section per target, one row per model."""
    return _env.get_template("index.html.j2").render(
        view=view,
        bar=lambda history: _bar(history, view.runs),
        history_spark=_history_spark,
        **_common(location, view.now, feed),
    )


def incidents_page(timeline: Timeline, *, location: str, now: datetime) -> str:
    """``/incidents``: the timeline, newest first."""
    return _env.get_template("incidents.html.j2").render(
        timeline=timeline, **_common(location, now, True)
    )


def model_page(
    model: views.ModelView,
    detail: ModelDetail,
    *,
    location: str,
    now: datetime,
    base_url: str,
) -> str:
    """``/targets/{target}/models/{model}``: 90 days, 7 days by phase, usage, errors."""
    return _env.get_template("model.html.j2").render(
        m=model,
        detail=detail,
        base_url=base_url,
        badge_status=views.badge_path(model.target, model.model, "status"),
        badge_uptime=views.badge_path(model.target, model.model, "uptime"),
        cells=lambda history: views.bar_cells(history, False),
        **_common(location, now, True),
    )
