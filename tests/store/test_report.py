"""Report numbers on a hand-made data set, from raw rows and from the rollup alike."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.cli.report import build_report, parse_since, render
from monitor.errors import UsageError
from monitor.outcome import Outcome
from monitor.store import rollup
from monitor.store.batch import write_batch
from monitor.store.db import make_engine
from monitor.store.histogram import ERROR_BOUND
from monitor.store.queries import status_summary
from tests.store.factory import T0, chat

NO_USAGE = {
    "prompt_tokens": None,
    "completion_tokens": None,
    "total_tokens": None,
    "cost_usd": None,
}
HOUR0 = T0.replace(minute=0, second=0, microsecond=0)


def dataset() -> list:  # type: ignore[type-arg]
    """Model m: 6 ok, 1 server_error, 1 timeout, 1 rate_limited, 1 auth_error -> 75 %.

    Two ok rows spent tokens without a price (cost unknown).
    """
    rows = []
    for i in range(6):
        cost = None if i < 2 else Decimal("0.001")
        rows.append(chat(i, model="m", duration_s=0.1 * (i + 1), cost_usd=cost))
    for i, outcome in enumerate(
        [Outcome.SERVER_ERROR, Outcome.TIMEOUT, Outcome.RATE_LIMITED, Outcome.AUTH_ERROR]
    ):
        rows.append(chat(10 + i, model="m", outcome=outcome, **NO_USAGE))
    rows.append(
        chat(20, model="only-skipped", outcome=Outcome.SKIPPED, duration_s=None, **NO_USAGE)
    )
    # spread over two hours so the rollup and the raw tail both take part
    return [
        r.replace(started_at=HOUR0 + timedelta(minutes=50 * (k % 2), seconds=k))
        for k, r in enumerate(rows)
    ]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        write_batch(conn, [(f"{i:032x}", r) for i, r in enumerate(dataset())])
    yield engine
    engine.dispose()


@pytest.mark.parametrize("rolled", [None, 3, 72], ids=["raw", "rollup-hours", "rollup-days"])
def test_report_by_model_numbers(engine: Engine, rolled: int | None) -> None:
    if rolled is not None:
        rollup.refresh(engine, HOUR0 + timedelta(minutes=55))  # no complete hour yet
        rollup.refresh(engine, HOUR0 + timedelta(hours=rolled))
    with Session(engine) as session:
        rows = build_report(session, since=HOUR0 - timedelta(days=1, minutes=30), by="model")
    by_model = {r.model: r for r in rows}
    m = by_model["m"]
    assert m.probes == 10
    assert m.availability_pct == pytest.approx(75.0)
    assert m.outcomes["rate_limited"] == 1 and m.outcomes["auth_error"] == 1
    assert m.prompt_tokens == 72 and m.completion_tokens == 18
    assert m.cost_usd == Decimal("0.004") and m.unpriced_rows == 2
    assert m.p50_s == pytest.approx(0.3, rel=ERROR_BOUND)
    assert m.p99_s == pytest.approx(0.6, rel=ERROR_BOUND)
    skipped = by_model["only-skipped"]
    assert skipped.availability_pct is None and skipped.outcomes["skipped"] == 1
    table = render(rows, "table")
    assert ">=0.004000" in table and "75.00" in table
    decoded = json.loads(render(rows, "json"))
    assert {d["model"]: d["cost_known"] for d in decoded} == {"m": False, "only-skipped": True}
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert parsed[0]["availability_pct"] == "75.00" and parsed[0]["unpriced_rows"] == "2"


@pytest.mark.parametrize("rolled", [False, True])
def test_report_by_day_groups_per_day_and_target(engine: Engine, rolled: bool) -> None:
    if rolled:
        rollup.refresh(engine, HOUR0 + timedelta(days=3))
    with Session(engine) as session:
        rows = build_report(session, since=HOUR0 - timedelta(days=1), by="day")
    assert [(r.day, r.target, r.probes) for r in rows] == [("2025-11-20", "nexorouter", 11)]
    assert "day" in render(rows, "table").splitlines()[0]


def test_status_summary_has_last_result_and_availability(engine: Engine) -> None:
    with Session(engine) as session:
        rows = status_summary(session, HOUR0 - timedelta(hours=1))
    m = next(r for r in rows if r.model == "m")
    assert m.availability_pct == pytest.approx(75.0) and m.probes == 10
    assert m.last.started_at == max(r.started_at for r in dataset() if r.model == "m")
    assert json.dumps(m.to_json())


NOW = datetime(2025, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("30d", NOW - timedelta(days=30)),
        ("2025-11-01", datetime(2025, 11, 1, tzinfo=UTC)),
        ("2025-11-01T06:00:00+02:00", datetime(2025, 11, 1, 4, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "7x", ""])
def test_parse_since_rejects_nonsense(text: str) -> None:
    with pytest.raises(UsageError, match="--since"):
        parse_since(text, NOW)


def located() -> list:  # type: ignore[type-arg]
    """Two locations probing one model: us all ok (300 ms), eu 2 ok (900 ms) and 2 server_error.

    Plus one ok models probe from each, so the kinds stay apart.
    """
    rows = [chat(i, model="m", location="us", duration_s=0.3) for i in range(4)]
    rows += [chat(10 + i, model="m", location="eu", duration_s=0.9) for i in range(2)]
    rows += [
        chat(20 + i, model="m", location="eu", outcome=Outcome.SERVER_ERROR, **NO_USAGE)
        for i in range(2)
    ]
    rows += [
        chat(30 + i, probe="models", model="", location=where, duration_s=0.01, **NO_USAGE)
        for i, where in enumerate(("us", "eu"))
    ]
    return [
        r.replace(started_at=HOUR0 + timedelta(minutes=50 * (k % 2), seconds=k))
        for k, r in enumerate(rows)
    ]


@pytest.fixture
def located_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        write_batch(conn, [(f"{i:032x}", r) for i, r in enumerate(located())])
    yield engine
    engine.dispose()


@pytest.mark.parametrize("rolled", [False, True], ids=["raw", "rollup"])
def test_report_by_location_has_a_row_per_location_and_a_combined_row(
    located_engine: Engine, rolled: bool
) -> None:
    if rolled:
        rollup.refresh(located_engine, HOUR0 + timedelta(hours=3))
    since = HOUR0 - timedelta(hours=1)
    with Session(located_engine) as session:
        rows = build_report(session, since=since, by="location")
        only_eu = build_report(session, since=since, by="location", location="eu")
        eu_models = build_report(session, since=since, by="model", location="eu")
        eu_days = build_report(session, since=since, by="day", location="eu")
    assert [(r.location, r.probe, r.probes) for r in rows] == [
        ("eu", "chat", 4),
        ("us", "chat", 4),
        ("*", "chat", 8),
        ("eu", "models", 1),
        ("us", "models", 1),
        ("*", "models", 2),
    ]
    chat_rows = {r.location: r for r in rows if r.probe == "chat"}
    assert chat_rows["us"].availability_pct == 100.0
    assert chat_rows["eu"].availability_pct == pytest.approx(50.0)
    assert chat_rows["*"].availability_pct == pytest.approx(75.0)  # 6 ok / 8
    assert chat_rows["us"].p50_s == pytest.approx(0.3, rel=ERROR_BOUND)
    assert chat_rows["eu"].p50_s == pytest.approx(0.9, rel=ERROR_BOUND)
    # the combined latency is over both locations' ok probes: 4 x 0.3 s, 2 x 0.9 s
    assert chat_rows["*"].p50_s == pytest.approx(0.3, rel=ERROR_BOUND)
    assert chat_rows["*"].p95_s == pytest.approx(0.9, rel=ERROR_BOUND)
    assert chat_rows["*"].outcomes["server_error"] == 2
    # --location filters every --by, and every row says whose probes it holds
    assert [(r.location, r.probe, r.probes) for r in only_eu] == [
        ("eu", "chat", 4),
        ("*", "chat", 4),
        ("eu", "models", 1),
        ("*", "models", 1),
    ]
    assert [(r.location, r.model, r.probes) for r in eu_models] == [("eu", "m", 4), ("eu", "", 1)]
    assert {r.location for r in eu_days} == {"eu"} and sum(r.probes for r in eu_days) == 5
    decoded = json.loads(render(rows, "json"))
    assert [d["location"] for d in decoded] == ["eu", "us", "*", "eu", "us", "*"]
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert parsed[0]["location"] == "eu" and parsed[2]["availability_pct"] == "75.00"
    assert "model" not in parsed[0] and "day" not in parsed[0]
    table = render(rows, "table").splitlines()
    assert table[0].split()[:3] == ["location", "target", "probe"]
    assert [line.split()[0] for line in table[1:]] == ["eu", "us", "*", "eu", "us", "*"]


def test_report_rows_without_location_grouping_cover_every_location(engine: Engine) -> None:
    with Session(engine) as session:
        rows = build_report(session, since=HOUR0 - timedelta(days=1), by="model")
    assert {r.location for r in rows} == {"*"}
    assert "location" not in render(rows, "table").splitlines()[0].split()
    assert {p["location"] for p in csv.DictReader(io.StringIO(render(rows, "csv")))} == {"*"}


def test_report_refuses_an_unknown_by_and_an_empty_location(engine: Engine) -> None:
    with Session(engine) as session:
        with pytest.raises(UsageError, match="--by"):
            build_report(session, since=HOUR0, by="region")
        with pytest.raises(UsageError, match="--location"):
            build_report(session, since=HOUR0, by="model", location=" ")
