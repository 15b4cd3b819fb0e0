"""Small SVG pictures: the latency sparkline and shields-style badges.

Every text that goes into an SVG here is escaped (``xml_escape``): model
ids are gateway input. The badge follows shields.io's flat style (label on
grey, message on a colour, 20 px high, Verdana 11 px) so it sits beside
other badges in a README; its width comes from a per-character estimate of
Verdana's advance widths, not from a font file.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

# Verdana 11 px advance widths (approximate, px) by character class.
_NARROW = set("fijlrt.,:;!|'()[] ")
_WIDE = set("mwMW%@")
_UPPER_WIDTH = 7.6
_LOWER_WIDTH = 6.6

BADGE_COLOURS = {
    "up": "#2e7d32",
    "degraded": "#a15c00",
    "down": "#c62828",
    "refused": "#6a1b9a",
    "skipped": "#555555",
    "unknown": "#767676",
}


def xml_escape(text: str) -> str:
    """``text`` safe inside SVG/XML text and double-quoted attributes."""
    return escape(text, {'"': "&quot;", "'": "&#39;"})


def text_width(text: str) -> float:
    """Estimated width of ``text`` in Verdana 11 px."""
    width = 0.0
    for ch in text:
        if ch in _NARROW:
            width += 3.9
        elif ch in _WIDE:
            width += 10.2
        elif ch.isupper() or ch.isdigit():
            width += _UPPER_WIDTH
        else:
            width += _LOWER_WIDTH
    return width


def badge(label: str, message: str, colour: str) -> str:
    """A flat shields-style badge: ``label`` on grey, ``message`` on ``colour`` (#rrggbb)."""
    left = round(text_width(label) + 10)
    right = round(text_width(message) + 10)
    total = left + right
    label_x = left / 2
    message_x = left + right / 2
    title = xml_escape(f"{label}: {message}")
    label_text = xml_escape(label)
    message_text = xml_escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" '
        f'role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        '<linearGradient id="s" x2="0" y2="100%">'
        '<stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        '<g clip-path="url(#r)">'
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" '
        'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{label_x:g}" y="15" fill="#010101" fill-opacity=".3">{label_text}</text>'
        f'<text x="{label_x:g}" y="14">{label_text}</text>'
        f'<text x="{message_x:g}" y="15" fill="#010101" fill-opacity=".3">{message_text}</text>'
        f'<text x="{message_x:g}" y="14">{message_text}</text>'
        "</g></svg>"
    )


def uptime_colour(availability_pct: float | None) -> str:
    """The badge colour of an availability: green at 99.9 %, red below 95 %, grey unknown."""
    if availability_pct is None:
        return BADGE_COLOURS["unknown"]
    if availability_pct >= 99.9:
        return BADGE_COLOURS["up"]
    if availability_pct >= 99.0:
        return "#4a7c00"
    if availability_pct >= 95.0:
        return BADGE_COLOURS["degraded"]
    return BADGE_COLOURS["down"]


def sparkline(values: Sequence[float | None], width: int = 96, height: int = 20) -> str:
    """An inline SVG line of ``values`` (gaps where None), scaled to its own max.

    Empty (no value at all): a flat dashed line, so "no data" never looks
    like "fast". Hidden from screen readers: the figures beside it say it.
    Its size comes from the page's CSS (``svg.spark``, ``width`` x
    ``height`` px): a thousand rows of attributes would cost 40 KB.
    """
    # No viewBox: user units are the CSS pixels of ``svg.spark`` (96 x 20).
    head = "<svg class=spark aria-hidden=true>"
    present = [v for v in values if v is not None]
    if not present:
        mid = height / 2
        return f'{head}<path class="nodata" d="M0 {mid:g}H{width}"/></svg>'
    top = max(present) or 1.0
    step = width / max(1, len(values) - 1)
    parts: list[str] = []
    pen_down = False
    for i, value in enumerate(values):
        if value is None:
            pen_down = False
            continue
        x = i * step
        y = height - 1 - (height - 2) * value / top
        alone = not pen_down and (i + 1 == len(values) or values[i + 1] is None)
        # A point with no neighbour is a short dash, else a lone "M" draws nothing.
        parts.append(
            f"M{x - 1.5:.0f} {y:.0f}h3" if alone else f"{'L' if pen_down else 'M'}{x:.0f} {y:.0f}"
        )
        pen_down = not alone
    return f'{head}<path d="{"".join(parts)}"/></svg>'


PHASE_COLOURS = {
    "resolve": "#8e24aa",
    "connect": "#00897b",
    "tls": "#6d4c41",
    "processing": "#1e88e5",
    "transfer": "#f4511e",
}


def lines(series: dict[str, Sequence[float | None]], width: int = 720, height: int = 160) -> str:
    """A multi-line chart of equal-length series on one scale (max of all), with a y label."""
    present = [v for values in series.values() for v in values if v is not None]
    top = max(present, default=0.0) or 1.0
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height + 14}" width="100%" '
        f'role="img" aria-label="latency by phase, peak {top * 1000:.0f} ms">'
        f'<text x="2" y="10" font-size="10" fill="currentColor">{top * 1000:.0f} ms</text>'
        f'<path d="M0 {height + 13}H{width}" stroke="currentColor" stroke-opacity=".3"/>'
    )
    paths = []
    for name, values in series.items():
        step = width / max(1, len(values) - 1)
        parts: list[str] = []
        pen_down = False
        for i, value in enumerate(values):
            if value is None:
                pen_down = False
                continue
            y = 13 + height - height * value / top
            parts.append(f"{'L' if pen_down else 'M'}{i * step:.1f} {y:.1f}")
            pen_down = True
        colour = PHASE_COLOURS.get(name, "#777")
        paths.append(
            f'<path data-phase="{xml_escape(name)}" d="{"".join(parts)}" fill="none" '
            f'stroke="{colour}" stroke-width="1.5"/>'
        )
    return head + "".join(paths) + "</svg>"
