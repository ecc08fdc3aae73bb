"""helpdesk: ratings of resolved threads, anonymous visitors' e-mails

Revision ID: 0003_helpdesk
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_helpdesk"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversation_ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("escalation_id", sa.Integer(), nullable=True),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["escalation_id"], ["escalations.id"],
                                name=op.f("fk_conversation_ratings_escalation_id_escalations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_ratings")),
    )
    op.create_index(op.f("ix_conversation_ratings_escalation_id"), "conversation_ratings",
                    ["escalation_id"], unique=False)
    op.create_index(op.f("ix_conversation_ratings_sender_id"), "conversation_ratings",
                    ["sender_id"], unique=False)
    op.create_table(
        "visitor_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visitor_contacts")),
        sa.UniqueConstraint("sender_id", name=op.f("uq_visitor_contacts_sender_id")),
    )


def downgrade() -> None:
    op.drop_table("visitor_contacts")
    op.drop_index(op.f("ix_conversation_ratings_sender_id"), table_name="conversation_ratings")
    op.drop_index(op.f("ix_conversation_ratings_escalation_id"),
                  table_name="conversation_ratings")
    op.drop_table("conversation_ratings")
