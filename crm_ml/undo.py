"""Undo: every write the assistant makes in a conversation can be reverted by "undo".

A write (a logged call or note, a lead's status change, a follow-up task) calls
:func:`remember` in the same transaction, with what is needed to put things
back. :func:`undo_last` reverts the latest write of that conversation made by
the same person, once, and audits it (``audit_log`` action ``undo``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_ml.audit import audit, utcnow
from crm_ml.db import models as m
from crm_ml.db.models_sales import Task, UndoEntry
from crm_ml.errors import NotFound
from crm_ml.identity import Identity

__all__ = ["NothingToUndo", "Undone", "remember", "undo_last"]

logger = logging.getLogger(__name__)


class NothingToUndo(NotFound):
    """This conversation has no write left to undo."""

    def __init__(self) -> None:
        super().__init__("nothing to undo")


@dataclass(frozen=True)
class Undone:
    """What :func:`undo_last` reverted.

    Attributes:
        action: The write that was reverted (``log_interaction``, ``update_lead_status``,
            ``create_task``).
        summary: That write in words ("a call with lead 412").
        still_changed: False when the row had changed since (nothing to revert, marked
            undone anyway).
    """

    action: str
    summary: str
    still_changed: bool = True


def remember(*, session: Session, sender_id: str | None, actor: str, action: str,
             entity: str, entity_id: Any, summary: str,
             before: dict[str, Any] | None = None) -> None:
    """Keep a write of this conversation so "undo" can revert it (caller's transaction)."""
    if not sender_id:
        return
    session.add(UndoEntry(sender_id=sender_id[:128], actor=actor[:128], action=action,
                          entity=entity, entity_id=str(entity_id), summary=summary[:1000],
                          before=before or {}, created_at=utcnow()))


def undo_last(*, session: Session, identity: Identity, sender_id: str) -> Undone:
    """Revert the latest write ``identity`` made in conversation ``sender_id``.

    Raises:
        NothingToUndo: no write left to undo in this conversation.
    """
    entry = session.scalars(
        select(UndoEntry)
        .where(UndoEntry.sender_id == sender_id, UndoEntry.actor == identity.user,
               UndoEntry.undone_at.is_(None))
        .order_by(UndoEntry.id.desc()).limit(1)).first()
    if entry is None:
        raise NothingToUndo()
    reverted = _revert(session, entry)
    entry.undone_at = utcnow()
    audit(session=session, actor=identity.user, action="undo", entity=entry.entity,
          entity_id=entry.entity_id, details={"undid": entry.action, "reverted": reverted})
    logger.info("undo of %s on %s by a %s", entry.action, entry.entity, identity.role)
    return Undone(entry.action, entry.summary, still_changed=reverted)


def _revert(session: Session, entry: UndoEntry) -> bool:
    """Put the row back; False when it is already gone or changed since."""
    if entry.action == "log_interaction":
        row = session.get(m.Interaction, int(entry.entity_id))
        if row is None:
            return False
        session.delete(row)
        return True
    if entry.action == "update_lead_status":
        result = session.execute(
            update(m.Lead)
            .where(m.Lead.id == int(entry.entity_id), m.Lead.status == entry.before.get("new"))
            .values(status=entry.before.get("old"))
            .execution_options(synchronize_session=False))
        return result.rowcount == 1
    if entry.action in ("create_task", "complete_task"):
        task = session.get(Task, int(entry.entity_id))
        if task is None:
            return False
        if entry.action == "create_task":
            task.status = "cancelled"
        else:
            task.status, task.done_at = "open", None
        return True
    logger.warning("no way to undo %s", entry.action)
    return False
