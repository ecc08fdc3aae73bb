"""Customer self-service on the CRM: verification, orders, refunds, tickets, suggestions.

The customer dialogue's actions call these functions, one per action. Every
function is keyword-only, takes the caller's session (the caller owns the
transaction) and builds its SQL with SQLAlchemy expressions: values typed by a
customer only ever travel as bound parameters, after the ``clean_*`` checks.

Who may see what:

* verification (:func:`verify_customer`) turns an order number plus the e-mail
  of that order's customer into the customer id, at most
  :data:`MAX_VERIFY_FAILURES` failures per hour and sender id; a failure never
  says whether the order exists;
* order data goes only to the customer who owns it (:func:`crm_ml.authz.check_customer`);
  another customer's order is reported exactly like a missing one (:class:`NotFound`),
  so that order numbers cannot be probed; a customer erased since they signed in or
  verified is no customer any more (:func:`crm_ml.authz.own_customer_id`);
* every change (verification, cancellation, address, tickets) is audited with
  :func:`crm_ml.handoff.audit`; e-mail addresses and postal addresses never go
  into the audit details nor into log messages.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import re
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml.authz import Forbidden, active_customer, check_customer, own_customer_id
from crm_ml.db import models as m
from crm_ml.errors import CRMError, NotFound
from crm_ml.handoff import audit, open_ticket, utcnow
from crm_ml.identity import Identity

logger = logging.getLogger(__name__)

MAX_VERIFY_FAILURES = 5
"""Failed verifications allowed per sender id within :data:`VERIFY_WINDOW`."""
VERIFY_WINDOW = dt.timedelta(hours=1)
BEST_SELLER_DAYS = 90
"""Best sellers are counted over the last this many days of sales in the CRM."""

TICKET_KINDS = frozenset({"complaint", "review", "refund", "invoice", "erasure",
                          "account_change", "order_change", "payment", "newsletter"})
"""Kinds of ticket a customer's conversation may open."""

_ORDER_ID_RE = re.compile(r"^C?\d{6}$")
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES_RE = re.compile(r"\s+")
MAX_TEXT = 2000
MIN_ADDRESS, MAX_ADDRESS = 10, 300


class InvalidRequest(CRMError):
    """A value that failed its format check (the actions check first)."""


# --------------------------------------------------------------------------- input checks


def clean_order_id(value: object) -> str | None:
    """An Online Retail II invoice number (``536365``, ``C536379``), or None.

    Spaces and a lower-case ``c`` are tolerated (``c 536379`` -> ``C536379``).
    """
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return None
    text = str(value).strip().upper().replace(" ", "")
    return text if _ORDER_ID_RE.match(text) else None


def clean_email(value: object) -> str | None:
    """A plausible e-mail address, lower-cased, or None."""
    if not isinstance(value, str):
        return None
    text = value.strip().rstrip(".").lower()
    if len(text) > 254 or ".." in text or not _EMAIL_RE.match(text):
        return None
    return text


def clean_text(value: object, max_len: int = MAX_TEXT) -> str:
    """Free text from a customer: control characters removed, trimmed, bounded."""
    if not isinstance(value, str):
        return ""
    return _CONTROL_RE.sub(" ", value).strip()[:max_len]


def clean_address(value: object) -> str | None:
    """A postal address as typed or spoken, or None when it cannot be one.

    An address has at least two words, a digit (house number or postcode) and
    between :data:`MIN_ADDRESS` and :data:`MAX_ADDRESS` characters.
    """
    if not isinstance(value, str):
        return None
    text = _SPACES_RE.sub(" ", _CONTROL_RE.sub(" ", value)).strip(" ,.")
    if not MIN_ADDRESS <= len(text) <= MAX_ADDRESS:
        return None
    if len(text.split()) < 2 or not any(ch.isdigit() for ch in text):
        return None
    return text


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Verification:
    """The outcome of one verification attempt.

    Attributes:
        status: ``verified``, ``failed`` (details do not match: the order may or
            may not exist) or ``locked`` (too many failures in the last hour).
        customer_id: The verified customer, for ``verified`` only.
        attempts_left: Failures still allowed in the current hour.
    """

    status: str
    customer_id: int | None = None
    attempts_left: int = 0


