"""The writer thread survives any row and any bug, and says when it cannot work.

Real SQLite files and a throwaway PostgreSQL; the rows that break things
are real ProbeResults (a lone surrogate, a NUL) that the driver refuses.
"""

from __future__ import annotations

import logging
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from monitor.catalog import CatalogEvent
from monitor.store.db import make_engine
from monitor.store.deadletter import DEADLETTER_NAME
from monitor.store.spool import SPOOL_NAME, read_items
from monitor.store.writer import ResultWriter
from tests.store.factory import chat, listing
from tests.store.test_writer import (
    Outage,
    new_writer,
    stored_request_ids,
    wait_until,
)

BAD_TEXT = {"sqlite": ["\ud800"], "postgresql": ["\ud800", "bad\x00nul"]}


@pytest.mark.parametrize("field", ["model", "error"])
def test_a_row_the_database_refuses_goes_to_the_dead_letter_file_and_writing_goes_on(
    engine: Engine, backend: str, tmp_path: Path, field: str
) -> None:
    spool_dir = tmp_path / "spool"
    writer = new_writer(engine, spool_dir)
    writer.start()
    bad_ids = []
    for i in range(5):
        writer.submit(chat(i, request_id=f"before-{i}"))
    for n, text in enumerate(BAD_TEXT[backend]):
        writer.submit(chat(100 + n, request_id=f"bad-{n}", **{field: text}))
        bad_ids.append(f"bad-{n}")
    wait_until(lambda: writer.refused_total == len(bad_ids))
    assert writer.alive and writer.health() is None
    for i in range(5):  # after the bad rows: still written, by the same thread
        writer.submit(chat(200 + i, request_id=f"after-{i}"))
    wait_until(lambda: writer.written_total == 10)
    assert writer.alive
    summary = writer.close()

    assert stored_request_ids(engine) == [f"before-{i}" for i in range(5)] + [
        f"after-{i}" for i in range(5)
    ]
    dead = spool_dir / DEADLETTER_NAME
    assert stat.S_IMODE(dead.stat().st_mode) == 0o600
    kept = list(read_items(dead))
    assert [r.request_id for _, r in kept] == bad_ids
    assert [getattr(r, field) for _, r in kept] == BAD_TEXT[backend]  # byte for byte
    assert dead.read_bytes().isascii()
    assert (summary.written, summary.refused, summary.left, summary.lost) == (
        10,
        len(bad_ids),
        0,
        0,
    )
    assert writer.dropped_total == 0 and writer.pending == 0


