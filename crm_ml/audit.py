"""The audit log: who did what to which CRM row, written in the caller's transaction.

Every module that changes the CRM on someone's behalf (handoff, tickets, sales,
support, GDPR, console agents) writes its entry here. :func:`utcnow` is the
CRM's clock: naive UTC, as every timestamp column stores it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.orm import Session

from crm_ml.db import models as m

__all__ = ["audit", "utcnow"]

logger = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    """Naive UTC now, as stored in the CRM."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def audit(*, session: Session, actor: str, action: str, entity: str,
          entity_id: str | None = None, details: dict[str, Any] | None = None) -> None:
    """Write one audit log entry in the caller's transaction.

    Args:
        session: The caller's session (the entry commits with the change it records).
        actor: Who acted: a sender id, ``agent:<n>``, ``rep:<n>``, ``console``, ``bot``...
        action: What they did (``open_ticket``, ``resolve``, ``create_agent``...).
        entity: The table acted on.
        entity_id: The row acted on, if one.
        details: Extra facts (never personal data such as e-mail addresses).
    """
    session.add(m.AuditLog(actor=actor, action=action, entity=entity, entity_id=entity_id,
                           details=details or {}, at=utcnow()))
