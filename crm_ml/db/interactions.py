"""Writing conversation messages into the CRM's ``interactions``, idempotently.

One function, :func:`store_rows`, shared by the two writers of conversation events:
Rasa's event broker in the bot env (:mod:`bot.broker`, SQLAlchemy 1.4) and the
RabbitMQ consumer in the app env (:mod:`crm_ml.events`, SQLAlchemy 2). It uses
SQLAlchemy Core on reflected tables, which both versions run the same way.

A row is stored once per ``event_id`` (the user message id, or a digest of a bot
message): a re-published or re-delivered event is ignored. Rows from a sender linked
to a customer or rep (``channel_identities``) get that link; a customer who is
unknown or erased (GDPR) is not linked.
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

__all__ = ["COLUMNS", "store_rows"]

#: The columns a row carries (the event broker builds them from Rasa's events).
COLUMNS = ("event_id", "sender_id", "text", "kind", "direction", "channel", "created_at",
           "intent", "sentiment", "sentiment_confidence", "customer_id", "rep_id", "lead_id")

_TABLES: dict[int, tuple[sa.Table, sa.Table]] = {}
_LOCK = threading.Lock()


def _tables(engine: Any) -> tuple[sa.Table, sa.Table]:
    """``interactions`` and ``channel_identities`` as reflected once per engine."""
    key = id(engine)
    with _LOCK:
        if key not in _TABLES:
            _TABLES[key] = (sa.Table("interactions", sa.MetaData(), autoload_with=engine),
                            sa.Table("channel_identities", sa.MetaData(),
                                     autoload_with=engine))
        return _TABLES[key]


def store_rows(engine: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``interactions`` in one transaction; known event ids are skipped.

    Args:
        engine: A SQLAlchemy engine (1.4 with ``future=True``, or 2.x) on the CRM.
        rows: Dicts with the keys of :data:`COLUMNS` (modified in place: links filled).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database is unreachable or refuses a row;
            nothing of the batch is stored then.
    """
    if not rows:
        return
    table, links_table = _tables(engine)
    with engine.begin() as conn:
        unlinked = {r["sender_id"] for r in rows
                    if r["customer_id"] is None and r["rep_id"] is None}
        links = {}
        if unlinked:
            links = {link.sender_id: link for link in conn.execute(
                sa.select(links_table.c.sender_id, links_table.c.customer_id,
                          links_table.c.rep_id)
                .where(links_table.c.sender_id.in_(sorted(unlinked))))}
        for row in rows:
            link = links.get(row["sender_id"])
            if link is not None and row["customer_id"] is None and row["rep_id"] is None:
                row["customer_id"], row["rep_id"] = link.customer_id, link.rep_id
        wanted = {r["customer_id"] for r in rows if r["customer_id"] is not None}
        known = set()
        if wanted:
            known = {cid for (cid,) in conn.execute(
                sa.text("SELECT id FROM customers WHERE id IN :ids AND NOT anonymized")
                .bindparams(sa.bindparam("ids", expanding=True)), {"ids": sorted(wanted)})}
        for row in rows:
            if row["customer_id"] is not None and row["customer_id"] not in known:
                row["customer_id"] = None  # signed, but unknown to the CRM or erased
        if engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(table).on_conflict_do_nothing(index_elements=["event_id"])
        else:
            stmt = sa.insert(table).prefix_with("OR IGNORE")
        conn.execute(stmt, rows)
        linked = sorted({r["event_id"] for r in rows if r["customer_id"] is not None})
        if linked:
            # An erasure may have committed between the check above and the insert
            # (SQLite runs that SELECT outside the write transaction): checked again
            # now that this transaction holds the write lock.
            conn.execute(sa.text(
                "UPDATE interactions SET customer_id = NULL WHERE event_id IN :ids "
                "AND customer_id IN (SELECT id FROM customers WHERE anonymized)")
                .bindparams(sa.bindparam("ids", expanding=True)), {"ids": linked})
