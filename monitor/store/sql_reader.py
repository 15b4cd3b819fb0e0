"""Plain-SQL reads on either SQLAlchemy's connection or a bare DB-API one.

``aggregate``, ``rollup_read`` and the report's substitutions send their
SELECTs as text through a ``Reader``: the daemon and the rollup wrap their
SQLAlchemy ``Connection``/``Session`` (``reader_of``), and ``nexomon report``
opens ``sqlite3``/``psycopg`` itself (``monitor.store.dbapi_open``) and never
imports SQLAlchemy: its import (~0.35 s, plus ~0.1 s for the PostgreSQL
dialect) was over a third of a year's report on PostgreSQL
(benchmarks/history.py). The statements are the same text on both ways in,
so what they return is the same; ``tests/store/test_sql_reader.py`` holds
them to the SQLAlchemy queries they replaced, on SQLite and PostgreSQL.

Contract of a statement: ``?`` marks each parameter (turned into ``%s`` for
PostgreSQL), the text holds no other ``?`` or ``%``. Parameters go through
``bind``: an aware datetime becomes what ``models.UTCDateTime`` stores (SQLite:
naive UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``, which sorts as time does;
PostgreSQL: the aware UTC datetime). Values come back as the driver gives them;
``when`` and ``usd`` turn timestamp and ``Numeric(18, 9)`` columns into what the
model's types give (aware UTC datetimes; Decimals from SQLite's floats the way
SQLAlchemy converts them, ``"%.9f" % value``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
_COST_FORMAT = "%.9f"  # models.COST is Numeric(18, 9): SQLAlchemy's own conversion


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Reader:
    """Runs plain SELECTs: ``dialect`` is ``"sqlite"`` or ``"postgresql"``;
    ``run(sql, params)`` executes one statement in the driver's own paramstyle
    and gives its rows; ``close`` ends what the reader opened (nothing for a
    wrapped SQLAlchemy connection, whose owner closes it)."""

    dialect: str
    run: Callable[[str, tuple[Any, ...]], Iterable[Sequence[Any]]]
    close: Callable[[], None] = _nothing

    @property
    def sqlite(self) -> bool:
        return self.dialect == SQLITE

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """Every row of ``sql`` (``?`` placeholders) with ``params`` bound."""
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        return list(self.run(sql, tuple(self.bind(value) for value in params)))

    def execute(self, sql: str) -> None:
        """A statement without parameters or rows (``SET LOCAL ...``)."""
        self.run(sql, ())

    def bind(self, value: Any) -> Any:
        """``value`` as the column stores it (datetimes; anything else as is)."""
        if not isinstance(value, datetime):
            return value
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.replace(tzinfo=None).isoformat(" ", "microseconds") if self.sqlite else aware

    def when(self, value: Any) -> datetime | None:
        """A timestamp column's value as an aware UTC datetime (None stays None)."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def usd(self, value: Any) -> Decimal | None:
        """A cost column's value as SQLAlchemy's ``Numeric(18, 9)`` gives it."""
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(_COST_FORMAT % value)


def reader_of(source: Any) -> Reader:
    """A ``Reader`` on ``source``: a Reader, or a SQLAlchemy ``Connection`` or
    ``Session`` (the statements then run in its transaction, through
    ``exec_driver_sql``: the driver's paramstyle, no type conversion)."""
    if isinstance(source, Reader):
        return source
    conn = source if hasattr(source, "exec_driver_sql") else source.connection()

    def run(sql: str, params: tuple[Any, ...]) -> Iterable[Sequence[Any]]:
        result = conn.exec_driver_sql(sql, params)
        return result.all() if result.returns_rows else ()

    name = conn.dialect.name
    return Reader(SQLITE if name == SQLITE else POSTGRESQL, run)
