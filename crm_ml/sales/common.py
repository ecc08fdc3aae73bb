"""What the sales modules share: errors, entity checks, reasons, scopes.

Everything here sits below :mod:`crm_ml.sales.leads`, :mod:`crm_ml.sales.accounts`
and :mod:`crm_ml.sales.analytics`: the errors a caller catches, the ``parse_*``
helpers that validate entity values before anything reaches the database, the
reasons behind a stored score, and the WHERE clauses that keep a rep to their
own leads and accounts (a manager to the team's).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.orm import Session

from crm_ml import authz
from crm_ml.db import models as m
from crm_ml.errors import CRMError, NotFound
from crm_ml.identity import Identity

__all__ = [
    "CLOSED_STATUSES",
    "INTERACTION_KINDS",
    "LEAD_STATUSES",
    "MAX_ID",
    "RFM_SEGMENTS",
    "AmbiguousLead",
    "CustomerNotFound",
    "LeadNotFound",
    "NoData",
    "Reason",
    "Target",
    "canonical_segment",
    "in_scope",
    "interaction_kind",
    "lead_scope",
    "parse_id",
    "parse_status",
    "reachable_customer",
    "reasons_of",
    "resolve_number",
    "scope_word",
    "stored_segments",
]

logger = logging.getLogger(__name__)

LEAD_STATUSES: tuple[str, ...] = ("new", "contacted", "qualified", "won", "lost")
CLOSED_STATUSES: tuple[str, ...] = ("won", "lost")
INTERACTION_KINDS: tuple[str, ...] = ("call", "note")
MAX_ID = 99_999_999  # ids are positive and below this (lead ids ~50k, customers 5 digits)

#: The named RFM segments, in the order a report lists them (best first).
RFM_SEGMENTS: tuple[str, ...] = (
    "Champions", "Loyal", "Potential Loyalists", "New Customers", "Promising",
    "Need Attention", "About to Sleep", "At Risk", "Can't Lose", "Hibernating", "Lost",
)
_SEGMENT_ALIASES: dict[str, str] = {
    "champion": "Champions", "champions": "Champions",
    "loyal": "Loyal", "loyal customer": "Loyal", "loyal customers": "Loyal",
    "loyalist": "Loyal", "loyalists": "Loyal",
    "potential loyalist": "Potential Loyalists", "potential loyalists": "Potential Loyalists",
    "new customer": "New Customers", "new customers": "New Customers", "new": "New Customers",
    "promising": "Promising",
    "need attention": "Need Attention", "needs attention": "Need Attention",
    "needing attention": "Need Attention",
    "about to sleep": "About to Sleep",
    "at risk": "At Risk",
    "can t lose": "Can't Lose", "cant lose": "Can't Lose", "cannot lose": "Can't Lose",
    "can t lose them": "Can't Lose", "cant lose them": "Can't Lose",
    "cannot lose them": "Can't Lose", "can not lose them": "Can't Lose",
    "can not lose": "Can't Lose",
    "hibernating": "Hibernating", "hibernators": "Hibernating", "hibernator": "Hibernating",
    "hibernating customers": "Hibernating",
    "lost": "Lost", "lost customers": "Lost",
}
_CALL_WORDS = re.compile(
    r"\b(?:call|calls|called|calling|phone|phoned|rang|ring|rung|voicemail|voice mail|"
    r"spoke|spoken|talked|dialled|dialed)\b", re.IGNORECASE)


# --------------------------------------------------------------------------- errors


class LeadNotFound(NotFound):
    """No such lead among the caller's (or the team's) leads.

    Attributes:
        lead_id: The lead number asked for, if any.
        lead_name: The lead name asked for, if any.
        scope: ``"own"`` (a rep) or ``"team"`` (a manager).
    """

    def __init__(self, *, lead_id: int | None = None, lead_name: str | None = None,
                 scope: str = "own") -> None:
        self.lead_id = lead_id
        self.lead_name = lead_name
        self.scope = scope
        super().__init__(f"lead {lead_id if lead_id is not None else lead_name!r} not in reach")


class CustomerNotFound(NotFound):
    """No such customer among the accounts the caller may see.

    Attributes:
        customer_id: The customer number asked for.
        scope: ``"own"``, ``"team"`` or ``"all"`` (agents).
    """

    def __init__(self, *, customer_id: int, scope: str = "own") -> None:
        self.customer_id = customer_id
        self.scope = scope
        super().__init__(f"customer {customer_id} not in reach")


class AmbiguousLead(CRMError):
    """Several of the caller's leads carry the name given.

    Attributes:
        lead_name: The name asked for.
        candidates: Up to five ``(lead id, status)`` pairs, best score first.
        count: How many leads carry the name.
    """

    def __init__(self, *, lead_name: str, candidates: list[tuple[int, str]], count: int) -> None:
        self.lead_name = lead_name
        self.candidates = candidates
        self.count = count
        super().__init__(f"{count} leads called {lead_name!r}")


class NoData(CRMError):
    """The model output the question needs is not in the CRM yet.

    Attributes:
        what: ``"forecast"``, ``"segments"``...
    """

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"no {what} in the CRM yet")


# --------------------------------------------------------------- entity validation


def parse_id(value: Any) -> int | None:
    """A positive whole-number id from an entity value ("412", "#412", 412), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip().lstrip("#").replace(",", "").strip()
        if not text.isdigit() or not text.isascii() or len(text) > 9:
            return None
        number = int(text)
    return number if 0 < number <= MAX_ID else None


