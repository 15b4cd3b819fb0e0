"""The results journal: a result accepted by ``submit`` survives ``kill -9``, exactly once.

Real processes killed with SIGKILL, real SQLite and PostgreSQL databases;
the journal files are read and written as they are on disk.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult
from monitor.store.journal import (
    JOURNAL_FIELDS,
    LOCK_SUFFIX,
    PREFIX,
    SEGMENT_SUFFIX,
    decode_entry,
    encode_entry,
    read_entries,
)
from monitor.store.models import ProbeResultRow
from monitor.store.spool import encode_item, result_to_dict
from monitor.store.writer import ResultWriter
from tests.store.factory import chat

ROOT = Path(__file__).resolve().parents[2]

# Submits COUNT results to a writer that never flushes on its own (huge
# interval and batch), says so, and waits to be killed.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from monitor.store.db import make_engine
    from monitor.store.writer import ResultWriter
    from tests.store.factory import chat

    url, spool, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    writer = ResultWriter(
        make_engine(url), spool_dir=spool, batch_size=10**6, flush_interval=3600
    )
    writer.start()
    for i in range(count):
        writer.submit(chat(i, request_id=f"r{i}", model="\\ud800" if i == 7 else "m"))
    print("submitted", writer.written_total, flush=True)
    time.sleep(3600)
    """
)


def stored_request_ids(engine: Engine) -> list[str]:
    with Session(engine) as session:
        query = select(ProbeResultRow.request_id).order_by(ProbeResultRow.id)
        return [str(r) for r in session.scalars(query)]


def journal_files(spool_dir: Path) -> list[Path]:
    return sorted(spool_dir.glob(f"{PREFIX}*"))


def kill_after_submit(db_url: str, spool_dir: Path, count: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, str(spool_dir), str(count)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == [b"submitted", b"0"]  # nothing committed
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)


def test_kill_9_after_submit_loses_nothing(db_url: str, engine: Engine, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    kill_after_submit(db_url, spool_dir, 300)
    segments = [p for p in journal_files(spool_dir) if p.name.endswith(SEGMENT_SUFFIX)]
    assert segments and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in segments)

    writer = ResultWriter(engine, spool_dir=spool_dir, flush_interval=0.05)
    writer.start()
    summary = writer.close()
    expected = [f"r{i}" for i in range(300) if i != 7]
    assert stored_request_ids(engine) == expected  # in order, once each
    assert summary.written == 299 and summary.refused == 1  # the surrogate row: dead letter
    assert journal_files(spool_dir) == []  # the killed writer's journal is gone too


def test_a_replayed_journal_duplicates_nothing(engine: Engine, tmp_path: Path) -> None:
    """A crash after a commit but before the segment's removal replays committed rows."""
    spool_dir = tmp_path / "spool"
    items = [(f"{i:032x}", chat(i, request_id=f"r{i}")) for i in range(10)]
    first = ResultWriter(engine, spool_dir=spool_dir, flush_interval=0.05)
    first.start()
    for _, result in items[:6]:
        first.submit(result)
    first.close()
    # A stopped writer's journal holding r0..r5 (committed, same result_ids) and r6..r9.
    by_request = {r.request_id: r for _, r in items}
    committed = [encode_entry(rid, by_request[req]) for rid, req in _ids_of(engine)]
    owner = "ab" * 10
    segment = spool_dir / f"{PREFIX}{owner}-000001{SEGMENT_SUFFIX}"
    segment.write_bytes(b"".join(committed) + b"".join(encode_entry(*item) for item in items[6:]))
    (spool_dir / f"{PREFIX}{owner}{LOCK_SUFFIX}").touch()
    second = ResultWriter(engine, spool_dir=spool_dir, flush_interval=0.05)
    second.start()
    second.close()
    assert stored_request_ids(engine) == [f"r{i}" for i in range(10)]
    assert second.written_total == 4 and journal_files(spool_dir) == []


