"""images: the settings a rejection was decided under

A rejection that depends on a setting (a blocked address, a size limit) is tried again when that
setting changes; `reject_settings` is a digest of the values it was decided under. Existing
rejections have none, so the first scrape after the upgrade tries the setting-dependent ones once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 21:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reject_settings", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("reject_settings")
