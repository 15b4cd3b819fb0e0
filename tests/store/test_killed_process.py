"""A process killed with SIGKILL mid-stream leaves an SQLite database that opens and reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from monitor.cli.report import build_report, render
from monitor.store.db import make_engine, upgrade
from monitor.store.models import ProbeResultRow

CHILD = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from pathlib import Path
    from monitor.store.db import make_engine, upgrade
    from monitor.store.writer import ResultWriter
    from tests.store.factory import chat

    url, spool = sys.argv[1], Path(sys.argv[2])
    upgrade(url)
    writer = ResultWriter(make_engine(url), spool_dir=spool, batch_size=10, flush_interval=0.01)
    writer.start()
    i = 0
    while True:
        writer.submit(chat(i, started_at=datetime.now(UTC), request_id=f"r{i}"))
        i += 1
        if writer.written_total >= 200 and i % 50 == 0:
            print("written", flush=True)
        time.sleep(0.0005)
    """
)


def test_sigkill_leaves_a_database_that_opens_and_reports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nexomon.db'}"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(tmp_path / "spool")],
        stdout=subprocess.PIPE,
        env=env,
        cwd=root,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"written"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        with Session(engine) as session:
            count = session.scalar(select(func.count()).select_from(ProbeResultRow))
            assert count is not None and count >= 200
            since = datetime.now(UTC) - timedelta(hours=1)
            rows = build_report(session, since=since, by="model")
    finally:
        engine.dispose()
    assert rows[0].probes == count
    assert "nexorouter" in render(rows, "table")
