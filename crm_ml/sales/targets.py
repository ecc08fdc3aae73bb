"""Writes aimed by a bare number: "log call w/ 48122", "remind me to call 49498".

A number without "lead" or "customer" before it is looked up among the caller's
OWN leads and accounts (a manager's: the team's): one match is the target; a
lead and a customer with that number are both offered back (the write waits);
no match writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from crm_ml.identity import Identity
from crm_ml.sales.common import Target, resolve_number
from crm_ml.sales.leads import LoggedInteraction, log_interaction

__all__ = ["NeedsChoice", "aim", "log_by_number"]


@dataclass(frozen=True)
class NeedsChoice:
    """The number matched none or several of the caller's leads and accounts.

    Attributes:
        number: The number said.
        targets: What it may mean (empty: nothing of the caller's).
    """

    number: int
    targets: list[Target] = field(default_factory=list)


def aim(session: Session, identity: Identity, number: int, kind: str | None = None
        ) -> Target | NeedsChoice:
    """The caller's lead or account ``number`` means (``kind`` "lead"/"customer" when said)."""
    found = resolve_number(session, identity, number)
    if kind is not None:
        found = [t for t in found if t.kind == kind]
    return found[0] if len(found) == 1 else NeedsChoice(number, found)


def log_by_number(*, session: Session, identity: Identity, number: int, text: str,
                  sender_id: str, channel: str, kind: str | None = None,
                  event_id: str | None = None) -> LoggedInteraction | NeedsChoice:
    """Log a call or note on what ``number`` means (see :func:`aim`); nothing when unclear.

    Args:
        kind: ``"lead"`` or ``"customer"`` when the message said which.
    """
    target = aim(session, identity, number, kind)
    if isinstance(target, NeedsChoice):
        return target
    return log_interaction(
        session=session, identity=identity, text=text, sender_id=sender_id, channel=channel,
        lead_id=target.id if target.kind == "lead" else None,
        customer_id=target.id if target.kind == "customer" else None, event_id=event_id)
