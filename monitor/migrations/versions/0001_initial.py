"""Initial schema: probe_results, catalog_models, catalog_events.

Revision ID: 0001
Revises:
Create Date: 2025-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "probe_results",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("result_id", sa.String(32), nullable=False),
        sa.Column("started_at", UTC_TS, nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("probe", sa.String(32), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("resolve_s", sa.Float(), nullable=True),
        sa.Column("connect_s", sa.Float(), nullable=True),
        sa.Column("tls_s", sa.Float(), nullable=True),
        sa.Column("processing_s", sa.Float(), nullable=True),
        sa.Column("transfer_s", sa.Float(), nullable=True),
        sa.Column("request_id", sa.String(255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(18, 9), nullable=True),
        sa.Column("ratelimit_limit", sa.BigInteger(), nullable=True),
        sa.Column("ratelimit_remaining", sa.BigInteger(), nullable=True),
        sa.Column("retry_after_s", sa.Float(), nullable=True),
        sa.Column("finish_reason", sa.String(64), nullable=True),
        sa.Column("response_model", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_results")),
        sa.UniqueConstraint("result_id", name=op.f("uq_probe_results_result_id")),
    )
    op.create_index(
        "ix_probe_results_target_model_started_at",
        "probe_results",
        ["target", "model", "started_at"],
    )
    op.create_index("ix_probe_results_started_at", "probe_results", ["started_at"])

    op.create_table(
        "catalog_models",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("first_seen", UTC_TS, nullable=False),
        sa.Column("last_seen", UTC_TS, nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_models")),
        sa.UniqueConstraint("target", "model", name="uq_catalog_models_target_model"),
    )

    op.create_table(
        "catalog_events",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("at", UTC_TS, nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_events")),
    )
    op.create_index("ix_catalog_events_target_at", "catalog_events", ["target", "at"])


def downgrade() -> None:
    op.drop_index("ix_catalog_events_target_at", table_name="catalog_events")
    op.drop_table("catalog_events")
    op.drop_table("catalog_models")
    op.drop_index("ix_probe_results_started_at", table_name="probe_results")
    op.drop_index("ix_probe_results_target_model_started_at", table_name="probe_results")
    op.drop_table("probe_results")