def parse_status(value: Any) -> str | None:
    """A lead status from the allowed list (case-insensitive), else None."""
    if not isinstance(value, str):
        return None
    status = value.strip().lower()
    return status if status in LEAD_STATUSES else None


def _segment_key(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower().replace("’", "'")))


def canonical_segment(value: Any) -> str | None:
    """The RFM segment name for what the user said ("champion" -> "Champions"), else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    key = _segment_key(value)
    if key in _SEGMENT_ALIASES:
        return _SEGMENT_ALIASES[key]
    for name in RFM_SEGMENTS:
        if _segment_key(name) == key:
            return name
    return None


def interaction_kind(text: str) -> str:
    """``"call"`` when the text speaks of a phone call, else ``"note"``."""
    return "call" if _CALL_WORDS.search(text or "") else "note"


@dataclass(frozen=True)
class Reason:
    """One reason behind a score, in words.

    Attributes:
        text: The reason ("previous campaign succeeded").
        effect: ``"raises"``, ``"lowers"`` or None when the model did not say.
    """

    text: str
    effect: str | None = None


def reasons_of(raw: Any) -> list[Reason]:
    """Reasons as stored (strings, or ``{"text", "effect", "weight"}`` dicts) as Reason."""
    out: list[Reason] = []
    if not isinstance(raw, list):
        return out
    for item in raw:
        if isinstance(item, str) and item.strip():
            out.append(Reason(item.strip()))
        elif isinstance(item, dict) and str(item.get("text") or "").strip():
            effect = item.get("effect")
            out.append(Reason(str(item["text"]).strip(),
                              effect if effect in {"raises", "lowers"} else None))
    return out


# ------------------------------------------------------------------------- scopes


def scope_word(identity: Identity) -> str:
    return {"rep": "own", "manager": "team"}.get(identity.role, "all")


def in_scope(column: Any, scope: set[int] | None) -> Any:
    """A WHERE clause limiting ``column`` (a rep id) to ``scope`` (None: no limit)."""
    if scope is authz.ALL:
        return true()
    return column.in_(sorted(scope))


def lead_scope(identity: Identity, session: Session) -> set[int] | None:
    authz.require(identity, "leads.read")
    return authz.rep_scope(identity, session=session)


def reachable_customer(session: Session, identity: Identity, customer_id: int) -> str:
    """The customer's name if the caller may see their account.

    Raises:
        Forbidden: the caller may not read customers at all.
        CustomerNotFound: no such customer within the caller's accounts.
    """
    authz.require(identity, "customers.read")
    scope = authz.rep_scope(identity, session=session)
    row = session.execute(
        select(m.Customer.name, m.Account.name.label("account"), m.Account.rep_id)
        .outerjoin(m.Account, m.Account.customer_id == m.Customer.id)
        .where(m.Customer.id == customer_id)
    ).first()
    if row is None or (scope is not authz.ALL and row.rep_id not in scope):
        raise CustomerNotFound(customer_id=customer_id, scope=scope_word(identity))
    return row.account or row.name


def stored_segments(session: Session, column: Any, canonical: str) -> list[str]:
    """Stored spellings of a canonical segment ("Loyal" may be stored "Loyal Customers")."""
    values = session.scalars(select(column).distinct().where(column.is_not(None))).all()
    return [v for v in values if canonical_segment(v) == canonical]


@dataclass(frozen=True)
class Target:
    """A lead or customer a bare number may mean.

    Attributes:
        kind: ``"lead"`` or ``"customer"``.
        id: Its number.
        name: Its name (the account's name for a customer).
    """

    kind: str
    id: int
    name: str


def resolve_number(session: Session, identity: Identity, number: int) -> list[Target]:
    """What a bare number ("log call w/ 48122") means among the caller's OWN leads and
    accounts (a manager's: the team's): none, one, or a lead and a customer both.

    Raises:
        Forbidden: the caller may not read leads.
    """
    scope = lead_scope(identity, session)
    found: list[Target] = []
    lead = session.execute(select(m.Lead.id, m.Lead.name).where(
        m.Lead.id == number, in_scope(m.Lead.rep_id, scope))).first()
    if lead is not None:
        found.append(Target("lead", int(lead.id), lead.name))
    customer = session.execute(
        select(m.Customer.id, m.Customer.name, m.Account.name.label("account"))
        .join(m.Account, m.Account.customer_id == m.Customer.id)
        .where(m.Customer.id == number, in_scope(m.Account.rep_id, scope))).first()
    if customer is not None:
        found.append(Target("customer", int(customer.id), customer.account or customer.name))
    return found
