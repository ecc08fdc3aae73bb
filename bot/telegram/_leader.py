"""One replica at a time talks to Telegram for the bot: a lease in the shared database.

Telegram allows one ``getUpdates`` poller per bot (a second one gets "409 Conflict:
terminated by other getUpdates request", and an update fetched by one poller that
the other then confirms is lost or answered twice), and two processes flushing the
same outbox rows would send each message twice. With several Rasa replicas, each
replica's channel therefore tries to hold a lease, a row of the
``telegram_leases`` table in the tracker store's database (SQLite or PostgreSQL,
shared by the replicas): the holder polls and flushes the outbox; the others
still answer what reaches them (webhook calls, agent replies through the REST
channel) and queue what they cannot send in the shared outbox, which the holder
sends.

The holder renews the lease every ``ttl / 3`` seconds. A holder that stops
cleanly gives it up at once; one that dies is replaced once the lease expires
(``ttl`` seconds after its last renewal). A holder that cannot renew (its
database does not answer) stops polling before the lease can expire, so two
replicas never poll at the same time. Expiry compares the replicas' clocks:
keep them in sync (NTP), as for any lease.

Without an SQL tracker store (one process, the in-memory default) there is
nothing to share and the one process always holds the lease.
"""

import logging
import os
import socket
import time
import uuid
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

logger = logging.getLogger(__name__)

__all__ = ["LEASES_TABLE", "Lease", "leases_table"]

LEASES_TABLE = "telegram_leases"


def leases_table(metadata: Optional[sa.MetaData] = None) -> sa.Table:
    """One row per bot: which replica holds it, until when (Unix time)."""
    return sa.Table(
        LEASES_TABLE, metadata if metadata is not None else sa.MetaData(),
        sa.Column("bot_id", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(96), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


class Lease:
    """The lease of one bot (the token's numeric id) for this process.

    Args:
        bot_id: The bot's id.
        ttl: Seconds a lease lasts without renewal.
        holder: This process's name in the table (host, pid and a random part).
    """

    def __init__(self, bot_id: str, ttl: float = 15.0, holder: Optional[str] = None) -> None:
        self.bot_id = bot_id[:32]
        self.ttl = max(ttl, 1.0)
        self.holder = (holder or
                       f"{socket.gethostname()[:48]}:{os.getpid()}:{uuid.uuid4().hex[:8]}")[:96]
        self._engine: Optional[sa.engine.Engine] = None
        self._table: Optional[sa.Table] = None
        self._held_until = 0.0  # monotonic time until which this process may act

    @property
    def shared(self) -> bool:
        """Whether the lease lives in a database other processes may share."""
        return self._engine is not None

    def bind(self, engine: Optional[sa.engine.Engine]) -> None:
        """Keep the lease in ``engine``'s database (``None``: this process alone)."""
        if engine is None:
            return
        table = leases_table()
        table.metadata.create_all(engine, checkfirst=True)
        self._engine, self._table = engine, table

    def held(self) -> bool:
        """Whether this process holds the lease now (a third of the ttl to spare, so
        that it stops before another process may take over)."""
        if not self.shared:
            return True
        return time.monotonic() < self._held_until

    def acquire(self) -> bool:
        """Take or renew the lease; True if this process holds it afterwards.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database did not answer.
        """
        if not self.shared:
            return True
        assert self._engine is not None and self._table is not None
        t = self._table
        started = time.monotonic()
        now = time.time()
        with self._engine.begin() as conn:
            taken = conn.execute(
                t.update()
                .where(t.c.bot_id == self.bot_id,
                       sa.or_(t.c.holder == self.holder, t.c.expires_at < now))
                .values(holder=self.holder, expires_at=now + self.ttl)).rowcount
            exists = taken == 1 or conn.execute(
                sa.select(t.c.holder).where(t.c.bot_id == self.bot_id)).first() is not None
        if not exists:
            try:
                with self._engine.begin() as conn:
                    conn.execute(t.insert().values(bot_id=self.bot_id, holder=self.holder,
                                                   expires_at=now + self.ttl))
                taken = 1
            except IntegrityError:  # another replica inserted it first
                taken = 0
        if taken == 1:
            self._held_until = started + self.ttl * 2 / 3
            return True
        self._held_until = 0.0
        return False

    def release(self) -> None:
        """Give the lease up (a clean stop: another replica takes over at once)."""
        self._held_until = 0.0
        if not self.shared:
            return
        assert self._engine is not None and self._table is not None
        t = self._table
        try:
            with self._engine.begin() as conn:
                conn.execute(t.delete().where(t.c.bot_id == self.bot_id,
                                              t.c.holder == self.holder))
        except sa.exc.SQLAlchemyError:
            logger.warning("could not give up the Telegram lease; it expires in %.0f s",
                           self.ttl)
