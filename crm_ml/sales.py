"""What sales reps and managers ask the assistant: leads, accounts, segments, forecasts.

Every query function is keyword-only, takes the caller's session and the caller's
:class:`~crm_ml.identity.Identity`, and asks :mod:`crm_ml.authz` first: a rep sees
only their own leads and accounts, a manager their team's, an agent every
account (but no leads); customers and anonymous callers get
:class:`~crm_ml.authz.Forbidden`. SQL is built with SQLAlchemy expressions and
bound parameters only.

A lead or customer outside the caller's reach is reported exactly like one that
does not exist (:class:`LeadNotFound`, :class:`CustomerNotFound`): telling a rep
"that lead belongs to someone else" would leak that it exists.

Writes (:func:`update_lead_status`, :func:`log_interaction`) happen in the
caller's transaction, each with an ``audit_log`` entry.

The small ``parse_*`` helpers validate entity values before anything reaches the
database.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, func, select, true, update
from sqlalchemy.orm import Session

from crm_ml import authz
from crm_ml.db import models as m
from crm_ml.errors import CRMError, NotFound
from crm_ml.handoff import audit, utcnow
from crm_ml.identity import Identity

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


def _scope_word(identity: Identity) -> str:
    return {"rep": "own", "manager": "team"}.get(identity.role, "all")


def _in_scope(column: Any, scope: set[int] | None) -> Any:
    """A WHERE clause limiting ``column`` (a rep id) to ``scope`` (None: no limit)."""
    if scope is authz.ALL:
        return true()
    return column.in_(sorted(scope))


def _lead_scope(identity: Identity, session: Session) -> set[int] | None:
    authz.require(identity, "leads.read")
    return authz.rep_scope(identity, session=session)


# -------------------------------------------------------------------------- leads


@dataclass(frozen=True)
class LeadInfo:
    """A lead as a rep sees it.

    Attributes:
        id: Lead number.
        name: Lead's name.
        status: Pipeline status.
        source: ``bank_marketing`` or ``x_education``.
        rep_id: Owning rep.
        rep_name: Owning rep's name.
        score: Conversion probability (0..1), None when not scored yet.
        reasons: Reasons behind the score, strongest first.
        model_version: Version of the scoring model, when scored.
    """

    id: int
    name: str
    status: str
    source: str
    rep_id: int
    rep_name: str | None
    score: float | None
    reasons: list[Reason] = field(default_factory=list)
    model_version: str | None = None


def _lead_query() -> Any:
    return (
        select(m.Lead.id, m.Lead.name, m.Lead.status, m.Lead.source, m.Lead.rep_id,
               m.SalesRep.name.label("rep_name"), m.LeadScore.score, m.LeadScore.reasons,
               m.LeadScore.model_version)
        .outerjoin(m.LeadScore, m.LeadScore.lead_id == m.Lead.id)
        .outerjoin(m.SalesRep, m.SalesRep.id == m.Lead.rep_id)
    )


def _lead_info(row: Any) -> LeadInfo:
    return LeadInfo(row.id, row.name, row.status, row.source, row.rep_id, row.rep_name,
                    row.score, reasons_of(row.reasons), row.model_version)


def hot_leads(*, session: Session, identity: Identity, limit: int = 5) -> list[LeadInfo]:
    """The caller's open leads (not won or lost) with the highest scores.

    Args:
        session: The caller's session.
        identity: A rep (own leads) or a manager (the team's).
        limit: How many leads.

    Raises:
        Forbidden: the caller may not read leads.
    """
    scope = _lead_scope(identity, session)
    rows = session.execute(
        _lead_query()
        .where(m.LeadScore.score.is_not(None), m.Lead.status.not_in(CLOSED_STATUSES),
               _in_scope(m.Lead.rep_id, scope))
        .order_by(m.LeadScore.score.desc(), m.Lead.id)
        .limit(max(1, min(limit, 50)))
    ).all()
    return [_lead_info(r) for r in rows]


def find_lead(*, session: Session, identity: Identity, lead_id: int | None = None,
              lead_name: str | None = None) -> LeadInfo:
    """One of the caller's leads, by number or by name.

    Raises:
        Forbidden: the caller may not read leads.
        LeadNotFound: no such lead among the caller's (or team's) leads.
        AmbiguousLead: several of the caller's leads carry that name.
    """
    scope = _lead_scope(identity, session)
    where = _in_scope(m.Lead.rep_id, scope)
    if lead_id is not None:
        row = session.execute(_lead_query().where(m.Lead.id == lead_id, where)).first()
        if row is None:
            raise LeadNotFound(lead_id=lead_id, scope=_scope_word(identity))
        return _lead_info(row)
    name = " ".join((lead_name or "").split())
    if not name:
        raise LeadNotFound(lead_name=lead_name, scope=_scope_word(identity))
    rows = session.execute(
        _lead_query().where(func.lower(m.Lead.name) == name.lower(), where)
        .order_by(m.LeadScore.score.desc().nulls_last(), m.Lead.id).limit(6)
    ).all()
    if not rows:
        raise LeadNotFound(lead_name=name, scope=_scope_word(identity))
    if len(rows) > 1:
        count = session.scalar(select(func.count()).select_from(m.Lead).where(
            func.lower(m.Lead.name) == name.lower(), where)) or len(rows)
        raise AmbiguousLead(lead_name=rows[0].name, count=count,
                            candidates=[(r.id, r.status) for r in rows[:5]])
    return _lead_info(rows[0])


def explain_lead(*, session: Session, identity: Identity, lead_id: int | None = None,
                 lead_name: str | None = None) -> LeadInfo:
    """A lead's score and the reasons behind it (see :func:`find_lead` for errors)."""
    return find_lead(session=session, identity=identity, lead_id=lead_id, lead_name=lead_name)


