"""Read-only CRM queries for the actions and the console.

Every function is keyword-only, takes the caller's session, and builds its SQL
with SQLAlchemy expressions (bound parameters, never formatted strings).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml import authz
from crm_ml.db import models as m
from crm_ml.identity import Identity

__all__ = [
    "CustomerBaseStats",
    "customer_base_stats",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CustomerBaseStats:
    """Size of the customer base."""

    customers: int
    active_customers: int
    countries: int
    orders: int


def customer_base_stats(*, session: Session, identity: Identity) -> CustomerBaseStats:
    """Count customers, customers with at least one sale, countries and sale orders.

    Company-wide figures: staff only (``analytics.read``).

    Raises:
        Forbidden: the caller may not read analytics.
    """
    authz.require(identity, "analytics.read")
    customers = session.scalar(select(func.count()).select_from(m.Customer)) or 0
    active = session.scalar(
        select(func.count(func.distinct(m.Order.customer_id))).where(m.Order.kind == "sale")
    ) or 0
    countries = session.scalar(select(func.count(func.distinct(m.Customer.country)))) or 0
    orders = session.scalar(
        select(func.count()).select_from(m.Order).where(m.Order.kind == "sale")
    ) or 0
    return CustomerBaseStats(customers, active, countries, orders)
