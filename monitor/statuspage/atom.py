"""The Atom feed of ``/incidents`` (RFC 4287), built with ElementTree (which escapes).

One entry per incident or catalog change, newest first. An entry's ``id``
is a ``tag:`` URI made from what the item is (job and start time), so a feed
reader sees an ongoing incident that ends as the same entry, updated.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from xml.etree import ElementTree as ET

from monitor.statuspage.incidents import CatalogChange, Incident, Timeline
from monitor.statuspage.views import incident_title, job_name
from monitor.untrusted import escape_controls

ATOM = "http://www.w3.org/2005/Atom"
MEDIA_TYPE = "application/atom+xml; charset=utf-8"


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _tag(*parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]
    return f"tag:nexomon,2026:{digest}"


def feed(timeline: Timeline, *, location: str, base_url: str, now: datetime) -> bytes:
    """The feed document for ``timeline`` (``base_url``: the page's origin, no slash at the end)."""
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(root, f"{{{ATOM}}}title").text = f"nexomon incidents ({location})"
    ET.SubElement(root, f"{{{ATOM}}}id").text = _tag("feed", location)
    ET.SubElement(root, f"{{{ATOM}}}updated").text = _stamp(now)
    ET.SubElement(root, f"{{{ATOM}}}link", href=f"{base_url}/incidents.atom", rel="self")
    ET.SubElement(root, f"{{{ATOM}}}link", href=f"{base_url}/incidents")
    author = ET.SubElement(root, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = "nexomon"
    for item in timeline.items:
        entry = ET.SubElement(root, f"{{{ATOM}}}entry")
        if isinstance(item, Incident):
            ident = _tag(location, item.target, item.probe, item.model, _stamp(item.start))
            updated = item.end or item.start
            summary = _incident_summary(item, now)
        else:
            ident = _tag(location, item.target, item.model, item.change, _stamp(item.at))
            updated = item.at
            summary = _change_summary(item)
        ET.SubElement(entry, f"{{{ATOM}}}id").text = ident
        # Gateway text is escaped by ElementTree; controls are made visible too.
        ET.SubElement(entry, f"{{{ATOM}}}title").text = escape_controls(incident_title(item))
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = _stamp(updated)
        ET.SubElement(entry, f"{{{ATOM}}}published").text = _stamp(item.at)
        ET.SubElement(entry, f"{{{ATOM}}}link", href=f"{base_url}/incidents")
        ET.SubElement(entry, f"{{{ATOM}}}summary").text = escape_controls(summary)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _incident_summary(item: Incident, now: datetime) -> str:
    minutes = int(item.duration(now).total_seconds() // 60)
    span = f"from {_stamp(item.start)} to {_stamp(item.end)}" if item.end else (
        f"since {_stamp(item.start)}, ongoing"
    )  # fmt: skip
    text = f"{job_name(item.target, item.model)} {item.kind} {span} ({minutes} min), {item.outcome}"
    if item.error:
        text += f": {item.error}"
    if item.request_id:
        text += f" (request id {item.request_id})"
    return text


def _change_summary(item: CatalogChange) -> str:
    return incident_title(item) + f" at {_stamp(item.at)}"