def recent_failures(*, session: Session, sender_id: str, now: dt.datetime | None = None) -> int:
    """Failed verifications of ``sender_id`` within the last :data:`VERIFY_WINDOW`."""
    now = now or utcnow()
    return session.scalar(
        select(func.count()).select_from(m.AuditLog).where(
            m.AuditLog.actor == sender_id, m.AuditLog.action == "verify_failed",
            m.AuditLog.at >= now - VERIFY_WINDOW)
    ) or 0


def verify_customer(*, session: Session, sender_id: str, order_id: str, email: str,
                    now: dt.datetime | None = None) -> Verification:
    """Check an order number and the e-mail on that order's customer.

    On success the sender is linked to the customer in ``channel_identities``.
    Each attempt is audited (``verified`` / ``verify_failed``, actor = sender id,
    no e-mail in the details); after :data:`MAX_VERIFY_FAILURES` failures within
    an hour further attempts are refused without being checked.

    Args:
        session: The caller's session.
        sender_id: The conversation's sender id (``web:abc``, ``tg:42``).
        order_id: The order number given by the customer.
        email: The e-mail address given by the customer.
        now: The current time (naive UTC), for tests.
    """
    now = now or utcnow()
    failures = recent_failures(session=session, sender_id=sender_id, now=now)
    if failures >= MAX_VERIFY_FAILURES:
        logger.warning("verification refused: too many failures for one sender")
        audit(session=session, actor=sender_id, action="verify_blocked",
              entity="channel_identities", entity_id=sender_id[:64], details={})
        return Verification("locked")
    oid, address = clean_order_id(order_id), clean_email(email)
    customer = None
    if oid is not None and address is not None:
        customer = session.execute(
            select(m.Customer).join(m.Order, m.Order.customer_id == m.Customer.id)
            .where(m.Order.id == oid)
        ).scalar_one_or_none()
    # Compare digests even when nothing was found, so both failures look alike.
    expected = (customer.email if customer is not None and not customer.anonymized else "")
    matches = hmac.compare_digest((expected or "\0").strip().lower().encode(),
                                  (address or "").encode())
    if customer is None or not matches:
        audit(session=session, actor=sender_id, action="verify_failed", entity="orders",
              entity_id=oid, details={"attempt": failures + 1})
        logger.info("verification failed (%d of %d this hour)", failures + 1, MAX_VERIFY_FAILURES)
        left = MAX_VERIFY_FAILURES - failures - 1
        return Verification("failed" if left > 0 else "locked", attempts_left=left)
    link = session.get(m.ChannelIdentity, sender_id)
    if link is None:
        session.add(m.ChannelIdentity(sender_id=sender_id, customer_id=customer.id,
                                      verified_at=now))
    else:
        link.customer_id = customer.id
        link.verified_at = now
    audit(session=session, actor=sender_id, action="verified", entity="customers",
          entity_id=str(customer.id), details={"order_id": oid})
    return Verification("verified", customer.id, MAX_VERIFY_FAILURES - failures)


# --------------------------------------------------------------------------- orders


@dataclass(frozen=True)
class OrderSummary:
    """What a customer may hear about one of their orders."""

    order_id: str
    invoiced_at: dt.datetime
    kind: str  # sale | cancellation
    status: str  # processing | shipped | delivered | cancelled
    total: float
    lines: int
    items: int


def _summary(session: Session, order: m.Order) -> OrderSummary:
    lines, items = session.execute(
        select(func.count(m.OrderLine.id), func.coalesce(func.sum(m.OrderLine.quantity), 0))
        .where(m.OrderLine.order_id == order.id)
    ).one()
    return OrderSummary(order.id, order.invoiced_at, order.kind, order.status,
                        round(float(order.total), 2), int(lines), abs(int(items)))


def _own_order(session: Session, identity: Identity, order_id: str | None,
               *, for_update: bool = False) -> m.Order:
    """The caller's order ``order_id`` (their latest sale when None).

    Raises:
        Forbidden: the caller is not a (verified) customer.
        NotFound: no such order, or the order of another customer (same answer), or
            the caller's customer record was erased.
    """
    customer_id = own_customer_id(identity, session=session)
    if order_id is None:
        order = session.scalars(
            select(m.Order).where(m.Order.customer_id == customer_id, m.Order.kind == "sale")
            .order_by(m.Order.invoiced_at.desc(), m.Order.id.desc()).limit(1)
        ).first()
        if order is None:
            raise NotFound("no order yet")
        return order
    oid = clean_order_id(order_id)
    if oid is None:
        raise NotFound("not an order number")
    stmt = select(m.Order).where(m.Order.id == oid)
    if for_update:
        stmt = stmt.with_for_update()
    order = session.scalars(stmt).first()
    if order is None:
        raise NotFound("order")
    try:
        check_customer(identity, order.customer_id)
    except Forbidden:
        logger.info("a customer asked about an order that is not theirs")
        raise NotFound("order") from None
    return order