def test_refused_row_is_logged_once_with_its_result_id(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = new_writer(engine, tmp_path / "spool")
    writer.start()
    with caplog.at_level(logging.ERROR, logger="nexomon.store.writer"):
        writer.submit(chat(1, model="\ud800"))
        wait_until(lambda: writer.refused_total == 1)
        writer.close()
    ((rid, _),) = read_items(writer.dead_letter_path)
    lines = [r for r in caplog.records if r.name == "nexomon.store.writer"]
    assert len(lines) == 1 and rid in lines[0].getMessage()
    assert "UnicodeEncodeError" in lines[0].getMessage()


def test_an_unstorable_row_in_the_spool_does_not_block_it(engine: Engine, tmp_path: Path) -> None:
    """The spool is replayed first; a refused row in it must not stop the replay."""
    spool_dir = tmp_path / "spool"
    from monitor.store.spool import Spool

    Spool(spool_dir).append(
        [("a" * 32, chat(1, request_id="s1")), ("b" * 32, chat(2, model="\ud800")),
         ("c" * 32, chat(3, request_id="s3"))]
    )  # fmt: skip
    writer = new_writer(engine, spool_dir)
    writer.start()
    writer.submit(chat(4, request_id="live"))
    summary = writer.close()
    assert stored_request_ids(engine) == ["s1", "s3", "live"]
    assert summary.refused == 1 and not (spool_dir / SPOOL_NAME).exists()


class FlushFailsOnce(ResultWriter):
    """A writer whose first flush hits a bug (RuntimeError) in the writer thread."""

    failed = False

    def _flush(self) -> bool:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a bug in the writer loop")
        return super()._flush()


def test_an_unexpected_exception_in_the_loop_is_logged_counted_and_survived(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = FlushFailsOnce(engine, spool_dir=tmp_path / "spool", flush_interval=0.05)
    with caplog.at_level(logging.ERROR, logger="nexomon.store.writer"):
        writer.start()
        writer.submit(chat(1, request_id="r1"))
        wait_until(lambda: writer.written_total == 1)
    assert writer.alive and writer.failed and writer.loop_errors_total == 1
    writer.submit(chat(2, request_id="r2"))
    writer.close()
    assert stored_request_ids(engine) == ["r1", "r2"]
    bug = [r for r in caplog.records if r.exc_info and "a bug" in str(r.exc_info[1])]
    assert bug and bug[0].name == "nexomon.store.writer"


def test_an_unreadable_spool_does_not_stop_new_rows(engine: Engine, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    (spool_dir / SPOOL_NAME / "not-a-file").mkdir(parents=True)  # read() raises IsADirectoryError
    writer = new_writer(engine, spool_dir)
    writer.start()
    for i in range(3):
        writer.submit(chat(i, request_id=f"r{i}"))
    wait_until(lambda: writer.written_total == 3)
    assert writer.alive and writer.errors_total >= 1
    writer.close()
    assert stored_request_ids(engine) == ["r0", "r1", "r2"]


def test_callbacks_that_raise_do_not_stop_the_writer(engine: Engine, tmp_path: Path) -> None:
    calls = {"prepare": 0}

    def prepare() -> None:
        calls["prepare"] += 1
        if calls["prepare"] == 1:
            raise ValueError("not a database error")

    def on_events(events: list[CatalogEvent]) -> None:
        raise KeyError("callback bug")

    writer = new_writer(engine, tmp_path / "spool", prepare=prepare, on_catalog_events=on_events)
    writer.start()
    writer.submit(listing(1, ["a"]))
    writer.submit(listing(2, ["a", "b"]))  # an "added" event: the callback raises
    writer.submit(chat(3, request_id="r3"))
    wait_until(lambda: writer.written_total == 3)
    assert writer.alive and calls["prepare"] == 2
    writer.close()


def test_health_reports_a_stalled_writer(engine: Engine, tmp_path: Path) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow_callback(events: list[CatalogEvent]) -> None:
        entered.set()
        release.wait(30)  # a commit callback that hangs: no loop round meanwhile

    writer = new_writer(
        engine, tmp_path / "spool", on_catalog_events=slow_callback, stall_after=0.3
    )
    writer.start()
    writer.submit(listing(1, ["a"]))
    writer.submit(listing(2, ["a", "b"]))
    assert entered.wait(20)
    writer.submit(chat(3))  # pending while the thread is stuck
    wait_until(lambda: (writer.health() or "").startswith("store writer stalled"))
    assert "rows pending" in (writer.health() or "")
    release.set()
    wait_until(lambda: writer.health() is None)
    writer.close()
    assert writer.written_total == 3


def test_health_reports_a_dead_thread_and_close_still_flushes(
    engine: Engine, tmp_path: Path
) -> None:
    def stop_thread(events: list[CatalogEvent]) -> None:
        raise SystemExit  # not an Exception: the thread ends (logged, not excepthook)

    writer = new_writer(engine, tmp_path / "spool", on_catalog_events=stop_thread)
    writer.start()
    writer.submit(listing(1, ["a"]))
    writer.submit(listing(2, ["a", "b"]))
    wait_until(lambda: not writer.alive)
    assert writer.health() == "store writer thread is dead"
    writer.submit(chat(3, request_id="late"))
    writer.on_catalog_events = None
    summary = writer.close()  # flushes in the caller, since the thread is gone
    assert "late" in stored_request_ids(engine)
    assert summary.written == 3 and summary.clean
    assert writer.health() == "store writer stopped"


@pytest.fixture
def db_outage(db_url: str, backend: str, request: pytest.FixtureRequest) -> Iterator[Outage]:
    cluster = request.getfixturevalue("pg_cluster") if backend == "postgresql" else None
    down = Outage(db_url, cluster)
    yield down
    down.end()


def test_close_summary_says_what_was_written_left_and_refused(
    engine: Engine, tmp_path: Path, db_outage: Outage
) -> None:
    writer = new_writer(engine, tmp_path / "spool")
    writer.start()
    writer.submit(chat(1))
    writer.submit(chat(2, model="\ud800"))
    wait_until(lambda: writer.written_total == 1 and writer.refused_total == 1)
    db_outage.begin()
    for i in range(3, 6):
        writer.submit(chat(i))
    summary = writer.close()
    assert (summary.written, summary.left, summary.refused, summary.lost) == (1, 3, 1, 0)
    assert str(summary) == (
        "1 rows written, 3 left in the spool, 1 refused"
        f" (refused rows are kept in {writer.dead_letter_path})"
    )
    assert not summary.clean


def test_probe_record_stores_the_others_and_closes_normally(tmp_path: Path) -> None:
    """``nexomon probe --record``'s path: open_store, submit, Store.close (no exception)."""
    from harness import write_config

    from monitor.config import model as config_mod
    from monitor.store.startup import open_store, summary_level

    config = config_mod.load(write_config(tmp_path, "http://127.0.0.1:9/v1"))
    store = open_store(config)
    store.writer.submit(chat(1, request_id="ok-1"))
    store.writer.submit(chat(2, request_id="bad", model="\ud800"))
    store.writer.submit(chat(3, request_id="ok-3"))
    summary = store.close()
    assert (summary.written, summary.refused, summary.left) == (2, 1, 0)
    assert summary_level(summary) == logging.WARNING
    engine = make_engine(config.monitor.database_url)
    try:
        assert stored_request_ids(engine) == ["ok-1", "ok-3"]
    finally:
        engine.dispose()
