"""Verification: an order number plus the e-mail on that order's customer gives the customer id.

At most :data:`MAX_VERIFY_FAILURES` failures per hour and sender id; a failure
never says whether the order exists.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml.audit import audit, utcnow
from crm_ml.db import models as m
from crm_ml.support.checks import clean_email, clean_order_id

__all__ = [
    "MAX_VERIFY_FAILURES",
    "VERIFY_WINDOW",
    "Verification",
    "recent_failures",
    "verify_customer",
]

logger = logging.getLogger(__name__)


MAX_VERIFY_FAILURES = 5
"""Failed verifications allowed per sender id within :data:`VERIFY_WINDOW`."""
VERIFY_WINDOW = dt.timedelta(hours=1)


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
