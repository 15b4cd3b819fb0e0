"""Hourly and daily rollup of probe_results (kept 400 days) and its bookkeeping row.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "probe_rollup_hourly",
        sa.Column("span", sa.String(8), nullable=False),
        sa.Column("hour", UTC_TS, nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("probe", sa.String(32), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("probes", sa.Integer(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("outcomes", sa.Text(), nullable=False),
        sa.Column("p50_s", sa.Float(), nullable=True),
        sa.Column("p95_s", sa.Float(), nullable=True),
        sa.Column("p99_s", sa.Float(), nullable=True),
        sa.Column("latency_hist", sa.Text(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(18, 9), nullable=False),
        sa.Column("unpriced", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "span",
            "hour",
            "location",
            "target",
            "probe",
            "model",
            name=op.f("pk_probe_rollup_hourly"),
        ),
    )
    op.create_table(
        "rollup_state",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("complete_before", UTC_TS, nullable=True),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rollup_state")),
    )


def downgrade() -> None:
    op.drop_table("rollup_state")
    op.drop_table("probe_rollup_hourly")
