"""The Telegram outbox table, defined once for both environments.

``bot/telegram`` (bot env, SQLAlchemy 1.4) keeps the calls it could not deliver yet
in it and sends them in order; :mod:`crm_ml.followups` (app env, SQLAlchemy 2)
queues reminders there for the running bot to send. The table lives in the
tracker store's database, beside Rasa's, not in the CRM schema; only SQLAlchemy
Core is used here, which both versions share.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_ml.contract import TELEGRAM_OUTBOX_TABLE

__all__ = ["outbox_table"]


def outbox_table(metadata: sa.MetaData | None = None) -> sa.Table:
    """The ``telegram_outbox`` table: one waiting Bot API call per row, in ``id`` order.

    Columns: ``bot_id`` (the token's number, so two bots can share a database),
    ``chat_id``, ``method`` (``sendMessage``, ...), ``params`` (JSON, see
    ``bot.telegram.encode_params``) and ``created_at`` (Unix time).
    """
    return sa.Table(
        TELEGRAM_OUTBOX_TABLE, metadata if metadata is not None else sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bot_id", sa.String(32), nullable=False),
        sa.Column("chat_id", sa.BigInteger, nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Index("ix_telegram_outbox_chat", "bot_id", "chat_id", "id"),
    )
