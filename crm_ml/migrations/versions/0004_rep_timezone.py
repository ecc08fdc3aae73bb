"""sales reps: their own time zone for follow-ups

Revision ID: 0004_rep_timezone
Revises: 0003_sales
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_rep_timezone"
down_revision: str | None = "0003_sales"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sales_reps") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sales_reps") as batch:
        batch.drop_column("timezone")
