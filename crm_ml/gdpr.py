"""Data-subject rights: export everything held about a customer, or erase it.

``export`` gathers the customer's rows from every CRM table, the audit entries
about them or made in their conversations, plus what the Rasa tracker store's
database holds of the customer's conversations: their events, and the Telegram
messages still waiting in ``telegram_outbox`` (kept there by ``bot/telegram/_outbox.py``
while Telegram is unreachable). ``erase`` removes the conversations
(interactions, escalations, tickets, channel links, tracker events, waiting
Telegram messages) and the model outputs about the customer, and anonymizes the
customer row; orders stay for the accounts (a legal duty) but point at the
anonymized row. Both are audited.

The audit log keeps who did what and when, erasures included, so its rows stay;
but the conversation ids in them (the actor of ``verified``, ``cancel_order``,
``open_ticket``..., a Telegram chat id or a phone call's id) are personal data
that would tie the pseudonymous customer number back to a person. ``erase``
replaces each by :func:`chat_actor`'s keyed pseudonym, the same one its own
``gdpr_erase`` entry gets when the erasure is asked for in a chat: the entries
of one conversation still read as one actor, and nobody without
``CRM_IDENTITY_SECRET`` can tell which.

``erase_own_account`` is the same erasure asked for by a verified customer in a
chat. That conversation is live: Rasa holds its tracker in memory and saves it
after the action returns, and its SQL tracker store appends the events beyond
the number of rows it finds for the conversation (and publishes them to the
event broker). Deleting the rows would make Rasa write the whole conversation
back, e-mail address included, and the broker store it again as interactions.
So the live conversation's stored events are redacted in place instead: each
row keeps its type and time, and loses text, slot values, entities and
metadata. The action then starts a new session, so Rasa never loads the
redacted rows again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from typing import Any

from sqlalchemy import create_engine, delete, inspect, or_, select, text
from sqlalchemy.orm import Session

from crm_ml.audit import audit
from crm_ml.authz import Forbidden
from crm_ml.config import get_settings
from crm_ml.contract import TELEGRAM_OUTBOX_TABLE, TELEGRAM_PREFIX, TELEGRAM_SENT_TABLE
from crm_ml.db import models as m
from crm_ml.db.models_helpdesk import VisitorContact
from crm_ml.errors import CRMUnavailable, NotFound
from crm_ml.identity import Identity
from crm_ml.mail import erase_contact

__all__ = [
    "chat_actor",
    "erase",
    "erase_own_account",
    "export",
    "redact_event",
    "sender_ids",
    "telegram_chats",
]

logger = logging.getLogger(__name__)


def _plain(obj: Any) -> dict[str, Any]:
    out = {}
    for col in obj.__table__.columns:
        value = getattr(obj, col.key)
        if isinstance(value, (dt.date, dt.datetime)):
            value = value.isoformat()
        elif hasattr(value, "is_finite"):  # Decimal
            value = float(value)
        out[col.key] = value
    return out


def sender_ids(*, session: Session, customer_id: int) -> set[str]:
    """Every conversation id known to belong to the customer."""
    ids: set[str] = set()
    for model in (m.Interaction, m.Escalation, m.Ticket, m.ChannelIdentity):
        ids |= {s for s in session.scalars(
            select(model.sender_id).where(model.customer_id == customer_id)) if s}
    return ids


def _tracker_engine(url: str | None):  # noqa: ANN202 - SQLAlchemy engine
    url = url or get_settings().tracker_db_url
    return create_engine(url) if url else None


def telegram_chats(senders: set[str]) -> dict[int, str]:
    """The Telegram chat ids among ``senders``, each with its sender id."""
    chats: dict[int, str] = {}
    for sender in senders:
        if sender.startswith(TELEGRAM_PREFIX):
            try:
                chats[int(sender[len(TELEGRAM_PREFIX):])] = sender
            except ValueError:
                continue
    return chats


def _tracker_data(url: str | None, senders: set[str]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The stored events of ``senders``, and the Telegram messages waiting for them."""
    engine = _tracker_engine(url)
    if engine is None or not senders:
        return [], []
    try:
        tables = set(inspect(engine).get_table_names())
        events: list[dict[str, Any]] = []
        waiting: list[dict[str, Any]] = []
        with engine.connect() as conn:
            if "events" in tables:
                rows = conn.execute(
                    text("SELECT sender_id, data FROM events WHERE sender_id IN :ids "
                         "ORDER BY id").bindparams(_expanding("ids")),
                    {"ids": sorted(senders)}).all()
                events = [{"sender_id": r.sender_id, **json.loads(r.data)} for r in rows]
            chats = telegram_chats(senders)
            if TELEGRAM_OUTBOX_TABLE in tables and chats:
                rows = conn.execute(
                    text("SELECT chat_id, method, params, created_at "
                         f"FROM {TELEGRAM_OUTBOX_TABLE} WHERE chat_id IN :chats ORDER BY id"
                         ).bindparams(_expanding("chats")),
                    {"chats": sorted(chats)}).all()
                waiting = [{"sender_id": chats[int(r.chat_id)], "method": r.method,
                            "params": _json_or_text(r.params),
                            "created_at": _timestamp(r.created_at)} for r in rows]
        return events, waiting
    finally:
        engine.dispose()


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def _timestamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(float(seconds), dt.UTC).isoformat(timespec="seconds")


