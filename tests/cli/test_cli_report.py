"""``nexomon report``: ``--by day`` split by probe kind, a table that fits 120, ``--wide``.

Issue 16, point 8. Hand-made rows go into a migrated SQLite database; the
report is read through ``build_report``/``render`` and through the real
``nexomon report`` command.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cli_helpers import nexomon, target, unique_secret, write_config
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.cli.report import TABLE_WIDTH, build_report, render
from monitor.outcome import Outcome
from monitor.results import ProbeResult
from monitor.store import rollup
from monitor.store.batch import write_batch
from monitor.store.db import make_engine, upgrade
from monitor.store.histogram import ERROR_BOUND

DAY = datetime(2025, 11, 20, tzinfo=UTC)
SINCE = DAY - timedelta(days=1)
LONG_MODEL = "deepseek-v4-flash-preview-2025-11"
OUTCOME_COLUMNS = [o.value for o in Outcome]


def probe(minute: int, kind: str, outcome: Outcome, duration_s: float | None) -> ProbeResult:
    chat = kind == "chat"
    return ProbeResult(
        started_at=DAY + timedelta(hours=10, minutes=minute),
        location="eu",
        target="nexorouter",
        probe=kind,
        model=LONG_MODEL if chat else "",
        outcome=outcome,
        http_status=200 if outcome is Outcome.OK else 503,
        duration_s=duration_s,
        prompt_tokens=18 if chat and outcome is Outcome.OK else None,
        completion_tokens=2 if chat and outcome is Outcome.OK else None,
        total_tokens=20 if chat and outcome is Outcome.OK else None,
        cost_usd=Decimal("0.001") if chat and outcome is Outcome.OK else None,
    )


def dataset() -> list[ProbeResult]:
    """One day: 10 ok models probes at 1 ms; chat 3 ok at 800 ms, 1 timeout, 1 rate_limited."""
    rows = [probe(i, "models", Outcome.OK, 0.001) for i in range(10)]
    rows += [probe(20 + i, "chat", Outcome.OK, 0.8) for i in range(3)]
    rows.append(probe(30, "chat", Outcome.TIMEOUT, 30.0))
    rows.append(probe(31, "chat", Outcome.RATE_LIMITED, 0.05))
    return rows


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'nexomon.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        write_batch(conn, [(f"{i:032x}", r) for i, r in enumerate(dataset())])
    yield url, engine
    engine.dispose()


@pytest.mark.parametrize("rolled", [False, True], ids=["raw", "rollup"])
def test_by_day_splits_the_models_probe_from_chat(db: tuple[str, Engine], rolled: bool) -> None:
    _, engine = db
    if rolled:
        rollup.refresh(engine, DAY + timedelta(days=2))
    with Session(engine) as session:
        rows = build_report(session, since=SINCE, by="day")
    by_probe = {(r.day, r.target, r.probe): r for r in rows}
    assert set(by_probe) == {
        ("2025-11-20", "nexorouter", "chat"),
        ("2025-11-20", "nexorouter", "models"),
    }
    models = by_probe[("2025-11-20", "nexorouter", "models")]
    chat = by_probe[("2025-11-20", "nexorouter", "chat")]
    assert (models.probes, models.availability_pct) == (10, 100.0)
    assert models.p50_s == pytest.approx(0.001, rel=ERROR_BOUND)
    assert chat.probes == 5
    assert chat.availability_pct == pytest.approx(75.0)  # 3 ok / (3 ok + 1 timeout)
    assert chat.p50_s == pytest.approx(0.8, rel=ERROR_BOUND)
    assert (models.mtd_usd, chat.mtd_usd) == (Decimal(0), Decimal("0.003"))

    table = render(rows, "table").splitlines()
    header = table[0].split()
    assert header[:3] == ["day", "target", "probe"]
    assert [line.split()[2] for line in table[1:3]] == ["chat", "models"]
    assert table[3] == "month to date 2025-11 (UTC, through 2025-11-20): 0.003000"
    decoded = json.loads(render(rows, "json"))
    assert [(d["probe"], d["availability_pct"]) for d in decoded] == [
        ("chat", pytest.approx(75.0)),
        ("models", 100.0),
    ]
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert [p["probe"] for p in parsed] == ["chat", "models"]


@pytest.mark.parametrize("by", ["model", "day"])
def test_default_table_fits_120_and_wide_has_every_column(db: tuple[str, Engine], by: str) -> None:
    _, engine = db
    with Session(engine) as session:
        rows = build_report(session, since=SINCE, by=by)
    narrow = render(rows, "table").splitlines()
    wide = render(rows, "table", wide=True).splitlines()
    assert max(len(line) for line in narrow) <= TABLE_WIDTH
    assert max(len(line) for line in wide) > TABLE_WIDTH
    narrow_header, wide_header = narrow[0].split(), wide[0].split()
    for column in ("target", "probe", "probes", "availability_pct", "p50_ms", "p95_ms"):
        assert column in narrow_header
    assert "cost_usd" in narrow_header
    # the availability rule's groups stand for the outcome columns
    assert {"down", "refused"} <= set(narrow_header)
    assert not (set(OUTCOME_COLUMNS) - {"ok", "skipped"}) & set(narrow_header)
    assert set(OUTCOME_COLUMNS) <= set(wide_header)
    assert "down" not in wide_header
    chat_line = next(line.split() for line in narrow[1:] if "chat" in line.split())
    cells = dict(zip(narrow_header, chat_line, strict=True))
    assert (cells["down"], cells["refused"]) == ("1", "1")
    # json and csv keep every column, --wide or not
    assert set(OUTCOME_COLUMNS) <= set(next(csv.reader(io.StringIO(render(rows, "csv")))))
    assert set(OUTCOME_COLUMNS) <= set(json.loads(render(rows, "json"))[0]["outcomes"])


def test_nexomon_report_wide_flag(db: tuple[str, Engine], tmp_path: Path) -> None:
    url, _ = db
    key = unique_secret()
    config = write_config(
        tmp_path,
        [target("gw", "http://127.0.0.1:9/v1", api_key_env="NEXOMON_TEST_KEY")],
        monitor={"database_url": url},
    )
    env = {"NEXOMON_TEST_KEY": key}
    args = ("report", "-c", str(config), "--since", "2025-11-19")
    narrow = nexomon(*args, env=env)
    wide = nexomon(*args, "--wide", env=env)
    assert narrow.rc == 0 and wide.rc == 0, (narrow, wide)
    assert max(len(line) for line in narrow.out.splitlines()) <= TABLE_WIDTH
    assert "connection_error" not in narrow.out and "connection_error" in wide.out
    by_day = nexomon(*args, "--by", "day", env=env)
    assert by_day.rc == 0, by_day
    assert by_day.out.splitlines()[0].split()[:3] == ["day", "target", "probe"]


def test_nexomon_report_by_location_and_location_filter(tmp_path: Path) -> None:
    """The real command: --by location, --location X with json and csv, read-only."""
    url = f"sqlite:///{tmp_path / 'nexomon.db'}"
    upgrade(url)
    rows = [replace(r, location="us") for r in dataset()]
    rows += [
        replace(r, location="ap", started_at=r.started_at + timedelta(seconds=1))
        for r in dataset()[:10]
    ]
    engine = make_engine(url)
    with engine.begin() as conn:
        write_batch(conn, [(f"{i:032x}", r) for i, r in enumerate(rows)])
    engine.dispose()
    config = write_config(
        tmp_path,
        [target("gw", "http://127.0.0.1:9/v1", api_key_env="NEXOMON_TEST_KEY")],
        monitor={"database_url": url},
    )
    env = {"NEXOMON_TEST_KEY": unique_secret()}
    args = ("report", "-c", str(config), "--since", "2025-11-19")
    by_location = nexomon(*args, "--by", "location", "--format", "json", env=env)
    assert by_location.rc == 0, by_location
    decoded = json.loads(by_location.out)
    assert [(d["location"], d["probe"], d["probes"]) for d in decoded] == [
        ("us", "chat", 5),
        ("*", "chat", 5),
        ("ap", "models", 10),
        ("us", "models", 10),
        ("*", "models", 20),
    ]
    only_ap = nexomon(*args, "--location", "ap", "--format", "csv", env=env)
    assert only_ap.rc == 0, only_ap
    parsed = list(csv.DictReader(io.StringIO(only_ap.out)))
    assert [(p["location"], p["probe"], p["probes"]) for p in parsed] == [("ap", "models", "10")]
    table = nexomon(*args, "--by", "location", env=env)
    assert table.rc == 0 and table.out.splitlines()[0].split()[:3] == [
        "location",
        "target",
        "probe",
    ]
    unknown = nexomon(*args, "--location", "nowhere", env=env)
    assert unknown.rc == 0 and unknown.out.strip() == "no probe results in this window"


def test_report_names_the_models_that_answered_in_another_ones_place(tmp_path: Path) -> None:
    """Issue 18 point 2: substitutions per chat row (json, csv) and one closing line each."""
    url = f"sqlite:///{tmp_path / 'nexomon.db'}"
    upgrade(url)
    engine = make_engine(url)
    ok = probe(0, "chat", Outcome.OK, 0.5)
    rows = [replace(ok, started_at=ok.started_at + timedelta(minutes=i)) for i in range(6)]
    rows[1] = replace(rows[1], response_model="cheap-1", substituted_by="cheap-1")
    rows[2] = replace(rows[2], response_model="cheap-1", substituted_by="cheap-1")
    rows[3] = replace(rows[3], location="us", response_model="cheap-2", substituted_by="cheap-2")
    rows.append(probe(40, "models", Outcome.OK, 0.001))
    with engine.begin() as conn:
        write_batch(conn, [(f"{i:032x}", r) for i, r in enumerate(rows)])
    try:
        with Session(engine) as session:
            report = build_report(session, since=SINCE, by="model")
            eu_only = build_report(session, since=SINCE, by="model", location="eu")
    finally:
        engine.dispose()
    chat = next(r for r in report if r.probe == "chat")
    assert chat.substitutions == {"cheap-1": 2, "cheap-2": 1}
    assert next(r for r in eu_only if r.probe == "chat").substitutions == {"cheap-1": 2}
    models_row = next(r for r in report if r.probe == "models")
    assert models_row.substitutions is None and "substitutions" not in models_row.to_json()
    assert json.loads(render(report, "json"))[0]["substitutions"] == {"cheap-1": 2, "cheap-2": 1}
    table = render(report, "table").splitlines()
    assert table[-2:] == [
        f"substituted: nexorouter/{LONG_MODEL} answered by cheap-1 2 times",
        f"substituted: nexorouter/{LONG_MODEL} answered by cheap-2 once",
    ]
    by_csv = {r["probe"]: r for r in csv.DictReader(io.StringIO(render(report, "csv")))}
    assert (by_csv["chat"]["substituted"], by_csv["models"]["substituted"]) == ("3", "")