def order_status(*, session: Session, identity: Identity,
                 order_id: str | None = None) -> OrderSummary:
    """Date, status, total and size of the caller's order (their latest one by default).

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    return _summary(session, _own_order(session, identity, order_id))


@dataclass(frozen=True)
class CancelOutcome:
    """What happened to a cancellation request.

    Attributes:
        order: The order as it is now.
        cancelled: Whether this call cancelled it.
        reason: ``cancelled``, or why not: ``shipped``, ``delivered``,
            ``already_cancelled``, ``not_a_sale`` (a cancellation note).
    """

    order: OrderSummary
    cancelled: bool
    reason: str


def _why_not(order: m.Order) -> str:
    if order.kind != "sale":
        return "not_a_sale"
    if order.status == "cancelled":
        return "already_cancelled"
    return order.status  # shipped | delivered


def cancel_order(*, session: Session, identity: Identity, order_id: str,
                 actor: str) -> CancelOutcome:
    """Cancel the caller's order if it is still ``processing``; otherwise say why not.

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    order = _own_order(session, identity, order_id, for_update=True)
    if order.kind == "sale" and order.status == "processing":
        order.status = "cancelled"
        audit(session=session, actor=actor, action="cancel_order", entity="orders",
              entity_id=order.id, details={"previous_status": "processing",
                                           "customer_id": order.customer_id})
        session.flush()
        return CancelOutcome(_summary(session, order), True, "cancelled")
    return CancelOutcome(_summary(session, order), False, _why_not(order))


def _open_ticket_for(session: Session, *, kind: str, customer_id: int | None,
                     order_id: str | None) -> m.Ticket | None:
    """An open ticket of ``kind`` for this customer (and order), to avoid duplicates."""
    if customer_id is None:
        return None
    stmt = select(m.Ticket).where(m.Ticket.kind == kind, m.Ticket.status == "open",
                                  m.Ticket.customer_id == customer_id)
    if order_id is not None:
        stmt = stmt.where(m.Ticket.order_id == order_id)
    return session.scalars(stmt.order_by(m.Ticket.id.desc()).limit(1)).first()


@dataclass(frozen=True)
class RefundRequest:
    """What happened to a refund request.

    Attributes:
        order: The order concerned.
        outcome: ``opened``, ``already_open``, or why not: ``processing`` (not
            shipped yet: cancel instead), ``already_cancelled``, ``not_a_sale``.
        ticket_id: The refund ticket (new or already open).
    """

    order: OrderSummary
    outcome: str
    ticket_id: int | None = None


def request_refund(*, session: Session, identity: Identity, order_id: str, reason: str,
                   sender_id: str) -> RefundRequest:
    """Open a refund ticket for a shipped or delivered order of the caller.

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    order = _own_order(session, identity, order_id)
    summary = _summary(session, order)
    if order.kind != "sale" or order.status not in {"shipped", "delivered"}:
        return RefundRequest(summary, "processing" if order.status == "processing"
                             else _why_not(order))
    existing = _open_ticket_for(session, kind="refund", customer_id=order.customer_id,
                                order_id=order.id)
    if existing is not None:
        return RefundRequest(summary, "already_open", existing.id)
    ticket = open_ticket(session=session, kind="refund", customer_id=order.customer_id,
                         sender_id=sender_id, order_id=order.id, actor=sender_id,
                         subject=f"Refund request for order {order.id}",
                         body=clean_text(reason))
    return RefundRequest(summary, "opened", ticket.id)


@dataclass(frozen=True)
class RefundTicket:
    """A refund request of the customer."""

    ticket_id: int
    order_id: str | None
    status: str
    opened_at: dt.datetime


@dataclass(frozen=True)
class Credit:
    """Money credited back: a cancellation note, or a cancelled order."""

    order_id: str
    date: dt.datetime
    amount: float
    kind: str  # cancellation (a C-invoice) | cancelled_order


@dataclass(frozen=True)
class RefundStatus:
    """The customer's refund requests and credits, newest first."""

    requests: list[RefundTicket] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)