@dataclass(frozen=True)
class StatusChange:
    """The outcome of a status update.

    Attributes:
        lead: The lead (before the change).
        old: Status before.
        new: Status after.
        changed: False when the lead already had that status (nothing written).
    """

    lead: LeadInfo
    old: str
    new: str
    changed: bool


def update_lead_status(*, session: Session, identity: Identity, status: str,
                       lead_id: int | None = None, lead_name: str | None = None
                       ) -> StatusChange:
    """Set a lead's status, owner-checked, with an audit entry ``old -> new``.

    Args:
        session: The caller's session (the caller commits).
        identity: A rep (own leads) or a manager (the team's).
        status: One of :data:`LEAD_STATUSES`.
        lead_id: The lead's number...
        lead_name: ...or its name.

    Raises:
        ValueError: ``status`` is not an allowed status.
        Forbidden: the caller may not change leads.
        LeadNotFound, AmbiguousLead: see :func:`find_lead`.
        CRMError: the lead changed under us (a concurrent update).
    """
    new = parse_status(status)
    if new is None:
        raise ValueError(f"unknown lead status {status!r}")
    authz.require(identity, "leads.write")
    lead = find_lead(session=session, identity=identity, lead_id=lead_id, lead_name=lead_name)
    if lead.status == new:
        return StatusChange(lead, lead.status, new, changed=False)
    scope = authz.rep_scope(identity, session=session)
    result = session.execute(
        update(m.Lead)
        .where(m.Lead.id == lead.id, m.Lead.status == lead.status,
               _in_scope(m.Lead.rep_id, scope))
        .values(status=new)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise CRMError(f"lead {lead.id} changed while updating its status")
    audit(session=session, actor=identity.user, action="update_lead_status", entity="leads",
          entity_id=str(lead.id), details={"old": lead.status, "new": new})
    logger.info("lead %s: %s -> %s by a %s", lead.id, lead.status, new, identity.role)
    return StatusChange(lead, lead.status, new, changed=True)


@dataclass(frozen=True)
class LoggedInteraction:
    """A call or note written to the CRM.

    Attributes:
        id: Interaction id.
        kind: ``"call"`` or ``"note"``.
        lead: The lead it is about, if any.
        customer_id: The customer it is about, if any.
        customer_name: That customer's name.
        duplicate: True when this message had already been logged (nothing new written).
    """

    id: int
    kind: str
    lead: LeadInfo | None
    customer_id: int | None
    customer_name: str | None
    duplicate: bool = False


def log_interaction(*, session: Session, identity: Identity, text: str, sender_id: str,
                    channel: str, kind: str | None = None, lead_id: int | None = None,
                    lead_name: str | None = None, customer_id: int | None = None,
                    event_id: str | None = None) -> LoggedInteraction:
    """Write a call or note about one of the caller's leads (or accounts), with an audit entry.

    Args:
        session: The caller's session (the caller commits).
        identity: A rep or a manager.
        text: What the rep said, stored as the note.
        sender_id: The conversation it came from.
        channel: Its channel.
        kind: ``"call"`` or ``"note"``; guessed from ``text`` when None.
        lead_id: The lead's number, or
        lead_name: its name, or
        customer_id: a customer of the caller's accounts.
        event_id: A unique id of the message (makes a retried action harmless).

    Raises:
        ValueError: no lead or customer given, or an unknown kind.
        Forbidden: the caller may not write leads.
        LeadNotFound, AmbiguousLead, CustomerNotFound: as the lookups.
    """
    authz.require(identity, "leads.write")
    kind = kind or interaction_kind(text)
    if kind not in INTERACTION_KINDS:
        raise ValueError(f"unknown interaction kind {kind!r}")
    lead: LeadInfo | None = None
    customer_name: str | None = None
    if lead_id is not None or lead_name:
        lead = find_lead(session=session, identity=identity, lead_id=lead_id,
                         lead_name=lead_name)
        customer_id = None
    elif customer_id is not None:
        customer_name = _reachable_customer(session, identity, customer_id)
    else:
        raise ValueError("a lead or a customer is needed")
    if event_id:
        existing = session.scalar(select(m.Interaction.id).where(
            m.Interaction.event_id == event_id))
        if existing is not None:
            return LoggedInteraction(existing, kind, lead, customer_id, customer_name,
                                     duplicate=True)
    row = m.Interaction(
        sender_id=sender_id[:128], channel=channel[:24], direction="out", kind=kind,
        text=text.strip()[:4000], customer_id=customer_id, lead_id=lead.id if lead else None,
        rep_id=_rep_row_id(session, identity), event_id=event_id, created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    audit(session=session, actor=identity.user, action="log_interaction",
          entity="interactions", entity_id=str(row.id),
          details={"kind": kind, "lead_id": row.lead_id, "customer_id": customer_id})
    return LoggedInteraction(row.id, kind, lead, customer_id, customer_name)


def _rep_row_id(session: Session, identity: Identity) -> int | None:
    """The ``sales_reps`` id of a rep or manager (by handle), None if unknown."""
    return session.scalar(select(m.SalesRep.id).where(m.SalesRep.handle == identity.user))


@dataclass(frozen=True)
class StatusCount:
    """Leads in one pipeline status.

    Attributes:
        status: The status.
        leads: How many.
        avg_score: Their average score (scored leads only), None if none scored.
    """

    status: str
    leads: int
    avg_score: float | None


@dataclass(frozen=True)
class Pipeline:
    """The caller's pipeline.

    Attributes:
        scope: ``"own"`` or ``"team"``.
        statuses: One entry per status in :data:`LEAD_STATUSES` order (then any other).
        total: All leads.
        avg_score: Average score of the scored leads.
        open_avg_score: Average score of the open (not won or lost) scored leads.
        won: Leads marked won.
        lost: Leads marked lost.
        converted_on_record: Leads whose recorded outcome is a conversion (source data).
    """

    scope: str
    statuses: list[StatusCount]
    total: int
    avg_score: float | None
    open_avg_score: float | None
    won: int
    lost: int
    converted_on_record: int

    @property
    def win_rate(self) -> float | None:
        """Won among the closed (won or lost) leads, None when none is closed."""
        closed = self.won + self.lost
        return self.won / closed if closed else None

    def count(self, status: str) -> StatusCount:
        """The entry of ``status`` (zero when absent)."""
        return next((s for s in self.statuses if s.status == status),
                    StatusCount(status, 0, None))


def pipeline_summary(*, session: Session, identity: Identity) -> Pipeline:
    """Counts per status, average scores and conversions of the caller's (team's) leads.

    Raises:
        Forbidden: the caller may not read leads.
    """
    scope = _lead_scope(identity, session)
    converted = func.sum(case((m.Lead.converted.is_(True), 1), else_=0))
    rows = session.execute(
        select(m.Lead.status, func.count(m.Lead.id).label("n"),
               func.avg(m.LeadScore.score).label("avg"),
               func.count(m.LeadScore.score).label("scored"),
               func.sum(m.LeadScore.score).label("score_sum"), converted.label("conv"))
        .outerjoin(m.LeadScore, m.LeadScore.lead_id == m.Lead.id)
        .where(_in_scope(m.Lead.rep_id, scope))
        .group_by(m.Lead.status)
    ).all()
    by_status = {r.status: r for r in rows}
    order = list(LEAD_STATUSES) + sorted(s for s in by_status if s not in LEAD_STATUSES)
    statuses = [StatusCount(s, int(by_status[s].n),
                            float(by_status[s].avg) if by_status[s].avg is not None else None)
                for s in order if s in by_status]

    def avg(selected: Iterable[Any]) -> float | None:
        chosen = list(selected)
        n = sum(int(r.scored) for r in chosen)
        return sum(float(r.score_sum or 0) for r in chosen) / n if n else None

    return Pipeline(
        scope=_scope_word(identity),
        statuses=statuses,
        total=sum(s.leads for s in statuses),
        avg_score=avg(rows),
        open_avg_score=avg(r for r in rows if r.status not in CLOSED_STATUSES),
        won=int(by_status["won"].n) if "won" in by_status else 0,
        lost=int(by_status["lost"].n) if "lost" in by_status else 0,
        converted_on_record=sum(int(r.conv or 0) for r in rows),
    )


# ----------------------------------------------------------------------- accounts


def _reachable_customer(session: Session, identity: Identity, customer_id: int) -> str:
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
        raise CustomerNotFound(customer_id=customer_id, scope=_scope_word(identity))
    return row.account or row.name


@dataclass(frozen=True)
class ChurnRisk:
    """A customer's churn probability (no purchase in the next 90 days).

    Attributes:
        customer_id: Customer number.
        name: Account (or customer) name.
        probability: 0..1, None when not scored.
        reasons: Why, strongest first.
    """

    customer_id: int
    name: str
    probability: float | None
    reasons: list[Reason]


def churn_risks(*, session: Session, identity: Identity, limit: int = 5) -> list[ChurnRisk]:
    """The caller's accounts most likely to churn (agents: all accounts).

    Raises:
        Forbidden: the caller may not read accounts.
    """
    authz.require(identity, "accounts.read")
    scope = authz.rep_scope(identity, session=session)
    rows = session.execute(
        select(m.ChurnScore.customer_id, m.ChurnScore.probability, m.ChurnScore.reasons,
               func.coalesce(m.Account.name, m.Customer.name).label("name"))
        .join(m.Customer, m.Customer.id == m.ChurnScore.customer_id)
        .outerjoin(m.Account, m.Account.customer_id == m.ChurnScore.customer_id)
        .where(_in_scope(m.Account.rep_id, scope))
        .order_by(m.ChurnScore.probability.desc(), m.ChurnScore.customer_id)
        .limit(max(1, min(limit, 50)))
    ).all()
    return [ChurnRisk(r.customer_id, r.name, r.probability, reasons_of(r.reasons))
            for r in rows]


def churn_risk(*, session: Session, identity: Identity, customer_id: int) -> ChurnRisk:
    """One account's churn probability and reasons.

    Raises:
        Forbidden: the caller may not read customers.
        CustomerNotFound: not among the caller's accounts.
    """
    name = _reachable_customer(session, identity, customer_id)
    score = session.get(m.ChurnScore, customer_id)
    if score is None:
        return ChurnRisk(customer_id, name, None, [])
    return ChurnRisk(customer_id, name, score.probability, reasons_of(score.reasons))


@dataclass(frozen=True)
class CustomerSegment:
    """Where a customer sits in the RFM segmentation and the K-Means clusters.

    Attributes:
        customer_id: Customer number.
        name: Account (or customer) name.
        segment: RFM segment name, None when not segmented yet.
        recency_days: Days since the last purchase.
        frequency: Number of orders.
        monetary: Total spend.
        r_score: Recency score (1..5).
        f_score: Frequency score (1..5).
        m_score: Monetary score (1..5).
        cluster: K-Means cluster number.
        cluster_name: Its name.
    """

    customer_id: int
    name: str
    segment: str | None
    recency_days: int | None = None
    frequency: int | None = None
    monetary: float | None = None
    r_score: int | None = None
    f_score: int | None = None
    m_score: int | None = None
    cluster: int | None = None
    cluster_name: str | None = None


def customer_segment(*, session: Session, identity: Identity,
                     customer_id: int) -> CustomerSegment:
    """A customer's RFM segment, values and cluster (reps: own accounts; agents: all).

    Raises:
        Forbidden: the caller may not read customers.
        CustomerNotFound: not among the caller's accounts.
    """
    name = _reachable_customer(session, identity, customer_id)
    seg = session.get(m.Segment, customer_id)
    if seg is None:
        return CustomerSegment(customer_id, name, None)
    return CustomerSegment(customer_id, name, seg.rfm_segment, seg.recency_days, seg.frequency,
                           float(seg.monetary), seg.r_score, seg.f_score, seg.m_score,
                           seg.cluster, seg.cluster_name)


@dataclass(frozen=True)
class SegmentStats:
    """One RFM segment.

    Attributes:
        segment: Its name as stored.
        customers: Customers in it.
        avg_monetary: Average total spend.
        avg_recency_days: Average days since the last purchase.
        avg_frequency: Average number of orders.
        total_monetary: Total spend of the segment.
        yours: How many of them are the caller's (team's) accounts; None for agents.
    """

    segment: str
    customers: int
    avg_monetary: float
    avg_recency_days: float
    avg_frequency: float
    total_monetary: float
    yours: int | None


@dataclass(frozen=True)
class TopAccount:
    """An account in a segment, for the "which of mine are in it" part of the answer."""

    customer_id: int
    name: str
    monetary: float


@dataclass(frozen=True)
class SegmentSummary:
    """Counts and values per RFM segment.

    Attributes:
        segments: Largest first (or the one segment asked for).
        total_customers: Customers segmented in all.
        scope: ``"own"``, ``"team"`` or ``"all"``.
        asked: The canonical segment asked for, or None for all.
        top_accounts: With a segment asked: the caller's biggest accounts in it.
    """

    segments: list[SegmentStats]
    total_customers: int
    scope: str
    asked: str | None = None
    top_accounts: list[TopAccount] = field(default_factory=list)


def _stored_segments(session: Session, column: Any, canonical: str) -> list[str]:
    """Stored spellings of a canonical segment ("Loyal" may be stored "Loyal Customers")."""
    values = session.scalars(select(column).distinct().where(column.is_not(None))).all()
    return [v for v in values if canonical_segment(v) == canonical]


def segment_summary(*, session: Session, identity: Identity,
                    segment: str | None = None) -> SegmentSummary:
    """Counts and average values per RFM segment, or for one segment.

    Company-wide figures (analytics); for reps and managers each segment also says how
    many of the caller's (team's) accounts it holds, and with a segment asked, their
    biggest accounts in it.

    Args:
        session: The caller's session.
        identity: Any staff member.
        segment: A segment as the user said it (see :func:`canonical_segment`), or None.

    Raises:
        ValueError: ``segment`` is not a known RFM segment.
        Forbidden: the caller may not read analytics.
        NoData: no customer has been segmented yet.
    """
    authz.require(identity, "analytics.read")
    asked = None
    if segment is not None:
        asked = canonical_segment(segment)
        if asked is None:
            raise ValueError(f"unknown segment {segment!r}")
    scope = authz.rep_scope(identity, session=session)  # None for agents: no "yours"
    total = session.scalar(select(func.count()).select_from(m.Segment)) or 0
    if total == 0:
        raise NoData("segments")
    where: Any = true()
    if asked is not None:
        where = m.Segment.rfm_segment.in_(_stored_segments(session, m.Segment.rfm_segment,
                                                           asked) or [asked])
    rows = session.execute(
        select(m.Segment.rfm_segment, func.count().label("n"),
               func.avg(m.Segment.monetary).label("mon"),
               func.avg(m.Segment.recency_days).label("rec"),
               func.avg(m.Segment.frequency).label("freq"),
               func.sum(m.Segment.monetary).label("total"))
        .where(where).group_by(m.Segment.rfm_segment)
    ).all()
    yours: dict[str, int] = {}
    top: list[TopAccount] = []
    if scope is not None:
        yours = dict(session.execute(
            select(m.Segment.rfm_segment, func.count())
            .join(m.Account, m.Account.customer_id == m.Segment.customer_id)
            .where(where, _in_scope(m.Account.rep_id, scope))
            .group_by(m.Segment.rfm_segment)
        ).tuples().all())
        if asked is not None:
            top = [TopAccount(r.customer_id, r.name, float(r.monetary)) for r in session.execute(
                select(m.Segment.customer_id, m.Account.name, m.Segment.monetary)
                .join(m.Account, m.Account.customer_id == m.Segment.customer_id)
                .where(where, _in_scope(m.Account.rep_id, scope))
                .order_by(m.Segment.monetary.desc(), m.Segment.customer_id).limit(5)
            ).all()]
    stats = [SegmentStats(r.rfm_segment, int(r.n), float(r.mon or 0), float(r.rec or 0),
                          float(r.freq or 0), float(r.total or 0),
                          yours.get(r.rfm_segment, 0) if scope is not None else None)
             for r in rows]
    stats.sort(key=lambda s: (-s.customers, s.segment))
    return SegmentSummary(stats, int(total), _scope_word(identity), asked, top)


@dataclass(frozen=True)
class ProductPick:
    """A recommended product.

    Attributes:
        stock_code: Product code.
        description: What it is.
        unit_price: Price of one unit.
        score: Recommendation score.
    """

    stock_code: str
    description: str
    unit_price: float
    score: float


@dataclass(frozen=True)
class Recommendations:
    """Products to offer a customer.

    Attributes:
        customer_id: Customer number.
        name: Account (or customer) name.
        products: Best first.
        basis: ``"customer"`` (picked for them), ``"segment"`` (popular in their
            segment) or ``"popular"`` (best sellers), or ``"none"``.
        segment: The segment used for a segment fallback.
    """

    customer_id: int
    name: str
    products: list[ProductPick]
    basis: str
    segment: str | None = None


def _picks(session: Session, where: Any, limit: int) -> list[ProductPick]:
    rows = session.execute(
        select(m.Recommendation.stock_code, m.Product.description, m.Product.unit_price,
               m.Recommendation.score)
        .join(m.Product, m.Product.stock_code == m.Recommendation.stock_code)
        .where(where)
        .order_by(m.Recommendation.rank, m.Recommendation.score.desc())
        .limit(limit)
    ).all()
    return [ProductPick(r.stock_code, r.description, float(r.unit_price), float(r.score))
            for r in rows]


def customer_recommendations(*, session: Session, identity: Identity, customer_id: int,
                             limit: int = 5) -> Recommendations:
    """The top products to offer one of the caller's accounts.

    Picks made for the customer first; without any (a cold start), the picks of the
    customer's RFM segment, then the overall best sellers.

    Raises:
        Forbidden: the caller may not read customers.
        CustomerNotFound: not among the caller's accounts.
    """
    name = _reachable_customer(session, identity, customer_id)
    limit = max(1, min(limit, 20))
    picks = _picks(session, m.Recommendation.customer_id == customer_id, limit)
    if picks:
        return Recommendations(customer_id, name, picks, "customer")
    seg = session.get(m.Segment, customer_id)
    if seg is not None:
        canonical = canonical_segment(seg.rfm_segment) or seg.rfm_segment
        stored = _stored_segments(session, m.Recommendation.segment, canonical)
        if stored:
            picks = _picks(session, and_(m.Recommendation.customer_id.is_(None),
                                         m.Recommendation.segment.in_(stored)), limit)
            if picks:
                return Recommendations(customer_id, name, picks, "segment", seg.rfm_segment)
    picks = _picks(session, and_(m.Recommendation.customer_id.is_(None),
                                 m.Recommendation.segment.is_(None)), limit)
    return Recommendations(customer_id, name, picks, "popular" if picks else "none")


# ---------------------------------------------------------------------- forecasts


@dataclass(frozen=True)
class ForecastPoint:
    """One week of a forecast (``lower``/``upper``: the 95% interval)."""

    period_start: dt.date
    yhat: float
    lower: float
    upper: float


@dataclass(frozen=True)
class ForecastData:
    """A stored forecast and the actuals before it (for charts).

    Attributes:
        series: The series (``total``, ``country:<name>``, ``segment:<name>``).
        model_version: The forecasting model's version.
        points: The first ``weeks`` forecast weeks.
        history: ``(week start, revenue)`` of the weeks before the forecast, oldest first.
        available_weeks: How many weeks the stored forecast holds in all.
    """

    series: str
    model_version: str
    points: list[ForecastPoint]
    history: list[tuple[dt.date, float]]
    available_weeks: int


@dataclass(frozen=True)
class ForecastSummary:
    """A forecast over a horizon, in figures a rep can say.

    Attributes:
        series: The series used.
        requested_weeks: The horizon asked for.
        points: The weeks covered (fewer than asked when the forecast is shorter).
        total: Sum of the weekly forecasts.
        lower: Lower end of the 95% range of the total (sum of the weekly lower bounds).
        upper: Upper end (sum of the weekly upper bounds).
        model_version: The forecasting model's version.
    """

    series: str
    requested_weeks: int
    points: list[ForecastPoint]
    total: float
    lower: float
    upper: float
    model_version: str

    @property
    def weeks(self) -> int:
        """Weeks covered."""
        return len(self.points)

    @property
    def lowest_week(self) -> ForecastPoint:
        """The week with the smallest forecast."""
        return min(self.points, key=lambda p: (p.yhat, p.period_start))

    @property
    def highest_week(self) -> ForecastPoint:
        """The week with the largest forecast."""
        return max(self.points, key=lambda p: (p.yhat, p.period_start))


def forecast_series_names(*, session: Session) -> list[str]:
    """The series with a stored forecast."""
    return list(session.scalars(select(m.Forecast.series).distinct().order_by(m.Forecast.series)))


def resolve_series(*, session: Session, segment: str | None = None) -> str:
    """``segment:<stored name>`` when a forecast of that segment exists, else ``total``."""
    canonical = canonical_segment(segment) if segment else None
    if canonical is None:
        return "total"
    for name in forecast_series_names(session=session):
        if name.startswith("segment:") and canonical_segment(name[8:]) == canonical:
            return name
    return "total"


def _latest_points(session: Session, series: str) -> tuple[str, list[ForecastPoint]]:
    version = session.scalar(
        select(m.Forecast.model_version).where(m.Forecast.series == series)
        .order_by(m.Forecast.created_at.desc(), m.Forecast.id.desc()).limit(1)
    )
    if version is None:
        raise NoData("forecast")
    rows = session.execute(
        select(m.Forecast.period_start, m.Forecast.yhat, m.Forecast.lower, m.Forecast.upper)
        .where(m.Forecast.series == series, m.Forecast.model_version == version)
        .order_by(m.Forecast.period_start)
    ).all()
    return version, [ForecastPoint(r.period_start, float(r.yhat), float(r.lower), float(r.upper))
                     for r in rows]


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def weekly_actuals(*, session: Session, series: str, before: dt.date,
                   weeks: int = 52) -> list[tuple[dt.date, float]]:
    """Weekly sales revenue of a series in the ``weeks`` weeks before ``before``.

    Weeks are aligned on ``before`` (each starts ``7 * k`` days before it), so that
    they line up with the forecast weeks. Weeks without sales count as zero.
    """
    start = before - dt.timedelta(days=7 * weeks)
    day = func.date(m.Order.invoiced_at)
    stmt = (select(day.label("day"), func.sum(m.Order.total).label("revenue"))
            .where(m.Order.kind == "sale",
                   m.Order.invoiced_at >= dt.datetime.combine(start, dt.time()),
                   m.Order.invoiced_at < dt.datetime.combine(before, dt.time())))
    if series.startswith("country:"):
        stmt = stmt.where(m.Order.country == series[8:])
    elif series.startswith("segment:"):
        canonical = canonical_segment(series[8:]) or series[8:]
        stored = _stored_segments(session, m.Segment.rfm_segment, canonical) or [series[8:]]
        stmt = stmt.join(m.Segment, m.Segment.customer_id == m.Order.customer_id).where(
            m.Segment.rfm_segment.in_(stored))
    buckets = [0.0] * weeks
    for row in session.execute(stmt.group_by(day)).all():
        ago = (before - _as_date(row.day)).days
        index = (ago - 1) // 7
        if 0 <= index < weeks:
            buckets[index] += float(row.revenue or 0)
    return [(before - dt.timedelta(days=7 * (k + 1)), buckets[k]) for k in reversed(range(weeks))]


def forecast_series(*, session: Session, series: str = "total", weeks: int = 13,
                    history_weeks: int = 52) -> ForecastData:
    """The latest stored forecast of ``series`` (first ``weeks`` weeks) and recent actuals.

    Aggregate figures for charts, without identity: callers decide who may see them.

    Raises:
        NoData: no forecast of that series is stored.
    """
    version, points = _latest_points(session, series)
    if not points:
        raise NoData("forecast")
    history = weekly_actuals(session=session, series=series, before=points[0].period_start,
                             weeks=max(0, min(history_weeks, 156)))
    return ForecastData(series, version, points[:max(1, weeks)], history, len(points))


def sales_forecast(*, session: Session, identity: Identity, weeks: int = 13,
                   series: str | None = None, segment: str | None = None) -> ForecastSummary:
    """The revenue forecast over the next ``weeks`` weeks, with its 95% range.

    The range of the total is the sum of the weekly bounds: exact if the weekly
    errors move together, wider than needed if they are independent, so it errs
    on the cautious side.

    Args:
        session: The caller's session.
        identity: Any staff member.
        weeks: Horizon, 1..52.
        series: The series; default ``total``, or the segment's series when given.
        segment: A segment as the user said it; its own forecast when one is stored
            (``ForecastSummary.series`` tells which series was used).

    Raises:
        ValueError: ``weeks`` is outside 1..52.
        Forbidden: the caller may not read analytics.
        NoData: no forecast is stored.
    """
    if not 1 <= weeks <= 52:
        raise ValueError("weeks must be between 1 and 52")
    authz.require(identity, "analytics.read")
    series = series or resolve_series(session=session, segment=segment)
    version, points = _latest_points(session, series)
    chosen = points[:weeks]
    if not chosen:
        raise NoData("forecast")
    return ForecastSummary(series, weeks, chosen, sum(p.yhat for p in chosen),
                           sum(p.lower for p in chosen), sum(p.upper for p in chosen), version)
