"""Data-subject rights: export everything held about a customer, or erase it.

``export`` gathers the customer's rows from every CRM table plus the Rasa
tracker store's events of the customer's conversations. ``erase`` removes the
conversations (interactions, escalations, tickets, channel links, tracker
events) and the model outputs about the customer, and anonymizes the customer
row; orders stay for the accounts (a legal duty) but point at the anonymized
row. Both are audited.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

from sqlalchemy import create_engine, delete, inspect, or_, select, text
from sqlalchemy.orm import Session

from crm_ml.config import get_settings
from crm_ml.db import models as m
from crm_ml.errors import NotFound
from crm_ml.handoff import audit

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


def _tracker_events(url: str | None, senders: set[str]) -> list[dict[str, Any]]:
    engine = _tracker_engine(url)
    if engine is None or not senders:
        return []
    try:
        if "events" not in inspect(engine).get_table_names():
            return []
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT sender_id, data FROM events WHERE sender_id IN :ids ORDER BY id")
                .bindparams(_expanding("ids")), {"ids": sorted(senders)}).all()
        return [{"sender_id": r.sender_id, **json.loads(r.data)} for r in rows]
    finally:
        engine.dispose()


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
        "conversation_events": _tracker_events(tracker_url, senders),
    }
    audit(session=session, actor=actor, action="gdpr_export", entity="customers",
          entity_id=str(customer_id))
    return data


def erase(*, session: Session, customer_id: int, tracker_url: str | None = None,
          actor: str = "cli") -> dict[str, int]:
    """Erase or anonymize everything about ``customer_id``; return counts per table.

    Raises:
        NotFound: no such customer.
    """
    customer = session.get(m.Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id}")
    senders = sender_ids(session=session, customer_id=customer_id)
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
    counts["tracker_events"] = _erase_tracker_events(tracker_url, senders)
    audit(session=session, actor=actor, action="gdpr_erase", entity="customers",
          entity_id=str(customer_id), details={"conversations": len(senders)})
    logger.info("erased customer data (%d conversations)", len(senders))
    return counts


def _erase_tracker_events(url: str | None, senders: set[str]) -> int:
    engine = _tracker_engine(url)
    if engine is None or not senders:
        return 0
    try:
        if "events" not in inspect(engine).get_table_names():
            return 0
        with engine.begin() as conn:
            return conn.execute(text("DELETE FROM events WHERE sender_id IN :ids")
                                .bindparams(_expanding("ids")),
                                {"ids": sorted(senders)}).rowcount
    finally:
        engine.dispose()