def refund_status(*, session: Session, identity: Identity, limit: int = 3) -> RefundStatus:
    """The caller's refund tickets and the amounts credited back to them.

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: the customer is not in the CRM (or was erased).
    """
    customer_id = own_customer_id(identity, session=session)
    tickets = session.scalars(
        select(m.Ticket).where(m.Ticket.customer_id == customer_id, m.Ticket.kind == "refund")
        .order_by(m.Ticket.created_at.desc(), m.Ticket.id.desc()).limit(limit)
    ).all()
    credited = session.scalars(
        select(m.Order).where(m.Order.customer_id == customer_id, m.Order.status == "cancelled")
        .order_by(m.Order.invoiced_at.desc(), m.Order.id.desc()).limit(limit)
    ).all()
    return RefundStatus(
        [RefundTicket(t.id, t.order_id, t.status, t.created_at) for t in tickets],
        [Credit(o.id, o.invoiced_at, round(abs(float(o.total)), 2),
                "cancellation" if o.kind == "cancellation" else "cancelled_order")
         for o in credited],
    )


# --------------------------------------------------------------------------- invoices


@dataclass(frozen=True)
class InvoiceLine:
    """One product line of an invoice."""

    description: str
    quantity: int
    unit_price: float
    amount: float


@dataclass(frozen=True)
class Invoice:
    """An order's invoice: its summary and its largest lines."""

    order: OrderSummary
    lines: list[InvoiceLine]
    ticket_id: int | None = None


def invoice(*, session: Session, identity: Identity, order_id: str | None = None,
            max_lines: int = 3) -> Invoice:
    """The caller's invoice (latest order by default) with its ``max_lines`` largest lines.

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    order = _own_order(session, identity, order_id)
    amount = m.OrderLine.quantity * m.OrderLine.unit_price
    rows = session.execute(
        select(m.Product.description, m.OrderLine.quantity, m.OrderLine.unit_price, amount)
        .join(m.Product, m.Product.stock_code == m.OrderLine.stock_code)
        .where(m.OrderLine.order_id == order.id)
        .order_by(func.abs(amount).desc(), m.OrderLine.id).limit(max_lines)
    ).all()
    lines = [InvoiceLine(r[0], int(r[1]), round(float(r[2]), 2), round(float(r[3]), 2))
             for r in rows]
    return Invoice(_summary(session, order), lines)


def request_invoice_copy(*, session: Session, identity: Identity, order_id: str | None,
                         sender_id: str, max_lines: int = 3) -> Invoice:
    """The invoice, plus a ticket asking the team to e-mail its PDF (one open per order).

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    inv = invoice(session=session, identity=identity, order_id=order_id, max_lines=max_lines)
    existing = _open_ticket_for(session, kind="invoice", customer_id=identity.number,
                                order_id=inv.order.order_id)
    if existing is None:
        existing = open_ticket(session=session, kind="invoice", customer_id=identity.number,
                               sender_id=sender_id, order_id=inv.order.order_id, actor=sender_id,
                               subject=f"E-mail the PDF invoice of order {inv.order.order_id}")
    return Invoice(inv.order, inv.lines, existing.id)


# --------------------------------------------------------------------------- account


def _customer(session: Session, identity: Identity) -> m.Customer:
    customer = session.get(m.Customer, own_customer_id(identity, session=session))
    if customer is None:  # pragma: no cover - own_customer_id found it
        raise NotFound("customer")
    return customer


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
    customer = _customer(session, identity)
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
    customer = _customer(session, identity)
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
    customer = _customer(session, identity)
    existing = _open_ticket_for(session, kind="erasure", customer_id=customer.id, order_id=None)
    if existing is not None:
        return existing.id
    ticket = open_ticket(session=session, kind="erasure", subject="Account deletion request",
                         body="Erasure of the account and personal data requested in the chat.",
                         customer_id=customer.id, sender_id=sender_id, actor=sender_id)
    audit(session=session, actor=sender_id, action="erasure_requested", entity="customers",
          entity_id=str(customer.id), details={"ticket_id": ticket.id})
    return ticket.id


