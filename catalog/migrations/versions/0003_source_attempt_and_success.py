"""sources: the last attempt and the last successful scrape, apart

A failed scrape (Reddit unreachable) used to stamp `last_run_at` like a successful one. The column
becomes `last_attempt_at`, and `last_success_at` is the last scrape that listed the source whole.
Existing rows: a source with a cursor has had a whole scan at some point (the cursor only moves
then), so its last run counts as its last success; without a cursor none is known.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.alter_column("last_run_at", new_column_name="last_attempt_at")
        batch_op.add_column(sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE sources SET last_success_at = last_attempt_at WHERE cursor IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("last_success_at")
        batch_op.alter_column("last_attempt_at", new_column_name="last_run_at")