def _ids_of(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        rows = session.execute(select(ProbeResultRow.result_id, ProbeResultRow.request_id))
        return [(str(a), str(b)) for a, b in rows]


def test_a_live_writers_journal_is_left_alone(engine: Engine, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    live = ResultWriter(engine, spool_dir=spool_dir, batch_size=10**6, flush_interval=3600)
    live.start()
    for i in range(5):
        live.submit(chat(i, request_id=f"live-{i}"))
    before = journal_files(spool_dir)
    other = ResultWriter(engine, spool_dir=spool_dir, flush_interval=0.05)  # a `probe --record`
    other.start()
    other.submit(chat(10, request_id="other"))
    other.close()
    assert set(before) <= set(journal_files(spool_dir))
    assert stored_request_ids(engine) == ["other"]
    live.close()
    assert stored_request_ids(engine) == ["other"] + [f"live-{i}" for i in range(5)]
    assert journal_files(spool_dir) == []


def test_segments_rotate_and_go_once_committed(engine: Engine, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    writer = ResultWriter(engine, spool_dir=spool_dir, batch_size=5, flush_interval=0.05)
    writer.start()
    for i in range(50):
        writer.submit(chat(i, request_id=f"r{i}"))
    summary = writer.close()
    assert summary.written == 50 and summary.clean
    assert journal_files(spool_dir) == []


def test_without_the_journal_nothing_is_written_beside_the_spool(
    engine: Engine, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    writer = ResultWriter(engine, spool_dir=spool_dir, flush_interval=0.05, journal=False)
    writer.start()
    writer.submit(chat(1))
    writer.close()
    assert not spool_dir.exists() or journal_files(spool_dir) == []
    assert writer.written_total == 1 and writer.unjournaled_total == 0


def test_a_failed_journal_write_keeps_the_row_and_recovers(engine: Engine, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    writer = ResultWriter(engine, spool_dir=spool_dir, batch_size=10**6, flush_interval=3600)
    writer.start()
    keeper = writer._keeper
    assert keeper is not None and keeper.journal.current is not None
    # The segment's descriptor now refuses writes (EBADF), as a dying disk would.
    readonly = os.open(os.devnull, os.O_RDONLY)
    os.dup2(readonly, keeper.journal.current.fd)
    os.close(readonly)
    writer.submit(chat(1, request_id="unjournaled"))
    assert writer.unjournaled_total == 1 and not keeper.journaling
    writer.submit(chat(2, request_id="also-unjournaled"))
    assert writer.unjournaled_total == 2
    writer._seal()  # what the writer thread does at its next flush: a fresh segment
    assert keeper.journaling
    writer.submit(chat(3, request_id="journaled"))
    segment = keeper.journal.current
    assert [r.request_id for _, r in read_entries(segment.path)] == ["journaled"]
    writer.close()
    assert sorted(stored_request_ids(engine)) == ["also-unjournaled", "journaled", "unjournaled"]


# -- the line format -----------------------------------------------------------------

_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=20)  # surrogates too
_floats = st.none() | st.floats(allow_nan=True, allow_infinity=True)
_ints = st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def results(draw: st.DrawFn) -> ProbeResult:
    return ProbeResult(
        started_at=draw(
            st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1))
        ).replace(tzinfo=UTC),
        location=draw(_text),
        target=draw(_text),
        probe=draw(st.sampled_from(["chat", "models"])),
        model=draw(_text),
        outcome=draw(st.sampled_from(list(Outcome))),
        http_status=draw(_ints),
        duration_s=draw(_floats),
        phases=Phases(*(draw(_floats) for _ in range(5))),
        request_id=draw(st.none() | _text),
        error=draw(st.none() | _text),
        prompt_tokens=draw(_ints),
        completion_tokens=draw(_ints),
        total_tokens=draw(_ints),
        cost_usd=draw(st.none() | st.decimals(allow_nan=False, places=9)),
        ratelimit_limit=draw(_ints),
        ratelimit_remaining=draw(_ints),
        retry_after_s=draw(_floats),
        finish_reason=draw(st.none() | _text),
        response_model=draw(st.none() | _text),
        model_ids=draw(st.none() | st.lists(_text, max_size=5).map(tuple)),
        ratelimit_reset_s=draw(_floats),
        ratelimit_limit_tokens=draw(_ints),
        ratelimit_remaining_tokens=draw(_ints),
        ratelimit_reset_tokens_s=draw(_floats),
        substituted_by=draw(st.none() | _text),
    )


@settings(max_examples=300, deadline=None)
@given(result=results())
def test_a_journal_line_decodes_to_what_the_spool_keeps(result: ProbeResult) -> None:
    line = encode_entry("f" * 32, result)
    assert line.isascii() and line.endswith(b"\n") and line.count(b"\n") == 1
    rid, back = decode_entry(line)
    assert rid == "f" * 32
    # The spool's own line of both: every field it keeps, NaN included, byte for byte.
    assert encode_item(rid, back) == encode_item(rid, result)


def test_the_journal_carries_every_field_the_spool_keeps() -> None:
    carried = {"started_at", "cost_usd"} | {name.split(".")[0] for name in JOURNAL_FIELDS}
    assert carried == set(result_to_dict(chat(1)))


def test_a_torn_or_foreign_line_is_skipped(tmp_path: Path) -> None:
    segment = tmp_path / "segment.log"
    good = encode_entry("a" * 32, chat(1))
    segment.write_bytes(good + b'[9,"x"]\n' + good[:-20])  # another format, then a torn line
    assert [rid for rid, _ in read_entries(segment)] == ["a" * 32]


def test_a_format_1_line_of_an_older_release_is_still_replayed() -> None:
    # Format 1 (before migration 0004) ended at model_ids: the new fields read as None.
    result = chat(1).replace(ratelimit_limit=60, response_model="m")
    line = encode_entry("b" * 32, result)
    form, rid, at, cost, values = json.loads(line)
    assert form == 2
    old = json.dumps([1, rid, at, cost, values[:-5]]).encode() + b"\n"
    back = decode_entry(old)[1]
    assert (back.ratelimit_limit, back.response_model) == (60, "m")
    assert (back.ratelimit_reset_s, back.ratelimit_limit_tokens, back.substituted_by) == (
        None,
        None,
        None,
    )
    assert encode_item(rid, back) == encode_item(rid, result)