def request_order_change(*, session: Session, identity: Identity, order_id: str,
                         request: str, sender_id: str) -> RefundRequest:
    """Pass a change to an order still being prepared to the team (ticket ``order_change``).

    Returns a :class:`RefundRequest`-shaped outcome: ``opened`` / ``already_open``
    with the ticket, or why not (``shipped``, ``delivered``, ``already_cancelled``,
    ``not_a_sale``).

    Raises:
        Forbidden: the caller is not a verified customer.
        NotFound: no such order for this customer.
    """
    order = _own_order(session, identity, order_id)
    summary = _summary(session, order)
    if order.kind != "sale" or order.status != "processing":
        return RefundRequest(summary, _why_not(order))
    existing = _open_ticket_for(session, kind="order_change", customer_id=order.customer_id,
                                order_id=order.id)
    if existing is not None:
        return RefundRequest(summary, "already_open", existing.id)
    ticket = open_ticket(session=session, kind="order_change", customer_id=order.customer_id,
                         sender_id=sender_id, order_id=order.id, actor=sender_id,
                         subject=f"Change to order {order.id}", body=clean_text(request))
    return RefundRequest(summary, "opened", ticket.id)


# --------------------------------------------------------------------------- suggestions


@dataclass(frozen=True)
class Suggestion:
    """A product to suggest."""

    stock_code: str
    description: str
    unit_price: float


@dataclass(frozen=True)
class Suggestions:
    """Products to suggest; ``personal`` when they come from the customer's own history."""

    personal: bool
    items: list[Suggestion]


def best_sellers(*, session: Session, limit: int = 3,
                 days: int = BEST_SELLER_DAYS) -> list[Suggestion]:
    """The products sold in the largest quantities over the last ``days`` of sales.

    Quantities of sale orders, net of the cancellation notes of the same period.
    """
    last = session.scalar(select(func.max(m.Order.invoiced_at)).where(m.Order.kind == "sale"))
    if last is None:
        return []
    since = last - dt.timedelta(days=days)
    # Net of cancellations: C-invoices carry negative quantities, so a huge order
    # that was cancelled again (Online Retail II has one of 80,995 paper crafts)
    # does not make a best seller. Orders cancelled in the chat do not count.
    recent = (select(m.Order.id).where(m.Order.invoiced_at >= since,
                                       (m.Order.kind == "cancellation")
                                       | (m.Order.status != "cancelled"))
              .scalar_subquery())
    qty = func.sum(m.OrderLine.quantity).label("qty")
    top = (select(m.OrderLine.stock_code, qty).where(m.OrderLine.order_id.in_(recent))
           .group_by(m.OrderLine.stock_code).order_by(qty.desc(), m.OrderLine.stock_code)
           .limit(limit).subquery())
    rows = session.execute(
        select(m.Product.stock_code, m.Product.description, m.Product.unit_price)
        .join(top, top.c.stock_code == m.Product.stock_code)
        .order_by(top.c.qty.desc(), m.Product.stock_code)
    ).all()
    return [Suggestion(r[0], r[1], round(float(r[2]), 2)) for r in rows]


def recommendations_for(*, session: Session, customer_id: int,
                        limit: int = 3) -> list[Suggestion]:
    """The stored recommendations of one customer, best first (may be empty)."""
    rows = session.execute(
        select(m.Product.stock_code, m.Product.description, m.Product.unit_price)
        .join(m.Recommendation, m.Recommendation.stock_code == m.Product.stock_code)
        .where(m.Recommendation.customer_id == customer_id)
        .order_by(m.Recommendation.rank, m.Recommendation.score.desc()).limit(limit)
    ).all()
    return [Suggestion(r[0], r[1], round(float(r[2]), 2)) for r in rows]


def suggestions(*, session: Session, identity: Identity, limit: int = 3) -> Suggestions:
    """Personal recommendations for a verified customer, else the best sellers.

    An erased customer hears the best sellers, as an anonymous caller does: their
    orders stay in the CRM, and a model trained again would have ideas for them.
    """
    customer_id = active_customer(identity, session=session)
    if customer_id is not None:
        mine = recommendations_for(session=session, customer_id=customer_id, limit=limit)
        if mine:
            return Suggestions(True, mine)
    return Suggestions(False, best_sellers(session=session, limit=limit))
