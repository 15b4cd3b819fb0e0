"""Reports over a year: a partial index for substitutions, per-target and month rollup rows.

``nexomon report --by model`` reads which models answered chat probes for
another one (``monitor.cli.report_substitutions``) from the raw rows. With
only ``ix_probe_results_started_at`` that query visited every raw row in the
window: over 30 days of 100 models at one probe a minute (4.3 M rows) it took
most of a 365-day report (benchmarks/history.py). This index holds only the
rows with ``substituted_by`` set (rare) and every column the query reads, so
SQLite and PostgreSQL answer from the index alone.

``probe_rollup_hourly`` gets two coarser levels, merged from its day rows
(``monitor.store.rollup``): ``span = 'tday'`` (one row per day and target,
``model = '*'``) and ``span = 'month'`` (one row per complete month and
model). No column changes; the upgrade builds them for the day rows already
stored (``rollup.backfill_levels``), the downgrade deletes them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_probe_results_substituted"
COLUMNS = ["started_at", "probe", "target", "model", "substituted_by", "location"]
WHERE = sa.text("substituted_by IS NOT NULL")


def upgrade() -> None:
    from monitor.store.rollup import backfill_levels

    op.create_index(NAME, "probe_results", COLUMNS, sqlite_where=WHERE, postgresql_where=WHERE)
    backfill_levels(op.get_bind())


def downgrade() -> None:
    op.execute("DELETE FROM probe_rollup_hourly WHERE span IN ('tday', 'month')")
    op.drop_index(NAME, table_name="probe_results")
