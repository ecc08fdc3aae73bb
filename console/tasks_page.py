"""The tasks page: a rep's (or manager's own) open follow-ups, overdue first.

Reps and managers prove who they are with the signed ``X-CRM-User`` headers
(:func:`console.dependencies.staff_identity`); anyone else gets 401 (no identity)
or 403 (a role without follow-ups: agents, customers). Mounted by
:func:`console.app.create_app` with ``app.include_router(tasks_page.router)``.
"""

from __future__ import annotations

import datetime as dt
import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from console.dependencies import staff_identity
from console.pages import render
from crm_ml import authz, followups
from crm_ml.audit import utcnow
from crm_ml.db import session_scope

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


@router.get("/tasks", response_class=HTMLResponse)
def tasks(request: Request) -> HTMLResponse:
    """The caller's open follow-ups, due ones marked."""
    identity = staff_identity(request)
    if identity is None:
        raise HTTPException(status_code=401, detail="sign in")
    if not authz.allowed(identity, "leads.write"):
        raise HTTPException(status_code=403, detail="no follow-ups for this role")
    now = utcnow()
    with session_scope() as session:
        items = followups.my_followups(session=session, identity=identity, span="all")
        due = {t.id for t in followups.due_tasks(session=session, identity=identity, now=now)}
    rows = [{"id": t.id, "when": f"{t.due_local:%a %d %b %Y %H:%M}", "zone": t.timezone,
             "kind": t.kind, "about": t.about, "title": t.title, "due": t.id in due}
            for t in items]
    return render(request, "tasks.html", {"tasks": rows, "user": identity.user,
                                          "today": dt.date.today()}, forms=False)
