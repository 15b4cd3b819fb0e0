"""Untrusted text from a hostile gateway: no key, no forged line, no lost row.

One daemon at ``--log-level debug``, two targets on one raw-socket gateway
(routed by path prefix):

* ``echo`` lists ids that hold the API key in seven encodings (raw,
  ``\\/``-escaped, ``\\u``-escaped in both cases of hex, percent-encoded three
  ways), ids with ``\\n`` and ANSI/OSC sequences (from the second listing on,
  so the catalog logs them as added), an id and an error message with a
  lone ``\\ud800``, and three invalid entries (empty id, integer id, null).
  Its chat models echo the key, in each encoding, in an error message,
  in the completion's ``model`` and in the ``x-request-id`` header;
* ``healthy`` is an ordinary gateway: its rows must keep growing.

The key contains ``/`` and ``+`` so that its escaped forms differ from it.
Then the key (and half of it) is searched for in every row of the SQLite
database and its raw files, ``/api/v1/status``, ``/metrics``, the daemon's
log, and ``nexomon probe``'s table and ``--json``; the text log and the
``probe`` and ``report`` tables must show control characters escaped.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from gwfixtures import RawRequest, RawServer, reply
from rel_helpers import (
    DaemonProcess,
    completion,
    db_rows,
    extra_target,
    metric,
    scrape,
    wait_until,
    write_config,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_helpers import Ran, nexomon

pytestmark = pytest.mark.timeout(240)

KEY = f"sk-abc/def+ghi-{uuid.uuid4().hex[:16]}"
REDACTED = "[REDACTED]"

# How a gateway may echo a string: the text as it stands in the raw JSON body
# (or the header), before any parsing.
FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "slash": lambda s: s.replace("/", "\\/"),  # PHP's json_encode default
    "ulower": lambda s: "".join(f"\\u{ord(c):04x}" for c in s),
    "uupper": lambda s: "".join(f"\\u{ord(c):04X}" for c in s),
    "pct": lambda s: quote(s, safe=""),
    "pctlower": lambda s: re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(s, safe="")),
    "pctpath": lambda s: quote(s),  # "/" left as it is, "+" encoded
}
KINDS = ("error", "model", "header")  # where a chat answer echoes the key
NEWLINE_ID = "evil\n2000-01-01 00:00:00,000 ERROR nexomon.forged: this line is forged"
ANSI_ID = "red\x1b[31mRED\x1b]0;pwned\x07"
INVALID_ENTRIES = [{"id": ""}, {"id": 42}, None]
ECHO_IDS = [*(f"{kind}-{form}" for kind in KINDS for form in FORMS), "surrogate-error"]


def needles() -> list[str]:
    """Every form the key may not appear in, and half of it (in case it was cut)."""
    found = {form(KEY) for form in FORMS.values()}
    return sorted(found | {KEY[: len(KEY) // 2]})


def assert_no_key(text: str, where: str) -> None:
    for needle in needles():
        assert needle not in text, f"the key leaked into {where} as {needle!r}:\n{text[-3000:]}"


def _json_with(obj: Any, **splices: str) -> bytes:
    """``obj`` as JSON with each ``@NAME@`` placeholder replaced by raw JSON source text."""
    text = json.dumps(obj)
    for name, source in splices.items():
        text = text.replace(f"@{name}@", source)
    return text.encode()


class HostileGateway:
    """The responder: /echo/v1 is hostile, /healthy/v1 is not."""

    def __init__(self) -> None:
        self.listings = 0
        self.chats: dict[str, int] = {}  # requests per echo-target model
        self._lock = threading.Lock()

    def listing(self, sent_key: str) -> bytes:
        with self._lock:
            self.listings += 1
            later = self.listings > 1
        data: list[Any] = [{"id": i, "object": "model"} for i in ECHO_IDS]
        data += [{"id": f"id-{form}-@ID_{form}@"} for form in FORMS]
        data += [{"id": "sur-@SURROGATE@-id"}, *INVALID_ENTRIES]
        if later:  # new ids after the baseline: the catalog logs them as added
            data += [{"id": NEWLINE_ID}, {"id": ANSI_ID}]
        splices = {f"ID_{name}": form(sent_key) for name, form in FORMS.items()}
        return _json_with({"object": "list", "data": data}, SURROGATE="\\ud800", **splices)

    def chat(self, model: str, sent_key: str) -> tuple[int, bytes, dict[str, str]]:
        kind, _, form = model.partition("-")
        echo = FORMS[form](sent_key) if form in FORMS else ""
        if kind == "error" and echo:
            body = {"error": {"message": "Incorrect API key provided: @ECHO@"}}
            return 500, _json_with(body, ECHO=echo), {}
        if kind == "model" and echo:
            return 200, _json_with(completion("@ECHO@"), ECHO=echo), {}
        if kind == "header" and echo:
            return 200, json.dumps(completion(model)).encode(), {"x-request-id": f"req-{echo}"}
        if model == "surrogate-error":
            body = {"error": {"message": "bad @S@ thing"}}
            return 500, _json_with(body, S="\\ud800"), {}
        if model in (NEWLINE_ID, ANSI_ID):
            body = {"error": {"message": "upstream \x1b[2J\nFAKE 2000-01-01 line"}}
            return 500, json.dumps(body).encode(), {}
        return 200, json.dumps(completion(model)).encode(), {}

    def __call__(self, req: RawRequest, conn: socket.socket, stop: threading.Event) -> bool:
        sent = req.headers.get("authorization", "").removeprefix("Bearer ")
        healthy = req.path.startswith("/healthy/")
        if req.method == "GET":
            body = json.dumps({"object": "list", "data": [{"id": "h1"}]}).encode()
            return reply(200, body if healthy else self.listing(sent))(req, conn, stop)
        model = req.json().get("model", "")
        if healthy:
            return reply(200, completion(model))(req, conn, stop)
        with self._lock:
            self.chats[model] = self.chats.get(model, 0) + 1
        status, body, headers = self.chat(model, sent)
        return reply(status, body, headers=headers)(req, conn, stop)


@dataclass
class Run:
    daemon: DaemonProcess
    db: Path
    config: Path
    server: RawServer
    healthy_rows: tuple[int, int]
    db_text: list[str]  # every text value of every table, while running
    db_files: dict[str, bytes]
    metrics: str
    status: str
    log: str
    table: Ran
    as_json: Ran
    report: Ran


def _count(db: Path, where: str, *params: Any) -> int:
    return int(db_rows(db, f"SELECT count(*) FROM probe_results WHERE {where}", *params)[0][0])


def _all_text(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [
            value
            for table in tables
            for row in conn.execute(f'SELECT * FROM "{table}"')  # our own table names
            for value in row
            if isinstance(value, str)
        ]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("untrusted")
    db = directory / "nexomon.db"
    gateway = HostileGateway()
    server = RawServer(responder=gateway)
    root = f"http://127.0.0.1:{server.port}"
    config = write_config(
        directory,
        f"{root}/echo/v1",
        key=KEY,
        target={"name": "echo", "timeout": "2s"},
        extra=extra_target("healthy", f"{root}/healthy/v1", models=["*"]),
    )
    daemon = DaemonProcess(config)
    try:
        daemon.start("--log-level", "debug")
        wanted = {*ECHO_IDS, NEWLINE_ID, ANSI_ID}
        wait_until(
            lambda: all(gateway.chats.get(m, 0) >= 2 for m in wanted),
            "two chat requests for every hostile model",
            daemon,
        )
        # The rest is checked by the tests, each for its own defect: a
        # fixture that failed here would hide which one came back.
        _best_effort(lambda: _stored(db, wanted))
        before = _count(db, "target = 'healthy'")
        _best_effort(lambda: _count(db, "target = 'healthy'") >= before + 4)
        after = _count(db, "target = 'healthy'")
        db_text = _all_text(db)
        db_files = {p.name: p.read_bytes() for p in directory.glob("nexomon.db*") if p.is_file()}
        metrics, status = scrape(daemon), daemon.get("/api/v1/status").text
        table = nexomon("probe", "-c", str(config))
        as_json = nexomon("probe", "-c", str(config), "--json")
    finally:
        code = daemon.stop()
        server.close()
    assert code == 0, daemon.log()
    report = nexomon("report", "-c", str(config), "--since", "1h")
    yield Run(
        daemon=daemon,
        db=db,
        config=config,
        server=server,
        healthy_rows=(before, after),
        db_text=db_text,
        db_files=db_files,
        metrics=metrics,
        status=status,
        log=daemon.log(),
        table=table,
        as_json=as_json,
        report=report,
    )


def _stored(db: Path, models: set[str]) -> bool:
    return models <= {m for (m,) in db_rows(db, "SELECT DISTINCT model FROM probe_results")}


def _best_effort(check: Callable[[], Any], timeout: float = 15.0) -> None:
    with contextlib.suppress(AssertionError):
        wait_until(check, "a condition a test checks", timeout=timeout)


def test_the_gateway_really_echoed_the_key_in_every_form(run: Run) -> None:
    # Without this the other tests could pass because nothing was echoed.
    assert any(r.headers.get("authorization") == f"Bearer {KEY}" for r in run.server.requests)
    errors = {m: e for m, e in db_rows(run.db, "SELECT model, error FROM probe_results")}
    for form in FORMS:
        assert errors[f"error-{form}"] == f"HTTP 500: Incorrect API key provided: {REDACTED}"
    request_ids = dict(db_rows(run.db, "SELECT model, request_id FROM probe_results"))
    models = dict(db_rows(run.db, "SELECT model, response_model FROM probe_results"))
    for form in FORMS:
        assert request_ids[f"header-{form}"] == f"req-{REDACTED}", form
        assert models[f"model-{form}"] == REDACTED, form
        assert _count(run.db, "model = ?", f"id-{form}-{REDACTED}") >= 1, form


def test_key_in_no_database_row_or_file(run: Run) -> None:
    assert_no_key("\n".join(run.db_text), "the database")
    for name, data in run.db_files.items():
        for needle in needles():
            assert needle.encode() not in data, (name, needle)


def test_key_not_in_status_or_metrics(run: Run) -> None:
    assert_no_key(run.status, "/api/v1/status")
    assert_no_key(json.dumps(json.loads(run.status), ensure_ascii=False), "the parsed status")
    assert_no_key(run.metrics, "/metrics")
    assert f'model="id-pct-{REDACTED}"' in run.metrics


def test_key_not_in_the_log(run: Run) -> None:
    assert_no_key(run.log, "the daemon log")
    line = "echo/chat/error-slash is DOWN (server_error: HTTP 500: Incorrect API key provided: "
    assert f"{line}{REDACTED})" in run.log


def test_key_not_in_probe_table_or_json(run: Run) -> None:
    for ran in (run.table, run.as_json):
        assert ran.rc == 1, ran  # the error-* models fail, as they should
        assert_no_key(ran.out + ran.err, f"nexomon {' '.join(ran.args)}")
    results = run.as_json.json()
    assert_no_key(json.dumps(results, ensure_ascii=False), "the parsed probe --json")
    by_model = {r["model"]: r for r in results}
    assert by_model["model-uupper"]["response_model"] == REDACTED
    assert by_model["header-pctpath"]["request_id"] == f"req-{REDACTED}"


def _escaped(text: str) -> str:
    return text.replace("\n", "\\n").replace("\x1b", "\\x1b").replace("\x07", "\\x07")


def _assert_no_raw_controls(text: str, where: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, f"raw ESC/BEL in {where}"
    forged = [line for line in text.splitlines() if line.startswith(("2000-01-01", "FAKE"))]
    assert not forged, f"forged lines in {where}: {forged}"


def test_text_log_escapes_control_characters(run: Run) -> None:
    _assert_no_raw_controls(run.log, "the daemon log")
    assert f"echo/chat/{_escaped(NEWLINE_ID)} is DOWN (server_error" in run.log
    assert f"echo/chat/{_escaped(ANSI_ID)} is DOWN (server_error" in run.log
    # The catalog's own lines (both ids are new in the second listing).
    assert f"target echo: model {_escaped(NEWLINE_ID)} added" in run.log
    assert f"target echo: model {_escaped(ANSI_ID)} added" in run.log


def test_probe_table_escapes_control_characters(run: Run) -> None:
    _assert_no_raw_controls(run.table.out, "the probe table")
    rows = run.table.out.splitlines()
    assert any(_escaped(NEWLINE_ID) in row for row in rows), run.table
    assert any(_escaped(ANSI_ID)[:40] in row for row in rows), run.table
    # JSON keeps the text itself; json.dumps escapes it.
    models = {r["model"] for r in run.as_json.json()}
    assert {NEWLINE_ID, ANSI_ID} <= models


def test_report_table_escapes_control_characters(run: Run) -> None:
    assert run.report.rc == 0, run.report
    _assert_no_raw_controls(run.report.out, "the report table")
    assert _escaped(NEWLINE_ID) in run.report.out
    assert _escaped(ANSI_ID) in run.report.out
    assert_no_key(run.report.out, "the report")


def test_listing_with_invalid_entries_stays_ok(run: Run) -> None:
    rows = db_rows(
        run.db, "SELECT outcome, error FROM probe_results WHERE target='echo' AND probe='models'"
    )
    first_invalid = len(ECHO_IDS) + len(FORMS) + 1  # after the surrogate id
    detail = f"3 invalid entries skipped (first: data[{first_invalid}].id is empty)"
    assert set(rows) == {("ok", detail)}
    listed = {r[0] for r in db_rows(run.db, "SELECT model FROM catalog_models WHERE target='echo'")}
    assert set(ECHO_IDS) <= listed and "sur-\ufffd-id" in listed
    assert not {"", "42", "None"} & listed
    value = metric(run.metrics, "nexomon_catalog_invalid_entries", target="echo")
    assert value in (None, 3.0)  # exported once the exporter wires the field


def test_lone_surrogates_are_stored_as_replacement_characters(run: Run) -> None:
    before, after = run.healthy_rows
    assert after > before, "the healthy target's rows stopped growing"
    error = db_rows(run.db, "SELECT error FROM probe_results WHERE model = 'surrogate-error'")[0][0]
    assert error == "HTTP 500: bad \ufffd thing"
    assert _count(run.db, "model = ?", "sur-\ufffd-id") >= 1
    assert "Traceback" not in run.log and "Exception in thread" not in run.log


# -- uncaught exceptions in threads ---------------------------------------------

_THREAD_PRELUDE = """
import os, threading
import monitor.daemon.probe_round as probe_round
_original = probe_round.run_round

