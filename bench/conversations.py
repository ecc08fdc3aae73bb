"""Scripted conversations for the load generator, filled with real CRM rows.

Four kinds, round-robin, each a realistic session of the assistant:

* ``faq``: an anonymous visitor asks delivery, payment and refund questions
  (answered by responses, no action call);
* ``order``: an anonymous customer asks where an order is, gives the e-mail on
  it when asked, is verified against the CRM and hears the status
  (``action_order_status`` then ``action_verify_customer``);
* ``rep``: a sales rep signed as ``rep:<n>`` (HMAC-SHA256 of the id under
  ``CRM_IDENTITY_SECRET``) asks for hot leads, why one of their leads scores as
  it does, churn risks, a customer's segment and the customer count;
* ``customer``: a customer signed as ``customer:<id>`` asks for their latest
  order and for product ideas.

Every turn says whether it calls the action server and what our assistant's
reply must contain (a regular expression over the reply texts joined), so
each sender's replies can be checked against its script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from crm_ml.identity import sign

KINDS = ("faq", "order", "rep", "customer")


@dataclass(frozen=True)
class Turn:
    """One user message and what the reply must look like."""

    text: str
    expect: str
    action: bool
    metadata: dict[str, Any] | None = None

    def matches(self, reply_text: str) -> bool:
        return re.search(self.expect, reply_text, flags=re.S) is not None


@dataclass(frozen=True)
class Conversation:
    kind: str
    turns: list[Turn]


@dataclass
class CRMSample:
    """CRM rows the scripts talk about."""

    orders: list[tuple[str, str]] = field(default_factory=list)  # (order id, e-mail)
    rep_leads: dict[int, list[int]] = field(default_factory=dict)  # rep -> scored lead ids
    rep_customers: dict[int, list[int]] = field(default_factory=dict)  # rep -> account ids
    customers: list[int] = field(default_factory=list)  # customers with sales


def sample_crm(url: str, n: int = 200) -> CRMSample:
    """Read the rows the scripts need from the CRM at ``url``.

    Args:
        url: CRM database URL.
        n: How many orders and customers to sample (deterministically).
    """
    from sqlalchemy import func, select

    from crm_ml.db import models as m
    from crm_ml.db import session_scope

    out = CRMSample()
    with session_scope(url) as s:
        rows = s.execute(
            select(m.Order.id, m.Customer.email)
            .join(m.Customer, m.Customer.id == m.Order.customer_id)
            .where(m.Order.kind == "sale", m.Customer.anonymized.is_(False))
            .order_by(m.Order.invoiced_at.desc()).limit(n * 5)).all()
        out.orders = [(str(o), str(e)) for o, e in rows[::5]][:n]
        for rep in range(1, 9):
            out.rep_leads[rep] = list(s.scalars(
                select(m.LeadScore.lead_id).join(m.Lead, m.Lead.id == m.LeadScore.lead_id)
                .where(m.Lead.rep_id == rep).order_by(m.LeadScore.lead_id).limit(25)))
            out.rep_customers[rep] = list(s.scalars(
                select(m.Account.customer_id).where(m.Account.rep_id == rep)
                .order_by(m.Account.customer_id).limit(25)))
        out.customers = list(s.scalars(
            select(m.Order.customer_id).where(m.Order.kind == "sale")
            .group_by(m.Order.customer_id).having(func.count() >= 2)
            .order_by(m.Order.customer_id).limit(n)))
    missing = [k for k, v in (("orders", out.orders), ("customers", out.customers),
                              ("lead scores", sum(out.rep_leads.values(), [])),
                              ("accounts", sum(out.rep_customers.values(), []))) if not v]
    if missing:
        raise RuntimeError(f"the CRM has no {', '.join(missing)} for the scripts")
    return out


def signed(user: str, secret: str) -> dict[str, Any]:
    """Message metadata proving ``user`` (DESIGN.md: HMAC-SHA256 of the id)."""
    return {"auth": {"user": user, "sig": sign(user, secret)}}


GREET = r"shop's assistant"
WELCOME = r"You're welcome"
GOODBYE = r"Goodbye"


def conversation(n: int, crm: CRMSample, secret: str) -> Conversation:
    """The ``n``-th scripted conversation (kinds round-robin, data rotating)."""
    kind = KINDS[n % len(KINDS)]
    k = n // len(KINDS)
    if kind == "faq":
        return Conversation(kind, [
            Turn("hi", GREET, False),
            Turn("what are your delivery options", r"We deliver across the UK", False),
            Turn("how long does delivery take", r"leave our warehouse within 1 to 2", False),
            Turn("which payment methods do you accept", r"We accept Visa", False),
            Turn("what is your refund policy", r"return unused items within 30 days", False),
            Turn("thanks", WELCOME, False),
            Turn("bye", GOODBYE, False),
        ])
    if kind == "order":
        order, email = crm.orders[k % len(crm.orders)]
        return Conversation(kind, [
            Turn("hello", GREET, False),
            Turn(f"where is my order {order}", r"e-mail address on the order", True),
            Turn(f"my email is {email}", rf"those details match.*Order {order} of", True),
            Turn("how long does delivery take", r"leave our warehouse within 1 to 2", False),
            Turn("thank you", WELCOME, False),
        ])
    if kind == "rep":
        rep = k % 8 + 1
        meta = signed(f"rep:{rep}", secret)
        lead = crm.rep_leads[rep][k % len(crm.rep_leads[rep])]
        customer = crm.rep_customers[rep][k % len(crm.rep_customers[rep])]
        return Conversation(kind, [
            Turn("hi", GREET, False, meta),
            Turn("who are my hottest leads", r"hottest open leads", True, meta),
            Turn(f"why is lead {lead} hot", rf"Lead {lead}, ", True, meta),
            Turn("which of my accounts may churn", r"most likely to buy nothing", True, meta),
            Turn(f"what segment is customer {customer} in", rf"Customer {customer}, .*segment",
                 True, meta),
            Turn("how many customers do we have", r"We have [\d,]+ customers", True, meta),
            Turn("thanks", WELCOME, False, meta),
        ])
    customer = crm.customers[k % len(crm.customers)]
    meta = signed(f"customer:{customer}", secret)
    return Conversation(kind, [
        Turn("hi", GREET, False, meta),
        Turn("where is my latest order", r"most recent order", True, meta),
        Turn("can you recommend something", r"you might like|best sellers", True, meta),
        Turn("do you deliver abroad", r"We deliver across the UK", False, meta),
        Turn("bye", GOODBYE, False, meta),
    ])
