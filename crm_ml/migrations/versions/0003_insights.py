"""the papers' remaining models: lifetime value, unusual activity, topics, next-best-action

Revision ID: 0003_insights
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_insights"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_values",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("prob_alive", sa.Float(), nullable=False),
        sa.Column("purchases_6m", sa.Float(), nullable=False),
        sa.Column("spend_6m", sa.Float(), nullable=False),
        sa.Column("purchases_12m", sa.Float(), nullable=False),
        sa.Column("spend_12m", sa.Float(), nullable=False),
        sa.Column("avg_order_value", sa.Float(), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("scored_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_customer_values_customer_id_customers")),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_values")),
    )
    op.create_index(op.f("ix_customer_values_spend_6m"), "customer_values", ["spend_6m"],
                    unique=False)
    op.create_table(
        "unusual_activity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("invoice", sa.String(length=32), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("country", sa.String(length=60), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("quantity", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unusual_activity")),
    )
    for column in ("scope", "customer_id", "occurred_at"):
        op.create_index(op.f(f"ix_unusual_activity_{column}"), "unusual_activity", [column],
                        unique=False)
    op.create_table(
        "feedback_topics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("top_terms", sa.JSON(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_topics")),
    )
    op.create_table(
        "topic_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("written_at", sa.DateTime(), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["topic_id"], ["feedback_topics.id"],
                                name=op.f("fk_topic_assignments_topic_id_feedback_topics")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topic_assignments")),
    )
    for column in ("topic_id", "source", "written_at"):
        op.create_index(op.f(f"ix_topic_assignments_{column}"), "topic_assignments", [column],
                        unique=False)
    op.create_table(
        "next_best_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("expected_rate", sa.Float(), nullable=True),
        sa.Column("uplift", sa.Float(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("scored_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_next_best_actions_customer_id_customers")),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"],
                                name=op.f("fk_next_best_actions_lead_id_leads")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_next_best_actions")),
    )
    for column in ("lead_id", "customer_id"):
        op.create_index(op.f(f"ix_next_best_actions_{column}"), "next_best_actions", [column],
                        unique=False)


def downgrade() -> None:
    for column in ("lead_id", "customer_id"):
        op.drop_index(op.f(f"ix_next_best_actions_{column}"), table_name="next_best_actions")
    op.drop_table("next_best_actions")
    for column in ("topic_id", "source", "written_at"):
        op.drop_index(op.f(f"ix_topic_assignments_{column}"), table_name="topic_assignments")
    op.drop_table("topic_assignments")
    op.drop_table("feedback_topics")
    for column in ("scope", "customer_id", "occurred_at"):
        op.drop_index(op.f(f"ix_unusual_activity_{column}"), table_name="unusual_activity")
    op.drop_table("unusual_activity")
    op.drop_index(op.f("ix_customer_values_spend_6m"), table_name="customer_values")
    op.drop_table("customer_values")
