"""``nexomon report --by day``: cost per day and the month-to-date total, across two months.

Hand-made rows (exact Decimal costs) go straight into a migrated SQLite
database; the report is read from raw rows and, the second time, from the
hourly/daily rollup, and through the real ``nexomon report`` command.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from spend_helpers import run_cli, write_config
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.cli.report import build_report, month_start, render
from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.store import rollup
from monitor.store.batch import write_batch
from monitor.store.db import make_engine, upgrade

D = Decimal
SINCE = datetime(2025, 10, 29, tzinfo=UTC)
NOW = datetime(2025, 11, 3, 12, 0, tzinfo=UTC)


def row(at: datetime, cost: str | None, *, target: str = "nx", model: str = "m") -> ProbeResult:
    """An ok chat row that spent 10+2 tokens; ``cost`` None = unpriced."""
    return ProbeResult(
        started_at=at,
        location="eu",
        target=target,
        probe="chat",
        model=model,
        outcome=Outcome.OK,
        http_status=200,
        duration_s=0.1,
        prompt_tokens=10,
        completion_tokens=2,
        total_tokens=12,
        cost_usd=None if cost is None else D(cost),
    )


def at(day: str, hhmm: str = "12:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}:00+00:00")


DATASET = [
    # before --since, but in October: counts in October's month-to-date only
    row(at("2025-10-05"), "1.000"),
    # one minute before the window (--since 2025-10-29): October's month-to-date too
    row(at("2025-10-28", "23:59"), "0.500"),
    row(at("2025-10-30"), "0.010"),
    row(at("2025-10-31", "09:00"), "0.020"),
    row(at("2025-10-31", "23:59"), None, model="free"),  # tokens, no price
    row(at("2025-11-01", "00:00"), "0.005"),  # the first instant of November
    row(at("2025-11-02", "01:00"), "0.001"),
    row(at("2025-11-02", "13:00"), "0.002"),
    row(at("2025-11-02", "14:00"), "0.100", target="other"),
    # a skipped probe: no tokens, no cost, must not make anything unknown
    row(at("2025-11-02", "15:00"), None).replace(
        outcome=Outcome.SKIPPED,
        http_status=None,
        duration_s=None,
        prompt_tokens=None,
        completion_tokens=None,
        total_tokens=None,
        error="daily budget of $0.10 reached",
    ),
]

# (day, target) -> (cost cell, month-to-date cell), as the table and csv show them
EXPECTED = {
    ("2025-10-30", "nx"): ("0.010000", "1.510000"),
    ("2025-10-31", "nx"): (">=0.020000", ">=1.530000"),
    ("2025-11-01", "nx"): ("0.005000", "0.005000"),
    ("2025-11-02", "nx"): ("0.003000", "0.008000"),
    ("2025-11-02", "other"): ("0.100000", "0.100000"),
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'nexomon.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        write_batch(conn, [(f"{i:032x}", r) for i, r in enumerate(DATASET)])
    yield url, engine
    engine.dispose()


def test_month_start_is_utc_first_of_month() -> None:
    assert month_start(at("2025-11-30", "23:59")) == datetime(2025, 11, 1, tzinfo=UTC)
    east = datetime.fromisoformat("2025-12-01T01:00:00+02:00")  # still November in UTC
    assert month_start(east) == datetime(2025, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize("rolled", [False, True], ids=["raw", "rollup"])
def test_report_by_day_has_cost_per_day_and_month_to_date(
    db: tuple[str, Engine], rolled: bool
) -> None:
    _, engine = db
    if rolled:
        rollup.refresh(engine, NOW)  # whole days from day rows, the rest from hour rows
    with Session(engine) as session:
        rows = build_report(session, since=SINCE, by="day")

    by_key = {(r.day, r.target): r for r in rows}
    assert set(by_key) == set(EXPECTED)
    assert by_key[("2025-10-30", "nx")].mtd_usd == D("1.510")
    assert by_key[("2025-10-31", "nx")].mtd_unpriced_rows == 1
    assert by_key[("2025-11-02", "nx")].cost_usd == D("0.003")
    assert by_key[("2025-11-02", "nx")].mtd_usd == D("0.008")
    assert by_key[("2025-11-02", "nx")].outcomes["skipped"] == 1

    table = render(rows, "table").splitlines()
    header = table[0].split()
    cost_col, mtd_col = header.index("cost_usd"), header.index("month_to_date_usd")
    assert mtd_col == cost_col + 1
    shown = {}
    for line in table[1 : 1 + len(EXPECTED)]:
        cells = line.split()
        shown[(cells[0], cells[1])] = (cells[cost_col], cells[mtd_col])
    assert shown == EXPECTED
    assert table[1 + len(EXPECTED) :] == [
        "month to date 2025-10 (UTC, through 2025-10-31): >=1.530000",
        "month to date 2025-11 (UTC, through 2025-11-02): 0.108000",
    ]

    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert {(p["day"], p["target"]): (p["cost_usd"], p["month_to_date_usd"]) for p in parsed} == (
        EXPECTED
    )

    decoded = json.loads(render(rows, "json"))
    by_json = {(d["day"], d["target"]): d for d in decoded}
    assert D(by_json[("2025-10-30", "nx")]["month_to_date_usd"]) == D("1.510")
    assert by_json[("2025-10-30", "nx")]["month_to_date_known"] is True
    assert by_json[("2025-10-31", "nx")]["month_to_date_known"] is False
    assert D(by_json[("2025-11-02", "other")]["month_to_date_usd"]) == D("0.100")
    assert D(by_json[("2025-11-02", "nx")]["cost_usd"]) == D("0.003")


def test_report_by_model_has_no_month_to_date(db: tuple[str, Engine]) -> None:
    _, engine = db
    with Session(engine) as session:
        rows = build_report(session, since=SINCE, by="model")
    assert all(r.mtd_usd is None for r in rows)
    assert "month_to_date_usd" not in render(rows, "table")
    assert all("month_to_date_usd" not in d for d in json.loads(render(rows, "json")))


def test_unpriced_cost_is_unknown_never_zero(db: tuple[str, Engine]) -> None:
    _, engine = db
    with Session(engine) as session:
        rows = build_report(session, since=SINCE, by="model")
    free = next(r for r in rows if r.model == "free")
    assert free.cost_usd == 0 and free.unpriced_rows == 1
    line = next(line for line in render(rows, "table").splitlines() if " free " in line)
    assert "unknown" in line.split() and "0.000000" not in line
    decoded = {d["model"]: d for d in json.loads(render(rows, "json"))}
    assert decoded["free"]["cost_usd"] is None and decoded["free"]["cost_known"] is False
    assert decoded["m"]["cost_usd"] is not None and decoded["m"]["cost_known"] is True
    parsed = {p["model"]: p for p in csv.DictReader(io.StringIO(render(rows, "csv")))}
    assert parsed["free"]["cost_usd"] == "unknown"


def test_nexomon_report_command_prints_month_to_date(
    db: tuple[str, Engine], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = db
    config = write_config(tmp_path / "cfg", "http://127.0.0.1:9/v1", database_url=url)
    assert run_cli("report", "-c", str(config), "--by", "day", "--since", "2025-10-29") == 0
    out = capsys.readouterr().out
    assert "month to date 2025-10 (UTC, through 2025-10-31): >=1.530000" in out
    assert "month to date 2025-11 (UTC, through 2025-11-02): 0.108000" in out


def test_month_to_date_counts_from_the_first_even_for_a_late_since(
    db: tuple[str, Engine],
) -> None:
    _, engine = db
    with Session(engine) as session:
        rows = build_report(session, since=at("2025-11-02", "12:00"), by="day")
    nx = next(r for r in rows if r.target == "nx")
    # the window holds only the 13:00 row; month to date adds 1 Nov and 2 Nov 01:00
    assert (nx.day, nx.cost_usd, nx.mtd_usd) == ("2025-11-02", D("0.002"), D("0.008"))
