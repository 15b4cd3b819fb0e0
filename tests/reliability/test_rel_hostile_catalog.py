"""A hostile /models: 100,000 ids, ids of 10 KB, ids that are not strings.

One daemon, four targets on one raw-socket gateway (routed by path prefix):

* ``many``: 100,000 ids of about 20 characters (about 3 MB), with
  ``max_body_bytes`` raised to 8 MiB so the listing is parsed and the
  ``max_models`` bound is what gets exercised;
* ``capped``: the same listing under the default 1 MiB body cap: a clear
  ``invalid_response``, nothing parsed;
* ``long-ids``: 50 ids of 10 KB each;
* ``non-string``: ids that are numbers, null, objects and lists.

Contract checked: the daemon keeps running and probing, ``/metrics`` holds
at most ``max_models`` model series per target (and no label longer than
the exporter's limit), the overflow is counted and logged in one line per
target, and the daemon's memory does not grow from listing to listing.
"""

from __future__ import annotations

import json
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
    listing_body,
    metric,
    proc_status_kib,
    samples,
    scrape,
    wait_until,
    write_config,
)

from monitor.exporter.slots import MAX_LABEL_LENGTH

pytestmark = pytest.mark.timeout(240)

MAX_MODELS = 50
MANY = [f"model-{i:06d}-hostile" for i in range(100_000)]
LONG = [f"{i:03d}-" + "x" * 10_236 for i in range(50)]
NON_STRING = [123, None, {"nested": "id"}, ["list"], True]
# /metrics of this daemon is a few hundred series; one per listed id would be megabytes.
METRICS_LIMIT_BYTES = 256 * 1024
# Listing after listing must not accumulate: allow allocator noise, not a copy of the catalog.
RSS_GROWTH_LIMIT_KIB = 16 * 1024


@dataclass
class Hostile:
    daemon: DaemonProcess
    metrics: str
    rss_early_kib: int
    rss_late_kib: int


