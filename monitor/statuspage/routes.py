"""The status page's Starlette routes, for the daemon to put in its app.

``status_routes(...)`` returns ``/``, ``/incidents``, ``/incidents.atom``,
``/targets/{target}/models/{model}`` and the two badges
``/badge/{target}/{model}/uptime.svg?window=30d`` and ``.../status.svg``.
Model ids may hold any character (``/`` and newlines included): links
percent-encode them and the routes match them whole.

Access (``access`` for the pages, ``badge_access`` for the badges, each
``"public"``, ``"token"`` or ``"off"``): ``token`` asks for the given token
as ``Authorization: Bearer TOKEN`` or as the password of HTTP Basic (any
user name), so a browser prompts for it; 401 otherwise. ``off`` leaves the
routes out, except ``/``, which then is the plain list of the daemon's
routes. Database reads run in Starlette's thread pool; a database that
fails makes ``/`` show the live results only (with a note), never a 500.
HTML is gzip-compressed for clients that accept it. Badges carry
``Cache-Control`` (60 s; ``private`` behind a token) and an ``ETag``
(``If-None-Match`` gets a 304).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from monitor.results import ProbeResult
from monitor.statuspage import atom, incidents, modelpage, queries, render, svg, views
from monitor.statuspage.state import verdict
from monitor.untrusted import escape_controls

log = logging.getLogger("nexomon.statuspage")

ACCESS_MODES = ("public", "token", "off")
BADGE_WINDOWS = {"1d": 1, "7d": 7, "30d": 30, "90d": 90}
BADGE_MAX_AGE_S = 60
GZIP_MIN_BYTES = 1400  # one packet: not worth compressing below
GZIP_LEVEL = 6
BADGE_LABEL_MAX = 40  # characters of the model id on a status badge

LINKS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>nexomon</title></head>
<body><h1>nexomon</h1><ul>
<li><a href="/metrics">/metrics</a> Prometheus metrics</li>
<li><a href="/healthz">/healthz</a> liveness</li>
<li><a href="/readyz">/readyz</a> readiness</li>
<li><a href="/api/v1/status">/api/v1/status</a> last results, 24 h uptime and p95</li>
</ul></body></html>
"""


class _AnyConvertor(Convertor[str]):
    """Like ``path``, but newlines too: a model id is whatever the gateway listed."""

    regex = "(?s:.+)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("nexomon_any", _AnyConvertor())

Handler = Callable[[Request], Awaitable[Response]]


