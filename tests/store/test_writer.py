"""ResultWriter: every result exactly once, through outages, restarts and the spool."""

from __future__ import annotations

import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from monitor.catalog import CatalogEvent
from monitor.outcome import Outcome
from monitor.results import Phases
from monitor.store import queries
from monitor.store.db import make_engine
from monitor.store.models import CatalogEventRow, ProbeResultRow
from monitor.store.spool import Spool
from monitor.store.writer import ResultWriter
from tests.store.factory import chat, listing
from tests.store.pgcluster import PgCluster


def new_writer(engine: Engine, spool_dir: Path, **kwargs: object) -> ResultWriter:
    options: dict[str, object] = {"batch_size": 20, "flush_interval": 0.05, "retry_max": 0.2}
    options.update(kwargs)
    return ResultWriter(engine, spool_dir=spool_dir, **options)  # type: ignore[arg-type]


def stored_request_ids(engine: Engine) -> list[str]:
    with Session(engine) as session:
        query = select(ProbeResultRow.request_id).order_by(ProbeResultRow.id)
        return [str(r) for r in session.scalars(query)]


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.mark.parametrize(
    "result",
    [
        chat(1),
        chat(
            2,
            outcome=Outcome.TIMEOUT,
            http_status=None,
            duration_s=30.0,
            prompt_tokens=None,
            completion_tokens=None,
            total_tokens=None,
            cost_usd=None,
            error="read timeout",
            phases=Phases(),
            finish_reason=None,
            response_model=None,
        ),
        chat(3, outcome=Outcome.SKIPPED, duration_s=None, retry_after_s=12.5, http_status=None),
        listing(4, ["a", "b"]),
    ],
    ids=["ok-chat", "timeout", "skipped", "models"],
)
def test_every_field_round_trips(engine: Engine, tmp_path: Path, result: object) -> None:
    writer = new_writer(engine, tmp_path / "spool")
    writer.start()
    writer.submit(result)  # type: ignore[arg-type]
    writer.close()
    with Session(engine) as session:
        rows = session.scalars(select(ProbeResultRow)).all()
        assert len(rows) == 1
        back = queries.row_to_result(rows[0])
        assert rows[0].success is (back.outcome is Outcome.OK)
    assert back == result.replace(model_ids=None)  # type: ignore[attr-defined]
    assert back.started_at.tzinfo is not None
    assert writer.written_total == 1 and writer.pending == 0 and writer.dropped_total == 0


def test_batches_from_several_threads_all_land(engine: Engine, tmp_path: Path) -> None:
    writer = new_writer(engine, tmp_path / "spool")
    writer.start()

    def produce(offset: int) -> None:
        for i in range(150):
            writer.submit(chat(offset + i, request_id=f"t{offset + i}"))

    threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    ids = stored_request_ids(engine)
    assert len(ids) == 600 and len(set(ids)) == 600
    assert writer.written_total == 600 and writer.pending == 0


class Outage:
    """Makes the database unreachable: stop PostgreSQL, or lock SQLite exclusively."""

    def __init__(self, url: str, cluster: PgCluster | None) -> None:
        self.url = url
        self.cluster = cluster
        self.lock: sqlite3.Connection | None = None

    def begin(self) -> None:
        if self.cluster is not None:
            self.cluster.stop("fast")
        else:
            self.lock = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
            self.lock.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self.cluster is not None:
            self.cluster.start()
        elif self.lock is not None:
            self.lock.execute("ROLLBACK")
            self.lock.close()
            self.lock = None


@pytest.fixture
def outage(db_url: str, backend: str, request: pytest.FixtureRequest) -> Iterator[Outage]:
    cluster = request.getfixturevalue("pg_cluster") if backend == "postgresql" else None
    down = Outage(db_url, cluster)
    yield down
    down.end()


