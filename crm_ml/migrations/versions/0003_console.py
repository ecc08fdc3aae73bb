"""the agents' console: thread claims

Revision ID: 0003_console
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_console"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "thread_claims",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("thread_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"],
                                name=op.f("fk_thread_claims_agent_id_agents")),
        sa.PrimaryKeyConstraint("kind", "thread_id", name=op.f("pk_thread_claims")),
    )
    op.create_index(op.f("ix_thread_claims_agent_id"), "thread_claims", ["agent_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_thread_claims_agent_id"), table_name="thread_claims")
    op.drop_table("thread_claims")
