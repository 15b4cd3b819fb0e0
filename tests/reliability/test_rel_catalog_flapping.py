"""A gateway alternating two lists of 50,000 ids: events, log lines and rows stay bounded.

On main this wrote 350,013 ``catalog_events`` rows and 300,692 log lines in
32 s and stalled the writer for a minute. Now, with ``max_models = 50``:

* each listing writes at most ``2 * max_models + 2`` events (50 named per
  direction, the rest one summary event each, its ``count`` the number of
  models it stands for);
* a model flapping in and out is logged once per hour; its later changes
  count in ``nexomon_catalog_flaps_total``;
* the daemon goes on probing and storing.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from gwfixtures import RawRequest, RawServer, reply
from rel_helpers import (
    DaemonProcess,
    assert_still_probing,
    completion,
    db_rows,
    listing_body,
    metric,
    scrape,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(240)

MAX_MODELS = 50
SIZE = 50_000
LISTINGS = 8
LISTS = [
    listing_body(f"a-{i:05d}" for i in range(SIZE)),
    listing_body(f"b-{i:05d}" for i in range(SIZE)),
]


@dataclass
class Flapping:
    daemon: DaemonProcess
    metrics: str
    events_per_listing: list[tuple[str, int, int]]  # (at, rows, models they stand for)
    listings: int


def _ok_listings(text: str) -> float:
    value = metric(
        text, "nexomon_probes_total", target="flap", probe="models", model="", outcome="ok"
    )
    return value or 0.0


@pytest.fixture(scope="module")
def flapping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flapping]:
    directory = tmp_path_factory.mktemp("catalog-flapping")
    turns = itertools.cycle(LISTS)
    lock = threading.Lock()
    chat = reply(200, completion("any"))

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        if req.method == "GET" and req.path.endswith("/models"):
            with lock:
                body = next(turns)
            return reply(200, body)(req, conn, stop)
        return chat(req, conn, stop)

    server = RawServer(responder=respond)
    config = write_config(
        directory,
        f"http://127.0.0.1:{server.port}/v1",
        target={
            "name": "flap",
            "max_models": MAX_MODELS,
            "max_body_bytes": 8 * 1024 * 1024,
            "models_interval": "2s",
            "chat_interval": "1h",
            "timeout": "2s",
        },
    )
    daemon = DaemonProcess(config)
    try:
        daemon.start()
        wait_until(
            lambda: _ok_listings(scrape(daemon)) >= LISTINGS,
            f"{LISTINGS} listings",
            daemon,
            timeout=180,
        )
        listings = int(_ok_listings(scrape(daemon)))
        # Every listing's events are committed with its row: wait for the writer.
        wait_until(
            lambda: (
                db_rows(
                    directory / "nexomon.db",
                    "SELECT COUNT(*) FROM probe_results WHERE target = 'flap' AND probe = 'models'",
                )[0][0]
                >= listings
            ),
            "the listings' rows",
            daemon,
        )
        per_listing = db_rows(
            directory / "nexomon.db",
            "SELECT at, COUNT(*), SUM(count) FROM catalog_events WHERE target = 'flap'"
            " GROUP BY at ORDER BY at",
        )
        yield Flapping(daemon, scrape(daemon), per_listing, listings)
    finally:
        code = daemon.stop()
        server.close()
    assert code == 0, daemon.log()


def test_each_listing_writes_at_most_two_limits_plus_two_events(flapping: Flapping) -> None:
    assert len(flapping.events_per_listing) >= LISTINGS - 2  # the first one is a baseline
    for at, rows, models in flapping.events_per_listing:
        assert rows <= 2 * MAX_MODELS + 2, (at, rows)
        assert models == 2 * SIZE, (at, models)  # the summaries stand for the rest


def test_flapping_models_are_logged_once_and_counted(flapping: Flapping) -> None:
    log = flapping.daemon.log()
    named = [line for line in log.splitlines() if "nexomon.catalog: target flap: model " in line]
    summaries = [line for line in log.splitlines() if "more models" in line]
    assert len(named) <= 2 * MAX_MODELS, named[:3]
    assert len(summaries) <= 2 * flapping.listings
    flaps = metric(flapping.metrics, "nexomon_catalog_flaps_total", target="flap")
    assert flaps and flaps >= 2 * MAX_MODELS
    changes = metric(
        flapping.metrics, "nexomon_catalog_changes_total", target="flap", change="added"
    )
    assert changes and changes >= SIZE * (flapping.listings - 2)


def test_the_daemon_keeps_probing_and_storing(flapping: Flapping) -> None:
    assert metric(flapping.metrics, "nexomon_probe_errors_total") == 0.0
    assert "Traceback" not in flapping.daemon.log()
    assert_still_probing(flapping.daemon, [("flap", "models", "")])