def _about(customer_id: int, senders: set[str]) -> Any:
    """The audit entries about the customer or made in the customer's conversations."""
    return or_(m.AuditLog.actor.in_(senders),
               (m.AuditLog.entity == "customers") & (m.AuditLog.entity_id == str(customer_id)),
               (m.AuditLog.entity == "channel_identities")
               & m.AuditLog.entity_id.in_({s[:64] for s in senders}))


def _expanding(name: str):  # noqa: ANN202
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


def export(*, session: Session, customer_id: int, tracker_url: str | None = None,
           actor: str = "cli") -> dict[str, Any]:
    """Everything held about ``customer_id`` as one JSON-ready dict.

    Raises:
        NotFound: no such customer.
    """
    customer = session.get(m.Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id}")
    orders = list(session.scalars(select(m.Order).where(m.Order.customer_id == customer_id)
                                  .order_by(m.Order.invoiced_at)))
    order_ids = [o.id for o in orders]
    lines = list(session.scalars(select(m.OrderLine).where(m.OrderLine.order_id.in_(order_ids))
                                 .order_by(m.OrderLine.id))) if order_ids else []
    senders = sender_ids(session=session, customer_id=customer_id)

    def rows(model: Any, *where: Any) -> list[dict[str, Any]]:
        return [_plain(r) for r in session.scalars(select(model).where(*where))]

    events, waiting = _tracker_data(tracker_url, senders)
    data = {
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "customer": _plain(customer),
        "account": rows(m.Account, m.Account.customer_id == customer_id),
        "orders": [_plain(o) for o in orders],
        "order_lines": [_plain(x) for x in lines],
        "tickets": rows(m.Ticket, m.Ticket.customer_id == customer_id),
        "interactions": rows(m.Interaction, or_(m.Interaction.customer_id == customer_id,
                                                m.Interaction.sender_id.in_(senders))),
        "escalations": rows(m.Escalation, or_(m.Escalation.customer_id == customer_id,
                                              m.Escalation.sender_id.in_(senders))),
        "channel_identities": rows(m.ChannelIdentity,
                                   m.ChannelIdentity.customer_id == customer_id),
        "segment": rows(m.Segment, m.Segment.customer_id == customer_id),
        "churn_score": rows(m.ChurnScore, m.ChurnScore.customer_id == customer_id),
        "recommendations": rows(m.Recommendation, m.Recommendation.customer_id == customer_id),
        "audit_log": [_plain(r) for r in session.scalars(
            select(m.AuditLog).where(_about(customer_id, senders)).order_by(m.AuditLog.id))],
        "visitor_contacts": rows(VisitorContact, VisitorContact.sender_id.in_(senders)),
        "conversation_events": events,
        "telegram_outbox": waiting,
    }
    audit(session=session, actor=actor, action="gdpr_export", entity="customers",
          entity_id=str(customer_id))
    return data


