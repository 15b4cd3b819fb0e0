"""The fault matrix against a running daemon: every gateway failure gets its outcome.

One ``nexomon run`` subprocess probes four targets at once:

* ``gw``: a raw-socket gateway where every model has its own fault (hang,
  reset, drip, 50 MB bodies, malformed JSON, HTML, missing usage, an error
  object in a 200, 401, 429 with both retry-after forms, 500/502/503) next
  to a healthy control model;
* ``refused``: a port nothing listens on;
* ``nxdomain``: ``nonexistent.invalid`` (RFC 6761: never resolves);
* ``tls``: https against a self-signed certificate.

Each outcome is checked in ``/metrics`` (``nexomon_probes_total``) and in the
database rows, and afterwards the daemon must still be healthy and probing.
The 50 MB bodies are listed only after a baseline RSS is taken, so the
memory check compares the daemon with itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gwfixtures import (
    RawServer,
    closed_port,
    drip,
    reply,
    reset_mid_body,
    self_signed_fixture,  # noqa: F401 - the session fixture ``self_signed``
)
from rel_helpers import (
    DEADLINE_S,
    DaemonProcess,
    assert_still_probing,
    completion,
    db_rows,
    extra_target,
    gateway,
    huge_chunked,
    huge_declared,
    listing_body,
    metric,
    proc_status_kib,
    retry_after_date,
    scrape,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(240)

FIFTY_MB = 50 * 1024 * 1024
# A daemon that buffered a 50 MB body would grow by at least that much;
# half of it leaves room for ordinary allocator noise.
RSS_GROWTH_LIMIT_KIB = 25 * 1024

CHAT_FAULTS = {
    "ok": reply(200, completion("ok")),
    "hang": reply(200, completion("hang"), delay=3600),
    "reset": reset_mid_body(),
    "trickle": drip(b'{"choices": []}' * 20, 1.0),
    "malformed": reply(200, b'{"choices": [{"message": '),
    "html": reply(200, "<html><body>maintenance</body></html>", content_type="text/html"),
    "no-usage": reply(200, completion("no-usage", usage=False)),
    "error-200": reply(200, {"error": {"message": "upstream exploded", "type": "server_error"}}),
    "unauthorized": reply(401, {"error": {"message": "invalid api key"}}),
    "limited-seconds": reply(
        429, {"error": {"message": "slow down"}}, headers={"retry-after": "1"}
    ),
    "limited-date": retry_after_date(3),
    "s500": reply(500, {"error": {"message": "internal"}}),
    "s502": reply(502, "<html>bad gateway</html>", content_type="text/html"),
    "s503": reply(503, {"error": {"message": "overloaded"}}),
}
HUGE_FAULTS = {"huge-declared": huge_declared(FIFTY_MB), "huge-chunked": huge_chunked(FIFTY_MB)}


@dataclass(frozen=True)
class Case:
    target: str
    probe: str
    model: str
    outcome: str
    http_status: int | None = None  # checked when set
    error_part: str | None = None  # a phrase the stored error must contain


CASES = [
    Case("gw", "chat", "ok", "ok", 200),
    Case("gw", "chat", "hang", "timeout", error_part="timed out after 2s"),
    Case("gw", "chat", "reset", "connection_error", error_part="reset"),
    Case("gw", "chat", "trickle", "timeout", error_part="while reading the body"),
    Case("gw", "chat", "huge-declared", "invalid_response", error_part="larger than"),
    Case("gw", "chat", "huge-chunked", "invalid_response", error_part="larger than"),
    Case("gw", "chat", "malformed", "invalid_response", 200, "malformed JSON"),
    Case("gw", "chat", "html", "invalid_response", 200, "not JSON"),
    Case("gw", "chat", "no-usage", "invalid_response", 200, "usage"),
    Case("gw", "chat", "error-200", "invalid_response", 200, "upstream exploded"),
    Case("gw", "chat", "unauthorized", "auth_error", 401, "invalid api key"),
    Case("gw", "chat", "limited-seconds", "rate_limited", 429, "slow down"),
    Case("gw", "chat", "limited-date", "rate_limited", 429, "slow down"),
    Case("gw", "chat", "s500", "server_error", 500),
    Case("gw", "chat", "s502", "server_error", 502),
    Case("gw", "chat", "s503", "server_error", 503, "overloaded"),
    Case("refused", "models", "", "connection_error", error_part="connection refused"),
    Case("refused", "chat", "ok", "connection_error", error_part="connection refused"),
    Case("nxdomain", "models", "", "connection_error", error_part="DNS lookup failed"),
    Case("tls", "models", "", "connection_error", error_part="TLS"),
]


@dataclass
class Matrix:
    daemon: DaemonProcess
    db: Path
    metrics: str
    rss_baseline_kib: int
    rss_peak_kib: int


def _probes(text: str, case: Case, outcome: str) -> float:
    value = metric(
        text,
        "nexomon_probes_total",
        target=case.target,
        probe=case.probe,
        model=case.model,
        outcome=outcome,
    )
    return value or 0.0


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, self_signed) -> Iterator[Matrix]:
    directory = tmp_path_factory.mktemp("fault-matrix")
    show_huge = threading.Event()

    def listing() -> bytes:
        ids = list(CHAT_FAULTS) + (list(HUGE_FAULTS) if show_huge.is_set() else [])
        return listing_body(ids)

    gw = RawServer(responder=gateway(listing, {**CHAT_FAULTS, **HUGE_FAULTS}))
    tls = RawServer(responder=gateway(listing, CHAT_FAULTS), tls=self_signed.server_context())
    servers = [gw, tls]
    extra = (
        extra_target("refused", f"http://127.0.0.1:{closed_port()}/v1", models=["ok"])
        + extra_target("nxdomain", "http://nonexistent.invalid/v1", models=["ok"])
        + extra_target("tls", tls.base_url, models=["ok"])
    )
    config = write_config(
        directory, gw.base_url, target={"name": "gw", "timeout": "2s"}, extra=extra
    )
    daemon = DaemonProcess(config)
    try:
        daemon.start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        first_round = [c for c in CASES if c.model not in HUGE_FAULTS]
        wait_until(
            lambda: all(_probes(scrape(daemon), c, c.outcome) >= 1 for c in first_round),
            "every fault's outcome in /metrics",
            daemon,
        )
        baseline = proc_status_kib(pid, "VmRSS")
        show_huge.set()
        huge = [c for c in CASES if c.model in HUGE_FAULTS]
        # Two probes each, so a leak would show as growth, not as one stray buffer.
        wait_until(
            lambda: all(_probes(scrape(daemon), c, c.outcome) >= 2 for c in huge),
            "the 50 MB bodies to be refused twice",
            daemon,
            timeout=DEADLINE_S,
        )
        peak = proc_status_kib(pid, "VmHWM")
        yield Matrix(daemon, directory / "nexomon.db", scrape(daemon), baseline, peak)
    finally:
        code = daemon.stop()
        for server in servers:
            server.close()
    assert code == 0, daemon.log()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.target}-{c.probe}-{c.model or 'list'}")
def test_fault_gets_its_outcome_in_metrics_and_rows(matrix: Matrix, case: Case) -> None:
    assert _probes(matrix.metrics, case, case.outcome) >= 1
    rows = db_rows(
        matrix.db,
        "SELECT outcome, http_status, error FROM probe_results"
        " WHERE target = ? AND probe = ? AND model = ?",
        case.target,
        case.probe,
        case.model,
    )
    sent = [r for r in rows if r[0] != "skipped"]
    assert sent, f"no stored row for {case}"
    # Every attempt of this model got the same outcome: no flapping classification.
    assert {r[0] for r in sent} == {case.outcome}, sent
    if case.http_status is not None:
        assert {r[1] for r in sent} == {case.http_status}, sent
    if case.outcome != "ok":
        assert all(r[2] for r in sent), f"a failed probe without an error: {sent}"
    if case.error_part is not None:
        assert all(case.error_part in r[2] for r in sent), sent


def test_retry_after_seconds_and_date_are_both_read(matrix: Matrix) -> None:
    seconds = db_rows(
        matrix.db,
        "SELECT DISTINCT retry_after_s FROM probe_results WHERE model = 'limited-seconds'"
        " AND outcome = 'rate_limited'",
    )
    assert seconds == [(1.0,)]
    dated = db_rows(
        matrix.db,
        "SELECT retry_after_s FROM probe_results WHERE model = 'limited-date'"
        " AND outcome = 'rate_limited'",
    )
    # An HTTP-date has one-second resolution: 3 s ahead reads as 2 to 3 s.
    assert dated and all(1.0 <= r[0] <= 3.0 for r in dated), dated
    gauge = metric(
        matrix.metrics, "nexomon_ratelimit_retry_after_seconds", target="gw", model="limited-date"
    )
    assert gauge is not None and 1.0 <= gauge <= 3.0
    # The hold is honoured: an attempt inside the date's window is skipped, not sent.
    wait_until(
        lambda: metric(
            scrape(matrix.daemon),
            "nexomon_probes_total",
            target="gw",
            probe="chat",
            model="limited-date",
            outcome="skipped",
        ),
        "a chat probe skipped while waiting out the HTTP-date",
        matrix.daemon,
    )


def test_fifty_megabyte_bodies_do_not_grow_the_daemon(matrix: Matrix) -> None:
    growth = matrix.rss_peak_kib - matrix.rss_baseline_kib
    print(f"RSS baseline {matrix.rss_baseline_kib} KiB, peak {matrix.rss_peak_kib} KiB")
    assert growth < RSS_GROWTH_LIMIT_KIB, f"peak RSS grew by {growth} KiB"


def test_daemon_is_healthy_and_probing_after_the_matrix(matrix: Matrix) -> None:
    assert metric(matrix.metrics, "nexomon_probe_errors_total") == 0.0
    assert_still_probing(
        matrix.daemon,
        [("gw", "models", ""), ("gw", "chat", "ok"), ("gw", "chat", "hang"), ("tls", "models", "")],
    )
    assert "Traceback" not in matrix.daemon.log()
