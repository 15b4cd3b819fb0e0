"""Every PromQL query of a Grafana dashboard, with Grafana's variables filled in.

Contract:

- ``panel_targets(dashboard, variables)`` walks every panel (rows and the
  panels nested in collapsed rows included), skips hidden targets and targets
  without ``expr``, and returns one :class:`PanelQuery` per target in
  dashboard order.
- ``panel_queries(dashboard, variables)`` is the same as ``(title, expr)``
  pairs; a panel with several targets titles each ``"Title (refId)"``.
- ``dashboard`` is the parsed JSON (a mapping) or its text.
- ``variables`` maps a variable name (no ``$``) to a ``str`` (inserted as is)
  or a list of ``str`` (a multi-value: formatted as Grafana's Prometheus
  datasource does, regex-escaped and joined as ``(a|b)``). Built-ins
  ``__interval``, ``__rate_interval`` and ``__range`` default to
  :data:`DEFAULT_BUILTINS`; a panel's ``interval`` (its minimum interval)
  raises ``$__interval`` and ``$__rate_interval`` to at least that value, as
  Grafana does. ``__interval_ms``, ``__range_s`` and ``__range_ms`` are
  derived.
- Supported syntaxes: ``$name``, ``${name}``, ``${name:format}`` and
  ``[[name]]`` with formats ``regex``, ``pipe``, ``csv``, ``raw``,
  ``singlequote``, ``doublequote``. A reference to a variable that is not
  given raises ``KeyError`` naming the panel, so a typo in a dashboard fails
  loudly instead of querying a literal ``$tagret``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VariableValue = str | Sequence[str]

DEFAULT_BUILTINS: Mapping[str, str] = {
    "__interval": "1m",
    "__rate_interval": "1m",
    "__range": "1h",
}

_REFERENCE = re.compile(
    r"\$\{(?P<braced>\w+)(?::(?P<format>\w+))?\}"
    r"|\[\[(?P<bracketed>\w+)(?::(?P<format2>\w+))?\]\]"
    r"|\$(?P<plain>\w+)"
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)$")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}
# Characters Grafana's Prometheus datasource escapes in regex-formatted values
# (prometheusSpecialRegexEscape). The value lands inside a double-quoted PromQL
# string, so the regex escape's backslash is itself escaped: "." becomes "\\.".
_REGEX_SPECIAL = re.compile(r"([$^*+?.()|{}\[\]])")


@dataclass(frozen=True)
class PanelQuery:
    """One query of one panel, variables substituted."""

    title: str
    ref_id: str
    expr: str
    instant: bool


def duration_seconds(text: str) -> float:
    """Seconds in a Grafana/Prometheus duration such as ``"5m"`` or ``"1d"``."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def regex_escape(value: str) -> str:
    """Escape a value for a PromQL ``=~"..."`` matcher the way Grafana does."""
    return _REGEX_SPECIAL.sub(r"\\\\\1", value.replace("\\", "\\\\\\\\"))


def format_value(value: VariableValue, fmt: str | None) -> str:
    """Render one variable's value in Grafana's ``${name:fmt}`` format."""
    if isinstance(value, str):
        values = [value]
        multi = False
    else:
        values = list(value)
        multi = True
    if fmt is None:
        if not multi:
            return values[0]
        fmt = "regex"
    if fmt == "regex":
        escaped = [regex_escape(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if fmt == "pipe":
        return "|".join(values)
    if fmt in ("csv", "raw"):
        return ",".join(values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    raise ValueError(f"unsupported variable format {fmt!r}")


def _panel_builtins(panel: Mapping[str, Any], given: Mapping[str, VariableValue]) -> dict[str, str]:
    """Built-in interval variables for one panel, honouring its minimum interval."""
    builtins = {name: str(given.get(name, default)) for name, default in DEFAULT_BUILTINS.items()}
    minimum = panel.get("interval")
    if minimum:
        floor = duration_seconds(minimum)
        for name in ("__interval", "__rate_interval"):
            if duration_seconds(builtins[name]) < floor:
                builtins[name] = minimum
    builtins["__interval_ms"] = str(int(duration_seconds(builtins["__interval"]) * 1000))
    range_s = duration_seconds(builtins["__range"])
    builtins["__range_s"] = str(int(range_s))
    builtins["__range_ms"] = str(int(range_s * 1000))
    return builtins


def substitute(expr: str, variables: Mapping[str, VariableValue], where: str = "query") -> str:
    """Replace every variable reference in ``expr``; ``KeyError`` on an unknown one."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bracketed") or match.group("plain")
        fmt = match.group("format") or match.group("format2")
        if name not in variables:
            raise KeyError(f"{where}: variable ${name} has no value")
        return format_value(variables[name], fmt)

    return _REFERENCE.sub(replace, expr)


def _walk_panels(panels: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        # A collapsed row keeps its panels inside itself.
        yield from _walk_panels(panel.get("panels", []))


def panel_targets(
    dashboard: Mapping[str, Any] | str, variables: Mapping[str, VariableValue]
) -> list[PanelQuery]:
    """Every visible PromQL target of ``dashboard``, variables substituted."""
    data = json.loads(dashboard) if isinstance(dashboard, str) else dashboard
    result: list[PanelQuery] = []
    for panel in _walk_panels(data.get("panels", [])):
        targets = [t for t in panel.get("targets", []) if t.get("expr") and not t.get("hide")]
        base = str(panel.get("title", f"panel {panel.get('id')}"))
        values: dict[str, VariableValue] = {**variables, **_panel_builtins(panel, variables)}
        for target in targets:
            ref_id = str(target.get("refId", ""))
            title = f"{base} ({ref_id})" if len(targets) > 1 else base
            result.append(
                PanelQuery(
                    title=title,
                    ref_id=ref_id,
                    expr=substitute(str(target["expr"]), values, where=title),
                    instant=bool(target.get("instant")) and not target.get("range", False),
                )
            )
    return result


def panel_queries(
    dashboard: Mapping[str, Any] | str, variables: Mapping[str, VariableValue]
) -> list[tuple[str, str]]:
    """``(panel title, expr)`` for every visible PromQL target of ``dashboard``."""
    return [(query.title, query.expr) for query in panel_targets(dashboard, variables)]