def erase(*, session: Session, customer_id: int, tracker_url: str | None = None,
          actor: str = "cli", live_sender: str | None = None) -> dict[str, int]:
    """Erase or anonymize everything about ``customer_id``; return counts per table.

    Args:
        session: The caller's transaction.
        customer_id: The customer to erase.
        tracker_url: Rasa's SQL tracker store (default: ``tracker_db_url``).
        actor: Who asked, for the audit log.
        live_sender: The conversation the request came from, if any: its
            tracker events are redacted in place rather than deleted (see the
            module docstring), and its messages go with the customer's even
            when they were sent before the customer was verified.

    Raises:
        NotFound: no such customer.
    """
    customer = session.get(m.Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id}")
    senders = sender_ids(session=session, customer_id=customer_id)
    if live_sender:
        senders.add(live_sender)
    counts: dict[str, int] = {}
    by_customer_or_sender = {
        m.Interaction: or_(m.Interaction.customer_id == customer_id,
                           m.Interaction.sender_id.in_(senders)),
        m.Escalation: or_(m.Escalation.customer_id == customer_id,
                          m.Escalation.sender_id.in_(senders)),
        m.Ticket: or_(m.Ticket.customer_id == customer_id, m.Ticket.sender_id.in_(senders)),
    }
    for model, where in by_customer_or_sender.items():
        counts[model.__tablename__] = session.execute(delete(model).where(where)).rowcount
    counts["visitor_contacts"] = erase_contact(session=session, sender_ids=senders)
    for model in (m.ChannelIdentity, m.Recommendation, m.ChurnScore, m.Segment):
        counts[model.__tablename__] = session.execute(
            delete(model).where(model.customer_id == customer_id)).rowcount
    token = hashlib.sha256(f"erased:{customer_id}".encode()).hexdigest()[:12]
    customer.name = "Erased customer"
    customer.email = f"erased-{token}@invalid"
    customer.phone = None
    customer.shipping_address = None
    customer.anonymized = True
    account = session.scalar(select(m.Account).where(m.Account.customer_id == customer_id))
    if account is not None:
        account.name = "Erased customer"
    counts["audit_log"] = _pseudonymize_audit(session, senders)
    counts.update(_erase_conversations(tracker_url, senders, live_sender))
    audit(session=session, actor=actor, action="gdpr_erase", entity="customers",
          entity_id=str(customer_id), details={"conversations": len(senders),
                                               "from_chat": live_sender is not None})
    logger.info("erased customer data (%d conversations)", len(senders))
    return counts


def chat_actor(sender_id: str) -> str:
    """The audit actor for a chat's sender without the sender id itself: ``tg:1a2b...``.

    The channel namespace stays readable; the rest is a keyed hash (under
    ``CRM_IDENTITY_SECRET``), stable for one sender, so that an erasure's audit
    entry does not link the erased customer to a Telegram chat id or a phone call.
    """
    namespace, sep, _ = sender_id.partition(":")
    digest = hmac.new(get_settings().identity_secret.encode(), sender_id.encode(),
                      hashlib.sha256).hexdigest()[:16]
    return f"{namespace}:{digest}" if sep and namespace.isalnum() else f"chat:{digest}"


def _pseudonymize_audit(session: Session, senders: set[str]) -> int:
    """Replace the conversation ids in audit entries by their :func:`chat_actor`.

    The entries stay (who did what, when); a conversation's id no longer appears
    as an actor, nor as the subject of a ``verify_blocked`` entry.
    """
    if not senders:
        return 0
    short = {s[:64]: s for s in senders}
    entries = session.scalars(select(m.AuditLog).where(or_(
        m.AuditLog.actor.in_(senders),
        (m.AuditLog.entity == "channel_identities") & m.AuditLog.entity_id.in_(short))))
    changed = 0
    for entry in entries:
        if entry.actor in senders:
            entry.actor = chat_actor(entry.actor)
        if entry.entity == "channel_identities" and entry.entity_id in short:
            entry.entity_id = chat_actor(short[entry.entity_id])[:64]
        changed += 1
    return changed


def erase_own_account(*, session: Session, identity: Identity, sender_id: str,
                      tracker_url: str | None = None) -> dict[str, int]:
    """Carry out a verified customer's own erasure request from a chat.

    The same erasure as ``crm-ml gdpr erase``, audited as ``gdpr_erase`` with
    :func:`chat_actor` of the sender as the actor; the conversation ``sender_id``
    is treated as live (see :func:`erase`).

    Raises:
        Forbidden: the caller is not a customer (anonymous callers verify first;
            staff cannot erase customers from a chat).
        NotFound: the customer is not in the CRM.
    """
    if identity.role != "customer" or identity.number is None:
        raise Forbidden(f"{identity.role} may not erase an account from a chat")
    return erase(session=session, customer_id=identity.number, tracker_url=tracker_url,
                 actor=chat_actor(sender_id), live_sender=sender_id)


