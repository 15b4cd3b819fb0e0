"""The plain-SQL read path against the SQLAlchemy queries it replaced (a conformance suite).

``nexomon report`` reads through ``monitor.store.sql_reader`` on the driver's
own connection (``monitor.store.dbapi_open``), without SQLAlchemy. Here each
read runs three ways on SQLite and PostgreSQL: the SQLAlchemy Core query that
served it before (kept below as the oracle, with the ORM column types doing
the conversions), the new statement through SQLAlchemy's connection
(``reader_of``), and the new statement on the bare driver; all must give the
same values of the same types.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import BigInteger, Connection, Engine, and_, cast, func, null, or_, select
from sqlalchemy.orm import Session

from monitor.cli.report import BY, build_report
from monitor.store import rollup
from monitor.store.aggregate import Aggregate, _add_raw, add_raw_row, by_model, rolled_up_to
from monitor.store.batch import write_batch
from monitor.store.dbapi_open import open_reader
from monitor.store.models import COST, RollupHourly, RollupState
from monitor.store.rollup_read import fold, read_groups, read_rows, to_date_rows
from monitor.store.sql_reader import Reader, reader_of
from tests.store.factory import T0, chat
from tests.store.test_rollup_levels import NOW, SUBTRACTING, load

Span = tuple[str, datetime, datetime]
PARTS: list[Span] = [
    ("month", datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)),
    ("day", datetime(2025, 11, 21, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)),
    ("hour", SUBTRACTING.replace(minute=0), SUBTRACTING.replace(minute=0) + timedelta(hours=30)),
    ("tday", datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 3, tzinfo=UTC)),
]


@pytest.fixture
def rolled(engine: Engine, db_url: str) -> Iterator[tuple[Engine, str]]:
    """``load``'s rows (some unpriced), a few substituted answers, and the rollup."""
    load(engine)
    swapped = [
        chat(900_000 + i, started_at=NOW - timedelta(hours=i), substituted_by=f"cheap-{i % 2}")
        for i in range(5)
    ]
    with engine.begin() as conn:
        write_batch(conn, [(f"s{i:031x}", r) for i, r in enumerate(swapped)])
    rollup.refresh(engine, NOW)
    yield engine, db_url


@pytest.fixture
def driver(rolled: tuple[Engine, str]) -> Iterator[Reader]:
    reader = open_reader(rolled[1])
    assert reader is not None, "the test URLs are of the plain forms"
    yield reader
    reader.close()


def oracle_rows(conn: Connection, parts: Sequence[Span], location: str | None) -> list[Any]:
    """The replaced ``rollup_read.read_rows``."""
    r = RollupHourly
    rows: list[Any] = []
    for span, start, end in parts:
        query = select(
            r.hour, r.location, r.target, r.probe, r.model, r.probes, r.successes, r.outcomes,
            r.latency_hist, r.prompt_tokens, r.completion_tokens, r.total_tokens, r.cost_usd,
            r.unpriced,
        ).where(r.span == span, r.hour >= start, r.hour < end)  # fmt: skip
        if location is not None:
            query = query.where(r.location == location)
        rows += [tuple(row) for row in conn.execute(query)]
    return rows


def oracle_groups(conn: Connection, parts: Sequence[Span], location: str | None) -> list[Any]:
    """The replaced ``rollup_read.read_groups`` (its SQLite cost conversion included)."""
    r = RollupHourly
    sqlite = conn.dialect.name == "sqlite"

    def total(column: Any) -> Any:
        return cast(func.sum(column), BigInteger)

    def joined(column: Any) -> Any:
        return func.group_concat(column, ",") if sqlite else func.string_agg(column, ",")

    cost = joined(func.quote(r.cost_usd)) if sqlite else func.sum(r.cost_usd)
    query = (
        select(
            null(),
            r.location,
            r.target,
            r.probe,
            r.model,
            total(r.probes),
            total(r.successes),
            joined(r.outcomes),
            joined(r.latency_hist),
            total(r.prompt_tokens),
            total(r.completion_tokens),
            total(r.total_tokens),
            cost,
            total(r.unpriced),
        )
        .where(or_(*(and_(r.span == s, r.hour >= a, r.hour < b) for s, a, b in parts)))
        .group_by(r.location, r.target, r.probe, r.model)
    )
    if location is not None:
        query = query.where(r.location == location)
    rows = [tuple(row) for row in conn.execute(query)]
    if not sqlite:
        return rows
    to_decimal = r.cost_usd.type.result_processor(conn.dialect, None)
    assert to_decimal is not None
    return [
        (*row[:12], sum(map(to_decimal, map(float, row[12].split(","))), Decimal(0)), row[13])
        for row in rows
    ]


def oracle_raw(conn: Connection, since: datetime) -> dict[Any, tuple[Any, ...]]:
    """The replaced raw read (``select(*raw_columns())``), folded by ``by_model``."""
    p = rollup.ProbeResultRow
    groups: dict[Any, Aggregate] = {}
    for row in conn.execute(select(*rollup.raw_columns()).where(p.started_at >= since)):
        add_raw_row(groups.setdefault(by_model(row[0], row[10], *row[1:4]), Aggregate()), row)
    return sums(groups)


def sums(groups: dict[Any, Aggregate]) -> dict[Any, tuple[Any, ...]]:
    return {
        k: (
            a.probes,
            dict(a.outcomes),
            dict(a.latency.counts),
            a.total_tokens,
            a.cost_usd,
            a.unpriced,
        )
        for k, a in groups.items()
    }


