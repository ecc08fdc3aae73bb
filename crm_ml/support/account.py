"""A customer's account and conversation tickets: address, account changes, erasure, complaints."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_ml.audit import audit
from crm_ml.authz import active_customer
from crm_ml.db import models as m
from crm_ml.identity import Identity
from crm_ml.support.checks import (
    InvalidRequest,
    clean_address,
    clean_email,
    clean_order_id,
    clean_text,
)
from crm_ml.support.common import open_ticket_for, own_customer
from crm_ml.tickets import open_ticket

__all__ = [
    "TICKET_KINDS",
    "open_customer_ticket",
    "request_account_change",
    "request_erasure",
    "set_shipping_address",
]

logger = logging.getLogger(__name__)


TICKET_KINDS = frozenset({"complaint", "review", "refund", "invoice", "erasure",
                          "account_change", "order_change", "payment", "newsletter"})
"""Kinds of ticket a customer's conversation may open."""


def set_shipping_address(*, session: Session, identity: Identity, address: str,
                         actor: str) -> bool:
    """Store the caller's shipping address; True when it replaced an earlier one.

    The audit entry records that the address changed, never the address.

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: the customer is not in the CRM.
        InvalidRequest: ``address`` is not an address (see :func:`clean_address`).
    """
    text = clean_address(address)
    if text is None:
        raise InvalidRequest("not an address")
    customer = own_customer(session, identity)
    replaced = bool(customer.shipping_address)
    customer.shipping_address = text
    audit(session=session, actor=actor, action="set_shipping_address", entity="customers",
          entity_id=str(customer.id), details={"replaced": replaced})
    return replaced


def open_customer_ticket(*, session: Session, identity: Identity, kind: str, text: str,
                         sender_id: str, order_id: str | None = None,
                         subject: str | None = None) -> int:
    """Open a ticket from a customer's conversation; return its id.

    Anyone may open one (a complaint needs no verification); the ticket is tied
    to the customer only when the caller is one, and to an order only when that
    order is theirs. Another order number is kept in the text, marked unverified.

    Raises:
        InvalidRequest: unknown ``kind``.
    """
    if kind not in TICKET_KINDS:
        raise InvalidRequest(f"ticket kind {kind!r}")
    body = clean_text(text)
    customer_id = active_customer(identity, session=session)  # an erased one: anonymous
    linked = None
    oid = clean_order_id(order_id) if order_id else None
    if oid is not None:
        owner = session.scalar(select(m.Order.customer_id).where(m.Order.id == oid))
        if customer_id is not None and owner == customer_id:
            linked = oid
        else:
            body = f"{body}\n(Order number mentioned, not verified: {oid})".strip()
    title = subject or f"{kind.replace('_', ' ').capitalize()} from the chat"
    if linked:
        title = f"{title} (order {linked})"
    ticket = open_ticket(session=session, kind=kind, subject=title, body=body,
                         customer_id=customer_id, sender_id=sender_id, order_id=linked,
                         actor=sender_id)
    return ticket.id


def request_account_change(*, session: Session, identity: Identity, request: str,
                           new_email: str | None, sender_id: str) -> int:
    """Record a request to change account details (a new e-mail is confirmed by a person).

    The new e-mail goes into the ticket for the team, never into the audit log.

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: the customer is not in the CRM.
    """
    customer = own_customer(session, identity)
    email = clean_email(new_email) if new_email else None
    body = clean_text(request)
    if email:
        body = f"{body}\nNew e-mail address requested: {email}".strip()
    subject = "E-mail change request" if email else "Account details change request"
    ticket = open_ticket(session=session, kind="account_change", subject=subject, body=body,
                         customer_id=customer.id, sender_id=sender_id, actor=sender_id)
    audit(session=session, actor=sender_id, action="account_change_requested",
          entity="customers", entity_id=str(customer.id),
          details={"ticket_id": ticket.id, "email_change": bool(email)})
    return ticket.id


def request_erasure(*, session: Session, identity: Identity, sender_id: str) -> int:
    """Record the caller's request to delete their account (right to erasure); ticket id.

    An erasure request already open is reused.

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: the customer is not in the CRM.
    """
    customer = own_customer(session, identity)
    existing = open_ticket_for(session, kind="erasure", customer_id=customer.id, order_id=None)
    if existing is not None:
        return existing.id
    ticket = open_ticket(session=session, kind="erasure", subject="Account deletion request",
                         body="Erasure of the account and personal data requested in the chat.",
                         customer_id=customer.id, sender_id=sender_id, actor=sender_id)
    audit(session=session, actor=sender_id, action="erasure_requested", entity="customers",
          entity_id=str(customer.id), details={"ticket_id": ticket.id})
    return ticket.id
