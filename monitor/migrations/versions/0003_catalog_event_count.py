"""catalog_events.count: how many models an event stands for (1, or more for a summary).

A listing writes at most ``max_models`` named events per direction; the rest
of that direction is one summary event (``model = ''``) whose ``count`` says
how many models it stands for. Existing rows are single-model events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_events") as batch:
        batch.add_column(sa.Column("count", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("catalog_events") as batch:
        batch.drop_column("count")
