"""Make docs/status-page.png: a plausible 90-day history, rendered in headless Chromium.

    python -m tests.statuspage.screenshot [docs/status-page.png]

Twelve models probed hourly for 90 days (a few bad days, one model down
now, one slow, one over its quota); the page as a 1200 px wide browser
shows it. Not a test: the README's picture, made the way the tests drive
the browser.
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.store.db import make_engine, upgrade
from tests.statuspage import kit
from tests.statuspage.browser import chromium
from tests.store.factory import listing

MODELS = [
    "claude-sonnet-4.5", "deepseek-v4-flash", "gemini-2.5-flash", "gpt-5-mini", "gpt-5",
    "llama-4-maverick", "mistral-large-3", "qwen3-235b-a22b", "kimi-k2", "glm-4.6",
    "command-a", "grok-4-fast",
]  # fmt: skip
BAD_DAYS = {"gpt-5": {12, 13}, "kimi-k2": {40}, "glm-4.6": {3}, "mistral-large-3": {70}}


def history(rng: random.Random) -> list[ProbeResult]:
    rows: list[ProbeResult] = []
    for n, model in enumerate(MODELS):
        days = 90 if n < 9 else 30 + 10 * n % 40  # newer models have less history
        base = 0.18 + 0.05 * n
        for h in range(days * 24):
            at = kit.NOW - timedelta(hours=h, minutes=n)
            bad = (h // 24) in BAD_DAYS.get(model, set()) and h % 3 == 0
            down_now = model == "gpt-5" and h < 2
            wave = 1 + 0.3 * math.sin(h / 3.8)
            latency = base * wave * rng.lognormvariate(0, 0.15)
            if model == "llama-4-maverick" and h < 3:
                latency = 2.4
            outcome = Outcome.SERVER_ERROR if bad or down_now else Outcome.OK
            if model == "command-a" and h == 0:
                outcome = Outcome.RATE_LIMITED
            rows.append(
                kit._r(model, at, outcome, duration_s=latency if outcome is Outcome.OK else None)
            )
    listed = replace(listing(0, MODELS), started_at=kit.NOW - timedelta(minutes=1))
    return [*rows, listed]


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/status-page.png")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/demo.db"
        upgrade(url)
        engine = make_engine(url)
        kit.seed(engine, history(random.Random(7)))
        app = kit.app_for(engine, degraded_latency={kit.TARGET: 1.5})
        with kit.served(app) as base, chromium(1200, 800) as browser:
            browser.get(base + "/")
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.execute_cdp_cmd(  # the whole page in one viewport
                "Emulation.setDeviceMetricsOverride",
                {"width": 1200, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            out.write_bytes(browser.get_screenshot_as_png())
        engine.dispose()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
