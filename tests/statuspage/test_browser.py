"""The pages in a real browser (headless Chromium): the DOM the database implies, screenshots.

Skipped, with the reason, when Chromium, chromedriver or Selenium is missing;
in CI (``CI`` set) that is a failure instead: ``.ci/run`` installs them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from testutil import IN_CI

from monitor.store.db import make_engine, upgrade
from monitor.untrusted import escape_controls
from tests.statuspage import kit
from tests.statuspage.browser import chromium, find_browser, luminance_stats

_missing = [
    name
    for name, ok in (
        ("chromium and chromedriver (apt-get install chromium chromium-driver)", find_browser()),
        ("selenium (pip install selenium)", importlib.util.find_spec("selenium")),
    )
    if not ok
]
if _missing and IN_CI:
    pytest.fail(f"the browser tests need {', '.join(_missing)} in CI", pytrace=False)
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"not installed: {', '.join(_missing)}")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("page") / "page.db"
    upgrade(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    kit.seed(engine)
    with kit.served(kit.app_for(engine)) as url:
        yield url
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def _js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def test_every_model_shows_the_state_the_database_implies(base: str, browser: Any) -> None:
    browser.get(base + "/")
    rows = _js(
        browser,
        """return [...document.querySelectorAll('ul.models>li')].map(li => [
            li.querySelector('a').textContent,
            [...li.classList].find(c => c.startsWith('s-')).slice(2),
            li.querySelector('b').textContent,
            getComputedStyle(li.querySelector('b'), '::before').content,
            li.querySelectorAll('.bar i').length])""",
    )
    shown = {escape_controls(name): state for name, state in kit.EXPECTED_STATE.items()}
    assert {name: state for name, state, *_ in rows} == shown
    for name, state, words, icon, cells in rows:
        assert words.startswith(state), name  # the state in words, not colour alone
        assert icon not in ("none", "normal", ""), name  # and an icon
        assert cells == 90, name  # 7 models: one cell per day
    assert [state for _, state, *_ in rows[:4]] == ["down", "degraded", "refused", "skipped"]
    banner = browser.find_element("id", "banner").text
    assert "1 down: nexorouter/epsilon" in banner


def test_a_hostile_model_id_is_text(base: str, browser: Any) -> None:
    browser.get(base + "/")
    assert _js(browser, "return document.scripts.length") == 1  # the filter box's own
    assert _js(browser, "return document.querySelectorAll('img').length") == 0
    names = _js(browser, "return [...document.querySelectorAll('ul.models>li a')].map(a => a.text)")
    assert escape_controls(kit.HOSTILE) in names  # the newline shown as \\n, one line
    browser.get(f"{base}/targets/nexorouter/models/{quote(kit.HOSTILE, safe='')}")
    heading = browser.find_element("tag name", "h1").text
    assert heading == f"nexorouter/{escape_controls(kit.HOSTILE)}"
    assert _js(browser, "return document.scripts.length") == 0
    browser.get(base + "/incidents")
    error = _js(
        browser,
        "return [...document.querySelectorAll('li.incident .error')].map(e => e.textContent)",
    )
    assert escape_controls(kit.HOSTILE_ERROR) in error
    assert _js(browser, "return document.querySelectorAll('li.incident img').length") == 0


def test_the_uptime_bar_has_a_cell_per_day_coloured_by_availability(
    base: str, browser: Any
) -> None:
    browser.get(base + "/targets/nexorouter/models/alpha")
    cells = _js(
        browser,
        """return [...document.querySelectorAll('#uptime-bar i')].map(i => [
            i.className, i.title, getComputedStyle(i).backgroundColor])""",
    )
    assert len(cells) == 90
    colours = {}
    for back, css in kit.KNOWN_DAYS.items():
        cls, title, colour = cells[89 - back]
        assert cls == css, (back, title)
        day = (kit.TODAY.date().toordinal() - back, title[:10])
        assert title.startswith(kit.TODAY.date().fromordinal(day[0]).isoformat())
        colours[css] = tuple(int(x) for x in colour[colour.index("(") + 1 : -1].split(",")[:3])
    r, g, b = colours["a-none"]
    assert max(r, g, b) - min(r, g, b) < 10  # no data is grey, never green
    r, g, b = colours["a-100"]
    assert g > r + 40 and g > b + 40  # a full day is green
    r, g, b = colours["a-low"]
    assert r > g + 60  # a bad day is red
    assert "50.00 % available, 24 probes, 12 down" in cells[89 - 10][1]


def test_the_incident_list_shows_the_scripted_outage(base: str, browser: Any) -> None:
    browser.get(base + "/incidents")
    beta = browser.find_element("css selector", "li.incident[data-model='beta']")
    assert beta.get_attribute("data-start") == "2026-11-20T10:02:00+00:00"
    assert beta.get_attribute("data-end") == "2026-11-20T10:17:00+00:00"
    assert beta.find_element("class name", "duration").text == "15 min"
    assert "server_error: upstream exploded" in beta.text
    assert "from 2026-11-20 10:02 to 2026-11-20 10:17" in beta.text
    epsilon = browser.find_element("css selector", "li.incident[data-model='epsilon']")
    assert "ongoing" in epsilon.text
    removed = browser.find_element("css selector", "li.catalog[data-change='removed']")
    assert "old-model removed" in removed.text


def test_the_badges_render(base: str, browser: Any) -> None:
    for path, words in (
        ("/badge/nexorouter/epsilon/status.svg", ["epsilon", "down"]),
        ("/badge/nexorouter/gamma/status.svg", ["gamma", "refused (auth)"]),
        ("/badge/nexorouter/alpha/uptime.svg?window=30d", ["uptime 30d", "98.24 %"]),
    ):
        browser.get(base + path)
        texts = _js(
            browser, "return [...document.querySelectorAll('text')].map(t => t.textContent)"
        )
        assert texts[1::2] == words, path


def test_the_filter_box_hides_other_models(base: str, browser: Any) -> None:
    browser.get(base + "/")
    browser.find_element("id", "filter").send_keys("alp")
    visible = _js(
        browser,
        "return [...document.querySelectorAll('ul.models>li')].filter(li => !li.hidden)"
        ".map(li => li.querySelector('a').text)",
    )
    assert visible == ["alpha"]


def _screenshot(browser: Any, path: Path) -> tuple[int, int, float, float]:
    png = browser.get_screenshot_as_png()
    path.write_bytes(png)
    return luminance_stats(png)


def test_375_px_wide_and_dark_mode_screenshots(base: str, browser: Any, tmp_path: Path) -> None:
    try:
        browser.set_window_size(375, 812)
        browser.get(base + "/")
        width = _js(browser, "return window.innerWidth")
        assert _js(browser, "return document.documentElement.scrollWidth") <= width  # no sideways
        w, _, light_mean, light_sd = _screenshot(browser, tmp_path / "narrow.png")
        assert w == width
        assert light_sd > 10 and light_mean > 150  # not blank, light background
        browser.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
        )
        browser.get(base + "/")
        background = _js(browser, "return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(18, 18, 18)"
        _, _, dark_mean, dark_sd = _screenshot(browser, tmp_path / "dark.png")
        assert dark_sd > 10 and dark_mean < 90  # not blank, dark background
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        browser.set_window_size(1280, 900)
