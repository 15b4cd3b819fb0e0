"""SQLAlchemy 2.x typed models: the ``probe_results``, ``catalog_*`` and rollup tables.

Column names are a contract (docs/architecture.md). Every timestamp column is
``UTCDateTime``: timezone-aware UTC in Python on every backend. SQLite has no
timezone type, so it stores naive UTC text and the type re-attaches UTC on
the way out; PostgreSQL stores ``timestamp with time zone``.

``probe_results.result_id`` (not in DESIGN's list; an extension) is a unique
key the writer gives each result so that a batch replayed after a crash or an
outage is inserted exactly once (insert ... on conflict do nothing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Alembic's recommended convention: stable, portable constraint names.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY, not BIGINT.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")
COST = Numeric(18, 9)  # USD; a tiny probe costs fractions of a micro-dollar


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; naive input is taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.replace(tzinfo=None) if dialect.name == "sqlite" else aware

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # aggregates over SQLite text lose the type
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProbeResultRow(Base):
    """One probe attempt, skipped ones included (one ``ProbeResult``)."""

    __tablename__ = "probe_results"
    __table_args__ = (
        Index("ix_probe_results_target_model_started_at", "target", "model", "started_at"),
        Index("ix_probe_results_started_at", "started_at"),
        # Migration 0005: the rare substituted rows, every column the report reads.
        Index(
            "ix_probe_results_substituted",
            "started_at",
            "probe",
            "target",
            "model",
            "substituted_by",
            "location",
            sqlite_where=text("substituted_by IS NOT NULL"),
            postgresql_where=text("substituted_by IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    result_id: Mapped[str] = mapped_column(String(32), unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    location: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))
    probe: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(32))
    success: Mapped[bool] = mapped_column(Boolean)
    http_status: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    resolve_s: Mapped[float | None] = mapped_column(Float)
    connect_s: Mapped[float | None] = mapped_column(Float)
    tls_s: Mapped[float | None] = mapped_column(Float)
    processing_s: Mapped[float | None] = mapped_column(Float)
    transfer_s: Mapped[float | None] = mapped_column(Float)
    request_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    total_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[Decimal | None] = mapped_column(COST)
    ratelimit_limit: Mapped[int | None] = mapped_column(BigInteger)
    ratelimit_remaining: Mapped[int | None] = mapped_column(BigInteger)
    retry_after_s: Mapped[float | None] = mapped_column(Float)
    finish_reason: Mapped[str | None] = mapped_column(String(64))
    response_model: Mapped[str | None] = mapped_column(String(255))
    # Migration 0004: the tokens kind, the resets, and a substituted answer.
    ratelimit_reset_s: Mapped[float | None] = mapped_column(Float)
    ratelimit_limit_tokens: Mapped[int | None] = mapped_column(BigInteger)
    ratelimit_remaining_tokens: Mapped[int | None] = mapped_column(BigInteger)
    ratelimit_reset_tokens_s: Mapped[float | None] = mapped_column(Float)
    substituted_by: Mapped[str | None] = mapped_column(String(255))


class CatalogModel(Base):
    """A model a target's ``/models`` listed at least once."""

    __tablename__ = "catalog_models"
    __table_args__ = (UniqueConstraint("target", "model", name="uq_catalog_models_target_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(255))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    listed: Mapped[bool] = mapped_column(Boolean)


class CatalogEventRow(Base):
    """A real change in a target's model list: ``added`` or ``removed``."""

    __tablename__ = "catalog_events"
    __table_args__ = (Index("ix_catalog_events_target_at", "target", "at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    location: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(255))  # "" for a summary event
    change: Mapped[str] = mapped_column(String(16))
    # How many models the event stands for: 1, or more for the one summary
    # event of a listing's changes beyond max_models (migration 0003).
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class RollupHourly(Base):
    """Aggregates of one UTC hour (``span = 'hour'``) or one complete UTC day
    (``span = 'day'``, ``hour`` = midnight) of ``probe_results`` per
    location/target/probe/model. Day rows are merged from hour rows, so a
    30-day report reads about 30 rows per model instead of 720. Two coarser
    levels are merged from the day rows (migration 0005, no column change):
    ``span = 'tday'`` (one UTC day of every model of a target, ``model =
    '*'``) and ``span = 'month'`` (one complete UTC month of one model,
    ``hour`` = 00:00 on the 1st); see ``monitor.store.rollup``.

    ``latency_hist`` is a sparse JSON object {bucket index: count} over the
    fixed log buckets of ``monitor.store.histogram``, so percentiles over
    merged hours stay honest (within the bucket error bound). ``p50_s`` ..
    ``p99_s`` are the exact percentiles of an hour (from the histogram for a
    day). ``unpriced`` counts rows that spent tokens but have no cost (cost
    unknown, never 0).
    """

    __tablename__ = "probe_rollup_hourly"

    span: Mapped[str] = mapped_column(String(8), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    target: Mapped[str] = mapped_column(String(64), primary_key=True)
    probe: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    probes: Mapped[int] = mapped_column(Integer)
    successes: Mapped[int] = mapped_column(Integer)
    outcomes: Mapped[str] = mapped_column(Text)  # JSON {outcome: count}
    p50_s: Mapped[float | None] = mapped_column(Float)
    p95_s: Mapped[float | None] = mapped_column(Float)
    p99_s: Mapped[float | None] = mapped_column(Float)
    latency_hist: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    total_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[Decimal] = mapped_column(COST)
    unpriced: Mapped[int] = mapped_column(Integer)


class RollupState(Base):
    """Bookkeeping for ``rollup.refresh``: one row, ``name = 'hourly'``.

    ``complete_before``: hours before it are rolled up; ``last_id``: the
    highest ``probe_results.id`` seen, so rows that arrive late (a spool
    replayed after an outage) re-roll their hour.
    """

    __tablename__ = "rollup_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    complete_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_id: Mapped[int] = mapped_column(BigInteger)
