"""Authorization: the one place that decides who may read or change what.

Roles (see :mod:`crm_ml.identity`): ``anonymous``, ``customer`` (signed, or
verified in the conversation), ``rep``, ``manager``, ``agent``.

| permission            | anonymous | customer | rep         | manager      | agent |
|-----------------------|-----------|----------|-------------|--------------|-------|
| ``faq``               | yes       | yes      | yes         | yes          | yes   |
| ``own_orders``        |           | own      |             |              |       |
| ``leads.read/write``  |           |          | own leads   | team's leads |       |
| ``accounts.read``     |           |          | own accounts| team's       | yes   |
| ``customers.read``    |           |          | own accounts| team's       | yes   |
| ``analytics.read``    |           |          | yes         | yes          | yes   |
| ``escalations``       |           |          |             |              | yes   |

"Own" is checked against the owning rep of the lead or of the customer's
account: :func:`rep_scope` gives the rep ids a caller may see.

A customer's "own" data needs the customer to be in the CRM and not erased:
after ``crm-ml gdpr erase`` a ``customer:<id>`` identity signed earlier, or a
verification kept in a conversation, no longer reads the anonymized row's
orders, account or recommendations (:func:`own_customer_id`, :func:`active_customer`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from crm_ml.errors import CRMError, NotFound
from crm_ml.identity import Identity

__all__ = [
    "ALL",
    "Forbidden",
    "active_customer",
    "allowed",
    "check_customer",
    "check_owner",
    "own_customer_id",
    "rep_scope",
    "require",
]

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

ALL = None  # rep_scope() result meaning: no restriction


class Forbidden(CRMError):
    """The caller may not see or change this."""


_ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "anonymous": frozenset({"faq"}),
    "customer": frozenset({"faq", "own_orders"}),
    "rep": frozenset({"faq", "leads.read", "leads.write", "accounts.read", "customers.read",
                      "analytics.read"}),
    "manager": frozenset({"faq", "leads.read", "leads.write", "accounts.read",
                          "customers.read", "analytics.read"}),
    "agent": frozenset({"faq", "accounts.read", "customers.read", "analytics.read",
                        "escalations"}),
}


def allowed(identity: Identity, permission: str) -> bool:
    """Whether the role of ``identity`` carries ``permission`` at all."""
    return permission in _ROLE_PERMISSIONS.get(identity.role, frozenset())


def require(identity: Identity, permission: str) -> None:
    """Raise :class:`Forbidden` unless the role carries ``permission``."""
    if not allowed(identity, permission):
        logger.info("denied %s to a %s", permission, identity.role)
        raise Forbidden(f"{identity.role} may not {permission}")


def rep_scope(identity: Identity, *, session: Session) -> set[int] | None:
    """The rep ids whose leads and accounts the caller may see (None: all).

    Raises:
        Forbidden: the caller sees no rep's data at all.
    """
    if identity.role == "rep" and identity.number is not None:
        return {identity.number}
    if identity.role == "manager" and identity.number is not None:
        from sqlalchemy import select

        from crm_ml.db import models as m

        manager = session.scalar(select(m.SalesRep.id).where(
            m.SalesRep.handle == identity.user, m.SalesRep.role == "manager"))
        if manager is None:
            return set()
        return set(session.scalars(select(m.SalesRep.id).where(
            m.SalesRep.manager_id == manager)))
    if identity.role == "agent":
        return ALL
    raise Forbidden(f"{identity.role} sees no rep's data")


def check_owner(identity: Identity, owner_rep_id: int | None, *, session: Session) -> None:
    """Raise :class:`Forbidden` unless the caller may see data owned by ``owner_rep_id``."""
    scope = rep_scope(identity, session=session)
    if scope is not ALL and owner_rep_id not in scope:
        logger.info("denied data of another rep to a %s", identity.role)
        raise Forbidden("not your lead or account")


def check_customer(identity: Identity, customer_id: int) -> None:
    """Raise :class:`Forbidden` unless a customer asks about themself."""
    if identity.role != "customer" or identity.number != customer_id:
        raise Forbidden("customers see only their own data")


def active_customer(identity: Identity, *, session: Session) -> int | None:
    """The caller's customer number if the caller is a customer the CRM holds, not erased.

    None for anyone else: staff, anonymous callers, and a customer identity whose
    customer is unknown or was erased (anonymized).
    """
    if identity.role != "customer" or identity.number is None:
        return None
    from sqlalchemy import select

    from crm_ml.db import models as m

    anonymized = session.scalar(select(m.Customer.anonymized)
                                .where(m.Customer.id == identity.number))
    if anonymized is None or anonymized:
        logger.info("a customer identity of an unknown or erased customer")
        return None
    return identity.number


def own_customer_id(identity: Identity, *, session: Session) -> int:
    """The caller's customer number, for reading or changing their own orders and account.

    Raises:
        Forbidden: the caller is not a customer (verify first; staff never).
        NotFound: the customer is not in the CRM, or was erased: the same answer
            as for someone else's order, so nothing tells that the account existed.
    """
    require(identity, "own_orders")
    customer_id = active_customer(identity, session=session)
    if customer_id is None:
        raise NotFound("customer")
    return customer_id