def typed(rows: list[Any]) -> list[tuple[Any, ...]]:
    """Rows with each value's type beside it, sorted: equal values of other types differ."""
    return sorted((tuple((type(v).__name__, v) for v in row) for row in rows), key=repr)


@pytest.mark.parametrize("location", [None, "eu"])
def test_rollup_reads_match_the_sqlalchemy_queries(
    rolled: tuple[Engine, str], driver: Reader, location: str | None
) -> None:
    engine, _url = rolled
    with engine.connect() as conn:
        expected_rows = typed(oracle_rows(conn, PARTS, location))
        expected_groups = typed(oracle_groups(conn, PARTS, location))
        through_sqlalchemy = reader_of(conn)
        for reader in (through_sqlalchemy, driver):
            assert typed(read_rows(reader, PARTS, location)) == expected_rows
            groups = read_groups(reader, PARTS, location)
            assert all(row[14:] == (None, None) for row in groups)  # nothing taken out
            assert typed([row[:14] for row in groups]) == expected_groups
    assert len(expected_rows) > 50 and len(expected_groups) > 4  # the parts hold rows


def test_rows_taken_out_in_the_query_match_the_groups_taken_out_after(
    rolled: tuple[Engine, str], driver: Reader
) -> None:
    """``read_groups(..., less)``: the numbers net, the texts of ``less`` apart; folded,
    the same as folding ``less``'s own groups and subtracting them (the old way)."""
    engine, _url = rolled
    plus = [("day", datetime(2025, 12, 3, tzinfo=UTC), datetime(2025, 12, 5, tzinfo=UTC))]
    less = [("hour", datetime(2025, 12, 3, tzinfo=UTC), datetime(2025, 12, 3, 6, tzinfo=UTC))]
    with engine.connect() as conn:
        before: dict[Any, Aggregate] = {}
        for row in oracle_groups(conn, plus, None):
            fold(before.setdefault(row[1:5], Aggregate()), [row])
        for row in oracle_groups(conn, less, None):
            before[row[1:5]].subtract(fold_into(Aggregate(), row))
        for reader in (reader_of(conn), driver):
            after: dict[Any, Aggregate] = {}
            for row in read_groups(reader, plus, None, less):
                fold(after.setdefault(row[1:5], Aggregate()), [row])
            assert sums(after) == sums(before)
    # Groups left with rows, and m-old's, whose every row of the 3rd was before 06:00.
    assert sum(a.probes > 0 for a in before.values()) > 4
    assert [k[3] for k, a in before.items() if a.probes == 0] == ["m-old"]


def fold_into(agg: Aggregate, row: Any) -> Aggregate:
    fold(agg, [row])
    return agg


def test_raw_rows_state_and_to_date_rows_match(rolled: tuple[Engine, str], driver: Reader) -> None:
    engine, _url = rolled
    since = NOW - timedelta(hours=70)
    with engine.connect() as conn:
        expected_raw = oracle_raw(conn, since)
        done = conn.scalar(select(RollupState.complete_before))
        for reader in (reader_of(conn), driver):
            groups: dict[Any, Aggregate] = {}
            _add_raw(reader, groups, by_model, None, since, None)
            assert sums(groups) == expected_raw
            assert rolled_up_to(reader) == done
            present = to_date_rows(reader, done, [done.replace(hour=0)])
            assert present == to_date_rows(conn, done, [done.replace(hour=0)])
    assert done is not None and done.tzinfo is not None
    assert any(a[4] > 0 for a in expected_raw.values())  # priced rows: Decimal sums compared


@pytest.mark.parametrize("by", BY)
def test_the_report_on_the_driver_is_the_report_on_sqlalchemy(
    rolled: tuple[Engine, str], driver: Reader, by: str
) -> None:
    engine, _url = rolled
    since = SUBTRACTING
    with Session(engine) as session:
        for location in (None, "us"):
            expected = build_report(session, since=since, by=by, location=location)
            assert build_report(driver, since=since, by=by, location=location) == expected
            assert expected
    if by == "model":
        with Session(engine) as session:
            rows = build_report(session, since=T0, by=by)
        assert any(row.substitutions for row in rows)  # read_substitutions ran on real rows


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 2, 3, 17, 5, 9, 123456, tzinfo=UTC),
        datetime(2026, 2, 3, 17, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 2, 3, 17, 0),  # naive: taken as UTC, as models.UTCDateTime does
    ],
)
def test_bound_datetimes_are_what_the_column_type_stores(engine: Engine, moment: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            RollupState.__table__.insert().values(name="t", complete_before=moment, last_id=0)
        )
        stored = conn.exec_driver_sql("SELECT complete_before FROM rollup_state").scalar()
        reader = reader_of(conn)
        assert reader.bind(moment) == stored
        assert reader.when(stored) == conn.scalar(select(RollupState.complete_before))
        # The bound value compares as the stored one: = finds it, > does not.
        query = "SELECT name FROM rollup_state WHERE complete_before {} ?"
        assert reader.rows(query.format("="), (moment,)) == [("t",)]
        assert reader.rows(query.format(">"), (moment,)) == []


def test_costs_convert_as_the_numeric_column_does() -> None:
    from sqlalchemy.dialects import sqlite

    processor = COST.result_processor(sqlite.dialect(), None)
    assert processor is not None
    reader = Reader("sqlite", lambda sql, params: ())
    for value in (0, 1, 0.0000024, 1e-9, 0.1 + 0.2, 123456.123456789, 5e-10, Decimal("0.5")):
        assert reader.usd(value) == processor(value)
    assert reader.usd(None) is None
