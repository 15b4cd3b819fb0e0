"""Make docs/status-page.png: the page ``nexomon run`` serves, probing the simulator.

    python docs/status_page_screenshot.py [docs/status-page.png] [--seconds 40]

Needs Debian's ``chromium`` and ``chromium-driver``. Steps: the simulator
with its ``demo`` scenario (fast, balanced, large, flaky, rate-limited,
slow and retiring models) on a free port; a SQLite database given 90 days
of history for those models (a probe every 20 minutes, latency around each
model's scenario median, errors at the flaky model's rate, a few outage
days) and rolled up; then ``nexomon run`` on that database, probing the
simulator every 8 s, for ``--seconds``; then headless Chromium, 1200 px
wide, takes the whole of ``/`` as the daemon serves it. Not a test: the
README's picture, made the way the browser tests drive Chromium.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import running_daemon, write_config  # noqa: E402

from monitor.outcome import Outcome  # noqa: E402
from monitor.results import ProbeResult  # noqa: E402
from monitor.simulator.server import RunningSimulator  # noqa: E402
from monitor.store import rollup  # noqa: E402
from monitor.store.batch import write_batch  # noqa: E402
from monitor.store.db import make_engine, upgrade  # noqa: E402
from tests.statuspage.browser import chromium, find_browser  # noqa: E402
from tests.store.factory import chat  # noqa: E402

SCENARIO = ROOT / "monitor" / "simulator" / "demo.toml"
LOCATION = "eu-west-1"
TARGET = "nexorouter"
STEP = timedelta(minutes=20)
# model -> (median latency s, error rate, outage days back, days of history)
MODELS = {
    "sim-fast": (0.08, 0.0, {31}, 90),
    "sim-balanced": (0.30, 0.001, {12, 13}, 90),
    "sim-large": (0.90, 0.002, {58}, 90),
    "sim-flaky": (0.25, 0.15, set(), 90),
    "sim-ratelimited": (0.10, 0.0, set(), 45),
    "sim-slow": (2.5, 0.003, {70}, 90),
    "sim-retiring": (0.15, 0.0, set(), 20),
}


def history(now: datetime, rng: random.Random) -> list[ProbeResult]:
    """Chat results of the days before the daemon started, one model after another."""
    rows = []
    for n, (model, (median, errors, outages, days)) in enumerate(MODELS.items()):
        at = now - timedelta(days=days) + n * timedelta(seconds=37)
        while at < now - STEP:
            back = (now - at).days
            failed = rng.random() < errors or (back in outages and rng.random() < 0.4)
            latency = median * rng.lognormvariate(0, 0.35)
            result = chat(0, started_at=at, location=LOCATION, target=TARGET, model=model)
            if failed:
                result = replace(
                    result, outcome=Outcome.SERVER_ERROR, http_status=502, duration_s=None,
                    error="HTTP 502: upstream connect error", prompt_tokens=None,
                    completion_tokens=None, total_tokens=None, cost_usd=None,
                )  # fmt: skip
            else:
                result = replace(result, duration_s=latency, response_model=model)
            rows.append(replace(result, request_id=f"req-{model}-{len(rows)}"))
            at += STEP
    return rows


def seed(url: str, now: datetime) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        rows = history(now, random.Random(19))
        with engine.begin() as conn:
            write_batch(conn, [(f"{i:032x}", r) for i, r in enumerate(rows)])
        rollup.refresh(engine, now)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(ROOT / "docs" / "status-page.png"))
    parser.add_argument("--seconds", type=float, default=40.0, help="probing before the shot")
    args = parser.parse_args(argv)
    if find_browser() is None:
        print("chromium and chromedriver are needed (apt install chromium chromium-driver)")
        return 2
    out = Path(args.out)
    with (
        tempfile.TemporaryDirectory(prefix="nexomon-shot-") as tmp,
        RunningSimulator(scenario_path=SCENARIO) as sim,
    ):
        url = f"sqlite:///{tmp}/nexomon.db"
        seed(url, datetime.now(UTC))
        config = write_config(
            Path(tmp),
            sim.base_url,
            database_url=url,
            monitor={"location": LOCATION, "status_page": "public"},
            target={"name": TARGET, "chat_interval": "8s", "models_interval": "10s"}
            | {"timeout": "8s", "degraded_latency": "2s", "models": list(MODELS)},
        )
        with running_daemon(config) as daemon:
            time.sleep(args.seconds)
            with chromium(1200, 800) as browser:
                browser.get(daemon.url + "/")
                height = browser.execute_script("return document.documentElement.scrollHeight")
                browser.execute_cdp_cmd(  # the whole page in one viewport
                    "Emulation.setDeviceMetricsOverride",
                    {"width": 1200, "height": height, "deviceScaleFactor": 1, "mobile": False},
                )
                out.write_bytes(browser.get_screenshot_as_png())
    print(f"wrote {out} ({out.stat().st_size // 1000} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
