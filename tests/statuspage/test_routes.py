"""The routes over a real socket: access modes, badges and caching, escaping, the feed, size."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import quote
from xml.etree import ElementTree as ET

import httpx
import pytest
from sqlalchemy import Engine

from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.statuspage.routes import status_routes
from monitor.store.db import make_engine, upgrade
from tests.statuspage import kit

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def sqlite_seeded(tmp_path) -> Engine:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'page.db'}"
    upgrade(url)
    engine = make_engine(url)
    kit.seed(engine)
    return engine


def test_pages_answer_on_both_backends(seeded: Engine) -> None:
    with kit.served(kit.app_for(seeded)) as base:
        for path in ("/", "/incidents", "/targets/nexorouter/models/alpha"):
            answer = httpx.get(base + path)
            assert answer.status_code == 200, path
            assert answer.headers["content-type"].startswith("text/html")
        assert "nexorouter/epsilon" in httpx.get(base + "/").text


def test_a_hostile_model_id_is_text_everywhere(sqlite_seeded: Engine) -> None:
    encoded = quote(kit.HOSTILE, safe="")
    with kit.served(kit.app_for(sqlite_seeded)) as base:
        pages = [httpx.get(base + p).text for p in ("/", f"/targets/nexorouter/models/{encoded}")]
        svg = httpx.get(f"{base}/badge/nexorouter/{encoded}/status.svg").text
    for text in [*pages, svg]:
        assert "<script>alert" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert f'href="/targets/nexorouter/models/{encoded}"' in pages[0]
    ET.fromstring(svg)  # still well-formed XML


def test_badges_are_cacheable_and_say_the_state(sqlite_seeded: Engine) -> None:
    with kit.served(kit.app_for(sqlite_seeded)) as base:
        status = httpx.get(base + "/badge/nexorouter/epsilon/status.svg")
        assert status.status_code == 200
        assert status.headers["content-type"].startswith("image/svg+xml")
        assert status.headers["cache-control"] == "public, max-age=60"
        texts = [
            t.text for t in ET.fromstring(status.text).iter("{http://www.w3.org/2000/svg}text")
        ]
        assert texts == ["epsilon", "epsilon", "down", "down"]
        again = httpx.get(
            base + "/badge/nexorouter/epsilon/status.svg",
            headers={"If-None-Match": status.headers["etag"]},
        )
        assert again.status_code == 304 and again.content == b""
        uptime = httpx.get(base + "/badge/nexorouter/alpha/uptime.svg?window=7d")
        assert "uptime 7d" in uptime.text and "100 %" in uptime.text
        month = httpx.get(base + "/badge/nexorouter/alpha/uptime.svg?window=30d")
        # 30 days: day 10 lost 12 of 24, the rest ok (day 20 had no rows).
        assert "98.24 %" in month.text  # 684 ok of 696 counted
        assert httpx.get(base + "/badge/nexorouter/alpha/uptime.svg?window=2y").status_code == 400
        unknown = httpx.get(base + "/badge/nexorouter/nope/status.svg")
        assert "unknown" in unknown.text


def test_token_mode_asks_browsers_for_the_token(sqlite_seeded: Engine) -> None:
    app = kit.app_for(sqlite_seeded, access="token", token="s3cret", badge_access="public")
    basic = base64.b64encode(b"anyone:s3cret").decode()
    with kit.served(app) as base:
        refused = httpx.get(base + "/")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic ")
        assert httpx.get(base + "/incidents.atom").status_code == 401
        assert httpx.get(base + "/", headers={"Authorization": f"Basic {basic}"}).is_success
        assert httpx.get(base + "/", headers={"Authorization": "Bearer s3cret"}).is_success
        assert httpx.get(base + "/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        # badges public while the page is not
        assert httpx.get(base + "/badge/nexorouter/alpha/status.svg").status_code == 200


def test_off_keeps_only_the_link_list(sqlite_seeded: Engine) -> None:
    app = kit.app_for(sqlite_seeded, access="off", badge_access="off")
    with kit.served(app) as base:
        index = httpx.get(base + "/")
        assert index.status_code == 200 and 'href="/metrics"' in index.text
        assert httpx.get(base + "/incidents").status_code == 404
        assert httpx.get(base + "/badge/nexorouter/alpha/status.svg").status_code == 404


def test_bad_modes_are_refused() -> None:
    with pytest.raises(ValueError, match="needs a token"):
        status_routes(engine=lambda: None, live=dict, location="x", access="token", token=None)
    with pytest.raises(ValueError, match="one of"):
        status_routes(engine=lambda: None, live=dict, location="x", access="open", token=None)


def test_without_a_database_the_page_shows_live_results() -> None:
    live = {(kit.TARGET, "chat", "alpha"): kit._r("alpha", kit.NOW, Outcome.TIMEOUT)}
    app = kit.app_for(None, live=lambda: live)
    with kit.served(app) as base:
        page = httpx.get(base + "/")
    assert page.status_code == 200
    assert "database not open yet" in page.text and "<li class=s-down>" in page.text


def test_the_feed_lists_the_outage(sqlite_seeded: Engine) -> None:
    with kit.served(kit.app_for(sqlite_seeded)) as base:
        answer = httpx.get(base + "/incidents.atom")
    assert answer.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(answer.content)
    titles = [e.findtext(f"{ATOM}title") for e in feed.iter(f"{ATOM}entry")]
    assert "nexorouter/beta down (server_error)" in titles
    beta = next(e for e in feed.iter(f"{ATOM}entry") if "beta" in e.findtext(f"{ATOM}title"))
    assert "(15 min)" in beta.findtext(f"{ATOM}summary")
    hostile = [t for t in titles if "script" in t]
    assert hostile and all("\\n" in t and "\n" not in t for t in hostile)


def _fleet(models: int, days: int) -> list[ProbeResult]:
    """Probes every 6 h; one model in ten had three bad days, one in a hundred is down now."""
    rows = []
    for m in range(models):
        bad_days = {3, 9, 15} if m % 10 == 0 else set()
        for h in range(0, 24 * days, 6):
            at = kit.NOW - timedelta(hours=h)
            down = (h // 24 in bad_days and h % 24 == 0) or (h == 0 and m % 100 == 0)
            rows.append(kit._r(f"model-{m:04d}", at, Outcome.SERVER_ERROR if down else Outcome.OK))
    return rows


def test_a_thousand_models_stay_under_500_kb(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'big.db'}"
    upgrade(url)
    engine = make_engine(url)
    kit.seed(engine, _fleet(1000, 20))
    with kit.served(kit.app_for(engine)) as base, httpx.Client(timeout=60) as client:
        plain = client.get(base + "/", headers={"Accept-Encoding": "identity"})
        packed = client.get(base + "/", headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == 200
    assert plain.text.count("<li class=s-") == 1000
    assert "<li class=s-down>" in plain.text
    assert len(plain.content) < 500_000, len(plain.content)
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.text == plain.text
    assert int(packed.headers["content-length"]) < len(plain.content) / 5