def _route(bodies: dict[str, bytes]):  # type: ignore[no-untyped-def]
    """Responder: ``/<target>/v1/models`` answers that target's listing."""
    chat = reply(200, completion("any"))

    def respond(req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        name = req.path.strip("/").split("/")[0]
        if req.method == "GET" and req.path.endswith("/models") and name in bodies:
            return reply(200, bodies[name])(req, conn, stop)
        return chat(req, conn, stop)

    return respond


def _models_runs(text: str, target: str) -> float:
    return sum(
        v
        for n, lb, v in samples(text)
        if n == "nexomon_probes_total" and lb.get("target") == target and lb["probe"] == "models"
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    directory = tmp_path_factory.mktemp("hostile-catalog")
    many = listing_body(MANY)
    bodies = {
        "many": many,
        "capped": many,
        "long-ids": listing_body(LONG),
        "non-string": listing_body(NON_STRING),
    }
    print(f"listing sizes: { {k: len(v) for k, v in bodies.items()} }")
    server = RawServer(responder=_route(bodies))
    root = f"http://127.0.0.1:{server.port}"
    # Chat jobs follow the catalog ("*"); a long chat interval keeps them from
    # firing during the test, the jobs themselves are what max_models bounds.
    common = {"chat_interval": "1h", "models_interval": "3s", "timeout": "3s"}

    def target(name: str, **keys: object) -> str:
        table = {"name": name, "base_url": f"{root}/{name}/v1", "api_key_file": "api.key"}
        table |= {"models": ["*"], "max_models": MAX_MODELS, **common, **keys}
        return "\n[[targets]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())

    extra = target("capped") + target("long-ids") + target("non-string")
    config = write_config(
        directory,
        f"{root}/many/v1",
        target={
            "name": "many",
            "max_models": MAX_MODELS,
            "max_body_bytes": 8 * 1024 * 1024,
            **common,
        },
        extra=extra,
    )
    daemon = DaemonProcess(config)
    try:
        daemon.start()
        assert daemon.proc is not None
        wait_until(
            lambda: _models_runs(scrape(daemon), "many") >= 3, "three listings of many", daemon
        )
        early = proc_status_kib(daemon.proc.pid, "VmRSS")
        done = _models_runs(scrape(daemon), "many")
        wait_until(
            lambda: _models_runs(scrape(daemon), "many") >= done + 5,
            "five more listings of many",
            daemon,
            timeout=120,
        )
        late = proc_status_kib(daemon.proc.pid, "VmRSS")
        yield Hostile(daemon, scrape(daemon), early, late)
    finally:
        code = daemon.stop()
        server.close()
    assert code == 0, daemon.log()


def _model_series(text: str, target: str) -> set[str]:
    return {
        lb["model"] for _, lb, _ in samples(text) if lb.get("target") == target and "model" in lb
    }


def test_hundred_thousand_ids_export_only_max_models(hostile: Hostile) -> None:
    text = hostile.metrics
    assert metric(text, "nexomon_catalog_size", target="many") == len(MANY)
    listed = [
        lb["model"]
        for n, lb, v in samples(text)
        if n == "nexomon_model_listed" and lb["target"] == "many"
    ]
    assert len(listed) == MAX_MODELS
    assert metric(text, "nexomon_models_over_limit", target="many") == len(MANY) - MAX_MODELS
    # Every model label of the target, across every metric, is within the cap.
    assert len(_model_series(text, "many") - {""}) <= MAX_MODELS
    assert metric(
        text, "nexomon_probes_total", target="many", probe="models", model="", outcome="ok"
    )


def test_metrics_stay_small(hostile: Hostile) -> None:
    size = len(hostile.metrics.encode())
    print(f"/metrics: {size} bytes, {len(samples(hostile.metrics))} samples")
    assert size < METRICS_LIMIT_BYTES


def test_default_body_cap_refuses_the_big_listing_clearly(hostile: Hostile) -> None:
    text = hostile.metrics
    refused = metric(
        text,
        "nexomon_probes_total",
        target="capped",
        probe="models",
        model="",
        outcome="invalid_response",
    )
    assert refused and refused >= 1
    assert not _model_series(text, "capped") - {""}
    assert "capped/models is DOWN (invalid_response: response body larger than 1048576 bytes)" in (
        hostile.daemon.log()
    )


def test_ten_kilobyte_ids_never_become_labels(hostile: Hostile) -> None:
    text = hostile.metrics
    assert metric(text, "nexomon_catalog_size", target="long-ids") == len(LONG)
    assert metric(text, "nexomon_models_over_limit", target="long-ids") == len(LONG)
    assert not _model_series(text, "long-ids") - {""}
    longest = max(len(v) for _, lb, _ in samples(text) for v in lb.values())
    assert longest <= MAX_LABEL_LENGTH


def test_non_string_ids_are_an_invalid_response(hostile: Hostile) -> None:
    text = hostile.metrics
    assert metric(
        text,
        "nexomon_probes_total",
        target="non-string",
        probe="models",
        model="",
        outcome="invalid_response",
    )
    assert "non-string/models is DOWN (invalid_response: unexpected shape: data[0].id is not a" in (
        hostile.daemon.log()
    )


@pytest.mark.parametrize("target", ["many", "long-ids"])
def test_overflow_is_logged_once_per_target(hostile: Hostile, target: str) -> None:
    lines = [
        line
        for line in hostile.daemon.log().splitlines()
        if f"target {target}: model ids beyond max_models" in line
    ]
    assert len(lines) == 1, lines
    assert len(lines[0]) < 400, "the log line must not carry the ids"


def test_memory_flat_across_listings(hostile: Hostile) -> None:
    growth = hostile.rss_late_kib - hostile.rss_early_kib
    print(f"RSS after 3 listings {hostile.rss_early_kib} KiB, after 8: {hostile.rss_late_kib} KiB")
    assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth} KiB over five listings"


def test_daemon_survives_and_keeps_probing(hostile: Hostile) -> None:
    assert metric(hostile.metrics, "nexomon_probe_errors_total") == 0.0
    assert "Traceback" not in hostile.daemon.log()
    assert_still_probing(
        hostile.daemon,
        [(t, "models", "") for t in ("many", "capped", "long-ids", "non-string")],
    )
