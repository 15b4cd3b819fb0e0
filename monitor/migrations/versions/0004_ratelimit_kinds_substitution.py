"""probe_results: the tokens rate-limit kind, reset times, and substituted answers.

``ratelimit_limit`` / ``ratelimit_remaining`` keep meaning the requests kind
(now filled from whichever header family sent it); ``ratelimit_reset_s`` is
that kind's seconds to reset. The ``_tokens`` columns are the tokens kind.
``substituted_by`` names the model that answered a chat probe for another
one. Existing rows get NULL everywhere: nothing was known.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# In table order: the writer's INSERT lists the columns as the table holds them.
COLUMNS: tuple[tuple[str, type[sa.types.TypeEngine[object]] | sa.String], ...] = (
    ("ratelimit_reset_s", sa.Float),
    ("ratelimit_limit_tokens", sa.BigInteger),
    ("ratelimit_remaining_tokens", sa.BigInteger),
    ("ratelimit_reset_tokens_s", sa.Float),
    ("substituted_by", sa.String(255)),
)


def upgrade() -> None:
    with op.batch_alter_table("probe_results") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("probe_results") as batch:
        for name, _kind in reversed(COLUMNS):
            batch.drop_column(name)