def _token_ok(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(given.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = decoded.partition(":")[2]
    elif scheme != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _guard(mode: str, token: str | None, handler: Handler) -> Handler:
    if mode == "public":
        return handler

    async def guarded(request: Request) -> Response:
        if token is None or not _token_ok(request, token):
            return PlainTextResponse(
                "unauthorized\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="nexomon status", charset="UTF-8"'},
            )
        return await handler(request)

    return guarded


def status_routes(
    *,
    engine: Callable[[], Engine | None],
    live: Callable[[], Mapping[tuple[str, str, str], ProbeResult]],
    location: str,
    access: str,
    token: str | None,
    badge_access: str | None = None,
    degraded_latency: Mapping[str, float] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    reader: queries.PageReader | None = None,
) -> list[Route]:
    """The routes of the status page (see the module docstring).

    ``engine``: the store's engine, or None while it is not open; ``live``:
    the daemon's last result per (target, probe, model); ``badge_access``
    defaults to ``access``; ``degraded_latency``: target -> seconds (a target
    absent: no degraded state); ``reader``: the ``PageReader`` to use, so the
    caller can prime it (``reader.read(conn, location, now)``) right after
    each rollup refresh and no visitor pays the cold read (about 0.8 s at
    1,000 models). Raises ValueError for an unknown mode or a
    ``token`` mode without a token.
    """
    badge_access = badge_access or access
    for mode in (access, badge_access):
        if mode not in ACCESS_MODES:
            raise ValueError(f"status page access must be one of {ACCESS_MODES}, not {mode!r}")
        if mode == "token" and not token:
            raise ValueError("status page access 'token' needs a token")
    thresholds = dict(degraded_latency or {})
    reader = reader or queries.PageReader()

    def read_index() -> views.IndexView:
        moment = now()
        db = engine()
        data, note = queries.PageData(moment, moment.date(), {}, {}, {}), ""
        if db is None:
            note = "database not open yet: live results only"
        else:
            try:
                with db.connect() as conn:
                    data = reader.read(conn, location, moment)
            except Exception as exc:  # the page must still show the live state
                log.warning("status page: database read failed: %s", type(exc).__name__)
                note = f"database unavailable ({type(exc).__name__}): live results only"
        view = views.build_index(data, live(), thresholds)
        if note:
            view = views.with_note(view, note)
        return view

    async def index(request: Request) -> Response:
        view = await run_in_threadpool(read_index)
        return _html(request, render.index_page(view, location=location))

    def _with_db(read: Callable[[Any], Any]) -> Any:
        db = engine()
        if db is None:
            raise LookupError("database not open")
        with db.connect() as conn:
            return read(conn)

    async def incidents_html(request: Request) -> Response:
        moment = now()
        timeline = await run_in_threadpool(
            _with_db, lambda c: incidents.timeline(c, location, moment)
        )
        return _html(request, render.incidents_page(timeline, location=location, now=moment))

    async def incidents_atom(request: Request) -> Response:
        moment = now()
        timeline = await run_in_threadpool(
            _with_db, lambda c: incidents.timeline(c, location, moment)
        )
        base = str(request.base_url).rstrip("/")
        body = atom.feed(timeline, location=location, base_url=base, now=moment)
        return Response(body, media_type=atom.MEDIA_TYPE)

    def read_one(target: str, model: str, moment: datetime) -> views.ModelView:
        history, last = _with_db(lambda c: queries.read_one(c, location, moment, target, model))
        last = views.newer(last, live().get((target, "chat", model)))
        return views.ModelView(target, model, verdict(last, thresholds.get(target)), last, history)

    async def model_html(request: Request) -> Response:
        target, model = request.path_params["target"], request.path_params["model"]
        moment = now()
        view = await run_in_threadpool(read_one, target, model, moment)
        if view.history is None and view.last is None:
            return PlainTextResponse("no such model\n", status_code=404)
        detail = await run_in_threadpool(
            _with_db, lambda c: modelpage.read_model(c, location, target, model, moment)
        )
        base = str(request.base_url).rstrip("/")
        html = render.model_page(view, detail, location=location, now=moment, base_url=base)
        return _html(request, html)

    async def badge_status(request: Request) -> Response:
        target, model = request.path_params["target"], request.path_params["model"]
        view = await run_in_threadpool(read_one, target, model, now())
        state = view.verdict.state.value
        shown = escape_controls(model)
        label = shown if len(shown) <= BADGE_LABEL_MAX else shown[: BADGE_LABEL_MAX - 1] + "…"
        body = svg.badge(label, view.verdict.label, svg.BADGE_COLOURS[state])
        return _svg(request, body, badge_access)

    async def badge_uptime(request: Request) -> Response:
        target, model = request.path_params["target"], request.path_params["model"]
        window = request.query_params.get("window", "30d")
        days = BADGE_WINDOWS.get(window)
        if days is None:
            return PlainTextResponse(
                f"window: one of {', '.join(BADGE_WINDOWS)}\n", status_code=400
            )
        view = await run_in_threadpool(read_one, target, model, now())
        pct = None
        if view.history is not None:
            recent = view.history.days[-days:]
            ok = sum(d.ok for d in recent)
            counted = ok + sum(d.down for d in recent)
            pct = None if counted == 0 else 100.0 * ok / counted
        body = svg.badge(f"uptime {window}", views.percent(pct), svg.uptime_colour(pct))
        return _svg(request, body, badge_access)

    async def links(request: Request) -> Response:
        return HTMLResponse(LINKS_PAGE)

    if access == "off":
        routes = [Route("/", links)]
    else:
        page = lambda h: _guard(access, token, h)  # noqa: E731
        routes = [
            Route("/", page(index)),
            Route("/incidents", page(incidents_html)),
            Route("/incidents.atom", page(incidents_atom)),
            Route("/targets/{target}/models/{model:nexomon_any}", page(model_html)),
        ]
    if badge_access != "off":
        badge = lambda h: _guard(badge_access, token, h)  # noqa: E731
        routes += [
            Route("/badge/{target}/{model:nexomon_any}/uptime.svg", badge(badge_uptime)),
            Route("/badge/{target}/{model:nexomon_any}/status.svg", badge(badge_status)),
        ]
    return routes


def _html(request: Request, text: str) -> Response:
    """HTML, gzip-compressed when the client takes it (a 1,000-model page: ~10x smaller)."""
    body = text.encode()
    if len(body) < GZIP_MIN_BYTES or "gzip" not in request.headers.get("accept-encoding", ""):
        return HTMLResponse(body, headers={"Vary": "Accept-Encoding"})
    headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    return HTMLResponse(gzip.compress(body, GZIP_LEVEL), headers=headers)


def _svg(request: Request, body: str, mode: str) -> Response:
    data = body.encode()
    etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
    scope = "private" if mode == "token" else "public"
    headers = {"Cache-Control": f"{scope}, max-age={BADGE_MAX_AGE_S}", "ETag": etag}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/svg+xml; charset=utf-8", headers=headers)