def test_outage_loses_and_duplicates_nothing(
    engine: Engine, tmp_path: Path, outage: Outage
) -> None:
    writer = new_writer(engine, tmp_path / "spool")
    writer.start()
    for i in range(50):
        writer.submit(chat(i, request_id=f"r{i}"))
    wait_until(lambda: writer.written_total == 50)
    outage.begin()
    for i in range(50, 150):
        writer.submit(chat(i, request_id=f"r{i}"))
        time.sleep(0.002)
    wait_until(lambda: writer.database_down and Spool(tmp_path / "spool").exists())
    outage.end()
    for i in range(150, 200):
        writer.submit(chat(i, request_id=f"r{i}"))
    wait_until(lambda: writer.written_total == 200)
    writer.close()
    assert stored_request_ids(engine) == [f"r{i}" for i in range(200)]  # in order, once each
    assert writer.errors_total >= 1 and writer.dropped_total == 0 and writer.pending == 0
    assert not Spool(tmp_path / "spool").exists()


def test_spool_survives_a_writer_restart_while_the_database_is_down(
    engine: Engine, tmp_path: Path, outage: Outage
) -> None:
    spool_dir = tmp_path / "spool"
    outage.begin()
    first = new_writer(engine, spool_dir)
    first.start()
    for i in range(30):
        first.submit(chat(i, request_id=f"r{i}"))
    first.close()
    assert first.pending == 30 and first.written_total == 0
    second = new_writer(engine, spool_dir)
    second.start()
    assert second.pending == 30
    for i in range(30, 40):
        second.submit(chat(i, request_id=f"r{i}"))
    second.close()
    assert second.written_total == 0
    outage.end()
    third = new_writer(engine, spool_dir)
    third.start()
    third.close()
    assert stored_request_ids(engine) == [f"r{i}" for i in range(40)]
    assert third.written_total == 40 and third.pending == 0


def test_spool_replayed_after_a_commit_is_not_duplicated(engine: Engine, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    items = [(f"{i:032x}", chat(i, request_id=f"r{i}")) for i in range(10)]
    spool.append(items[:6])
    writer = new_writer(engine, spool.directory)
    writer.start()
    writer.close()
    spool.append(items)  # as if a crash came between the commit and the spool's removal
    writer = new_writer(engine, spool.directory)
    writer.start()
    writer.close()
    assert stored_request_ids(engine) == [f"r{i}" for i in range(10)]
    assert writer.written_total == 4


def test_spool_file_is_private(engine: Engine, tmp_path: Path, outage: Outage) -> None:
    outage.begin()
    writer = new_writer(engine, tmp_path / "spool")
    writer.start()
    writer.submit(chat(1))
    writer.close()
    mode = stat.S_IMODE((tmp_path / "spool" / "nexomon-spool.jsonl").stat().st_mode)
    assert mode == 0o600


def test_sqlite_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nexomon.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.commit()
    engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_full_buffer_drops_and_counts(engine: Engine, tmp_path: Path) -> None:
    writer = new_writer(engine, tmp_path / "spool", max_buffer=5)
    for i in range(8):  # not started: nothing drains the buffer
        writer.submit(chat(i))
    assert writer.dropped_total == 3 and writer.pending == 5
    writer.close()
    assert writer.written_total == 5


def test_catalog_events_only_on_real_changes_and_none_after_restart(
    engine: Engine, tmp_path: Path
) -> None:
    seen: list[CatalogEvent] = []
    script = [["a", "b"], ["a", "b"], ["a", "b", "c"], ["a", "c"], ["a", "c"]]
    writer = new_writer(engine, tmp_path / "spool", on_catalog_events=seen.extend)
    writer.start()
    for i, models in enumerate(script):
        writer.submit(listing(i, models))
    writer.close()
    writer = new_writer(engine, tmp_path / "spool", on_catalog_events=seen.extend)
    writer.start()  # a restart: the same list again is no change
    writer.submit(listing(10, ["a", "c"]))
    writer.submit(listing(11, ["a", "c", "b"]))
    writer.close()
    assert [(e.model, e.change) for e in seen] == [("c", "added"), ("b", "removed"), ("b", "added")]
    with Session(engine) as session:
        stored = session.scalars(select(func.count()).select_from(CatalogEventRow)).one()
        assert stored == 3
        assert queries.listed_models(session, "nexorouter") == {"a", "b", "c"}
