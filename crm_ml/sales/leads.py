"""A rep's leads: the hottest, one lead and its reasons, status changes, calls and notes.

Every function is keyword-only, takes the caller's session and
:class:`~crm_ml.identity.Identity`, and asks :mod:`crm_ml.authz` first: a rep sees
only their own leads, a manager their team's; agents, customers and anonymous
callers get :class:`~crm_ml.authz.Forbidden`. A lead outside the caller's reach
is reported exactly like one that does not exist (:class:`LeadNotFound`).

Writes (:func:`update_lead_status`, :func:`log_interaction`) happen in the
caller's transaction, each with an ``audit_log`` entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from crm_ml import authz
from crm_ml.audit import audit, utcnow
from crm_ml.db import models as m
from crm_ml.errors import CRMError
from crm_ml.identity import Identity
from crm_ml.sales.common import (
    CLOSED_STATUSES,
    INTERACTION_KINDS,
    LEAD_STATUSES,
    AmbiguousLead,
    LeadNotFound,
    Reason,
    in_scope,
    interaction_kind,
    lead_scope,
    parse_status,
    reachable_customer,
    reasons_of,
    scope_word,
)
from crm_ml.undo import remember

__all__ = [
    "LeadInfo",
    "LoggedInteraction",
    "Pipeline",
    "StatusChange",
    "StatusCount",
    "explain_lead",
    "find_lead",
    "hot_leads",
    "log_interaction",
    "pipeline_summary",
    "update_lead_status",
]

logger = logging.getLogger(__name__)


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


def hot_leads(*, session: Session, identity: Identity, limit: int = 5,
              source: str | None = None, status: str | None = None) -> list[LeadInfo]:
    """The caller's open leads (not won or lost) with the highest scores.

    Args:
        session: The caller's session.
        identity: A rep (own leads) or a manager (the team's).
        limit: How many leads (1..50).
        source: Only leads from this source (``bank_marketing``, ``x_education``).
        status: Only leads in this status (a closed status lists closed leads).

    Raises:
        Forbidden: the caller may not read leads.
    """
    scope = lead_scope(identity, session)
    wanted = parse_status(status)
    where = [m.LeadScore.score.is_not(None), in_scope(m.Lead.rep_id, scope),
             m.Lead.status == wanted if wanted else m.Lead.status.not_in(CLOSED_STATUSES)]
    if source:
        where.append(m.Lead.source == source)
    rows = session.execute(
        _lead_query()
        .where(*where)
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
    scope = lead_scope(identity, session)
    where = in_scope(m.Lead.rep_id, scope)
    if lead_id is not None:
        row = session.execute(_lead_query().where(m.Lead.id == lead_id, where)).first()
        if row is None:
            raise LeadNotFound(lead_id=lead_id, scope=scope_word(identity))
        return _lead_info(row)
    name = " ".join((lead_name or "").split())
    if not name:
        raise LeadNotFound(lead_name=lead_name, scope=scope_word(identity))
    rows = session.execute(
        _lead_query().where(func.lower(m.Lead.name) == name.lower(), where)
        .order_by(m.LeadScore.score.desc().nulls_last(), m.Lead.id).limit(6)
    ).all()
    if not rows:
        raise LeadNotFound(lead_name=name, scope=scope_word(identity))
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
                       lead_id: int | None = None, lead_name: str | None = None,
                       sender_id: str | None = None) -> StatusChange:
    """Set a lead's status, owner-checked, with an audit entry ``old -> new``.

    Args:
        session: The caller's session (the caller commits).
        identity: A rep (own leads) or a manager (the team's).
        status: One of :data:`LEAD_STATUSES`.
        lead_id: The lead's number...
        lead_name: ...or its name.
        sender_id: The conversation (its "undo" can revert the change).

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
               in_scope(m.Lead.rep_id, scope))
        .values(status=new)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise CRMError(f"lead {lead.id} changed while updating its status")
    audit(session=session, actor=identity.user, action="update_lead_status", entity="leads",
          entity_id=str(lead.id), details={"old": lead.status, "new": new})
    remember(session=session, sender_id=sender_id, actor=identity.user,
             action="update_lead_status", entity="leads", entity_id=lead.id,
             summary=f"lead {lead.id} set to {new} (it was {lead.status})",
             before={"old": lead.status, "new": new})
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
        customer_name = reachable_customer(session, identity, customer_id)
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
    about = f"lead {lead.id}" if lead is not None else f"customer {customer_id}"
    remember(session=session, sender_id=sender_id, actor=identity.user,
             action="log_interaction", entity="interactions", entity_id=row.id,
             summary=f"the {kind} logged on {about}")
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
    scope = lead_scope(identity, session)
    converted = func.sum(case((m.Lead.converted.is_(True), 1), else_=0))
    rows = session.execute(
        select(m.Lead.status, func.count(m.Lead.id).label("n"),
               func.avg(m.LeadScore.score).label("avg"),
               func.count(m.LeadScore.score).label("scored"),
               func.sum(m.LeadScore.score).label("score_sum"), converted.label("conv"))
        .outerjoin(m.LeadScore, m.LeadScore.lead_id == m.Lead.id)
        .where(in_scope(m.Lead.rep_id, scope))
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
        scope=scope_word(identity),
        statuses=statuses,
        total=sum(s.leads for s in statuses),
        avg_score=avg(rows),
        open_avg_score=avg(r for r in rows if r.status not in CLOSED_STATUSES),
        won=int(by_status["won"].n) if "won" in by_status else 0,
        lost=int(by_status["lost"].n) if "lost" in by_status else 0,
        converted_on_record=sum(int(r.conv or 0) for r in rows),
    )
