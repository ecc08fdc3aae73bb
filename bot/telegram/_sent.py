"""Replies already sent, per customer message: a turn handled again is not said twice.

Rasa sends a turn's replies as its actions run and saves the conversation when the
turn is over. A replica killed in between has answered the customer but stored
nothing, so Telegram hands the update to the next poller (it was never confirmed)
and the turn runs again. To keep the customer from reading the same answers twice,
each reply sent is written to the ``telegram_sent`` table (tracker store's
database) under the customer message's id and the reply's place in the turn; a
turn run again for a message sent before this process began skips the replies
already recorded and sends the rest. The window that remains is between a send
and its row (a few milliseconds). Rows are kept for a day.
"""

import logging
import time
from typing import Any, Dict, Optional, Text

import sqlalchemy as sa
from rasa.core.channels.channel import OutputChannel

logger = logging.getLogger(__name__)

__all__ = ["OnceOutput", "SENT_TABLE", "SentLedger", "sent_table"]

SENT_TABLE = "telegram_sent"
KEEP_SECONDS = 86_400.0


def sent_table(metadata: Optional[sa.MetaData] = None) -> sa.Table:
    """One row per reply sent: the customer message it answered and its place."""
    return sa.Table(
        SENT_TABLE, metadata if metadata is not None else sa.MetaData(),
        sa.Column("bot_id", sa.String(32), primary_key=True),
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sent_at", sa.Float, nullable=False, index=True),
    )


class SentLedger:
    """The ``telegram_sent`` rows of one bot (nothing is kept without a database)."""

    def __init__(self, bot_id: str) -> None:
        self.bot_id = bot_id[:32]
        self._engine: Optional[sa.engine.Engine] = None
        self._table: Optional[sa.Table] = None

    def bind(self, engine: Optional[sa.engine.Engine]) -> None:
        """Keep the rows in ``engine``'s database (``None``: keep nothing)."""
        if engine is None:
            return
        table = sent_table()
        table.metadata.create_all(engine, checkfirst=True)
        self._engine, self._table = engine, table

    @property
    def active(self) -> bool:
        return self._engine is not None

    def sent(self, message_id: str) -> set:
        """The places of the replies already sent for ``message_id``."""
        if self._engine is None or self._table is None:
            return set()
        t = self._table
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.seq).where(
                t.c.bot_id == self.bot_id, t.c.message_id == message_id[:64])).all()
        return {int(r[0]) for r in rows}

    def mark(self, message_id: str, seq: int) -> None:
        """Record that the reply at ``seq`` for ``message_id`` went out."""
        if self._engine is None or self._table is None:
            return
        try:
            with self._engine.begin() as conn:
                conn.execute(self._table.insert().values(
                    bot_id=self.bot_id, message_id=message_id[:64], seq=seq,
                    sent_at=time.time()))
        except sa.exc.IntegrityError:
            pass  # recorded by the run this one repeats
        except sa.exc.SQLAlchemyError:
            logger.warning("could not record a sent Telegram reply", exc_info=True)

    def prune(self, older_than: float = KEEP_SECONDS) -> None:
        """Forget replies sent more than ``older_than`` seconds ago."""
        if self._engine is None or self._table is None:
            return
        t = self._table
        with self._engine.begin() as conn:
            conn.execute(t.delete().where(t.c.sent_at < time.time() - older_than))


class OnceOutput:
    """The output channel of one turn: each reply recorded once sent, and a reply
    recorded by an earlier run of the same turn not sent again. Everything but
    ``send_response`` (what Rasa sends a turn's replies with) is the channel's own.

    Args:
        inner: The channel's output.
        ledger: Where sent replies are recorded.
        message_id: The customer message the turn answers.
        already: Places already sent (looked up for a message that may have been
            handled before; empty otherwise).
    """

    def __init__(self, inner: OutputChannel, ledger: SentLedger, message_id: str,
                 already: Optional[set] = None) -> None:
        self.inner = inner
        self.ledger = ledger
        self.message_id = message_id
        self.already = already or set()
        self._seq = 0

    def name(self) -> Text:
        return self.inner.name()

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        seq, self._seq = self._seq, self._seq + 1
        if seq in self.already:
            logger.info("Telegram reply %d of a repeated turn was sent before; skipped", seq)
            return
        await self.inner.send_response(recipient_id, message)
        self.ledger.mark(self.message_id, seq)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