async def run_round(*args, **kwargs):
    # After build_runner: the key is registered with the log scrubber.
    key = open(os.environ["NX_KEY_FILE"]).read().strip()
    def boom():
        raise RuntimeError("worker saw " + key + " and " + key.replace("/", "\\\\/") + "\\nFORGED")
    thread = threading.Thread(target=boom, name="nexomon-boom")
    thread.start()
    thread.join()
    return await _original(*args, **kwargs)

probe_round.run_round = run_round
"""


def test_thread_exception_is_one_scrubbed_json_line(run: Run) -> None:
    flags = ["--target", "healthy", "--log-format", "json"]
    ran = nexomon(
        "probe",
        "-c",
        str(run.config),
        *flags,
        prelude=_THREAD_PRELUDE,
        env={"NX_KEY_FILE": str(run.config.parent / "api.key")},
    )
    # The gateway is gone by now (the probe fails, rc 1): only the log matters here.
    assert ran.rc in (0, 1) and "unexpected error" not in ran.err, ran
    entries = [json.loads(line) for line in ran.err.splitlines() if line.strip()]
    crashes = [e for e in entries if e["msg"] == "uncaught exception in thread nexomon-boom"]
    assert len(crashes) == 1, ran
    assert crashes[0]["level"] == "error"
    assert f"RuntimeError: worker saw {REDACTED} and {REDACTED}\nFORGED" in crashes[0]["exc"]
    assert "Exception in thread" not in ran.err
    assert_no_key(ran.err, "the JSON log")