_KEPT_KEYS = ("event", "timestamp", "name", "policy", "confidence", "hide_rule_turn",
              "input_channel", "use_text_for_featurization", "is_interrupted",
              "kill_on_user_msg")


def redact_event(data: dict[str, Any]) -> dict[str, Any]:
    """A stored Rasa event without anything a person said or gave.

    The event keeps its type, time and the names of actions, slots and loops
    (so Rasa still reads it back); texts, slot values, entities, parse data
    and metadata go.
    """
    out = {key: data[key] for key in _KEPT_KEYS if key in data}
    kind = data.get("event")
    if kind == "user":
        out.update(text=None, parse_data={"intent": {}, "entities": []}, metadata={})
    elif kind == "bot":
        out.update(text=None, data={}, metadata={})
    elif kind == "slot":
        out["value"] = None
    elif kind == "entities":
        out["entities"] = []
    elif kind == "action":
        out.update(metadata={}, action_text=None)
    return out


def _erase_conversations(url: str | None, senders: set[str],
                         live_sender: str | None = None) -> dict[str, int]:
    """Delete the events of ``senders`` except the live one's, which are redacted, and
    the Telegram messages still waiting for any of them (the live one's too).

    Returns:
        Counts: ``tracker_events`` (deleted or redacted), ``telegram_outbox``.

    Raises:
        CRMUnavailable: the live conversation has no events in this tracker store:
            it is not the store Rasa uses (``CRM_TRACKER_DB_URL``), and saying
            "erased" would be untrue.
    """
    counts = {"tracker_events": 0, "telegram_outbox": 0}
    engine = _tracker_engine(url)
    if engine is None or not senders:
        return counts
    try:
        tables = set(inspect(engine).get_table_names())
        if "events" not in tables and live_sender:
            raise CRMUnavailable(_NOT_RASAS_STORE)
        gone = sorted(senders - {live_sender})
        chats = sorted(telegram_chats(senders))
        with engine.begin() as conn:
            if "events" in tables:
                n = _redact_rows(conn, live_sender) if live_sender else 0
                if live_sender and not n:
                    raise CRMUnavailable(_NOT_RASAS_STORE)
                if gone:
                    n += conn.execute(text("DELETE FROM events WHERE sender_id IN :ids")
                                      .bindparams(_expanding("ids")), {"ids": gone}).rowcount
                counts["tracker_events"] = n
            if TELEGRAM_OUTBOX_TABLE in tables and chats:
                # Every bot's rows: the chat id is the person, whichever bot talks to them.
                # A running Telegram channel may still count them as waiting: its next
                # flush finds the chat's queue empty and forgets them.
                counts["telegram_outbox"] = conn.execute(
                    text(f"DELETE FROM {TELEGRAM_OUTBOX_TABLE} WHERE chat_id IN :chats")
                    .bindparams(_expanding("chats")), {"chats": chats}).rowcount
            if TELEGRAM_SENT_TABLE in tables:  # which replies went out, by message id
                for chat in chats:
                    conn.execute(text(f"DELETE FROM {TELEGRAM_SENT_TABLE} "
                                      "WHERE message_id LIKE :prefix"),
                                 {"prefix": f"{TELEGRAM_PREFIX}{chat}:%"})
        return counts
    finally:
        engine.dispose()


_NOT_RASAS_STORE = ("the tracker store holds nothing of the conversation asking for erasure: "
                    "is CRM_TRACKER_DB_URL the store in endpoints.yml?")


def _redact_rows(conn: Any, sender_id: str) -> int:
    rows = conn.execute(text("SELECT id, type_name, timestamp, data FROM events "
                             "WHERE sender_id = :s"), {"s": sender_id}).all()
    for row in rows:
        try:
            data = json.loads(row.data)
        except (TypeError, ValueError):
            data = None
        if not isinstance(data, dict):
            data = {"event": row.type_name, "timestamp": row.timestamp}
        conn.execute(text("UPDATE events SET data = :d, intent_name = NULL WHERE id = :id"),
                     {"d": json.dumps(redact_event(data)), "id": row.id})
    return len(rows)
