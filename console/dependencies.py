"""Who is signed in: the console's FastAPI dependencies, in one place.

Two ways to prove who you are (DESIGN.md):

* signed headers ``X-CRM-User: <user>`` and ``X-CRM-Sig: <hex>`` (HMAC-SHA256 of
  the user under ``CRM_IDENTITY_SECRET``), for the API and scripts;
* the console's session cookie, after an agent signed in with their password
  (:mod:`console.auth`), for the pages.

* :func:`require_agent`: the API's caller (headers only): 401 or 403 as JSON.
* :func:`current_viewer`: a page's agent (headers, else the session):
  :class:`~console.auth.LoginRequired` or :class:`~console.auth.Forbidden`.
* :func:`staff_identity`: whoever asks for staff data such as a chart (any signed
  role, or the signed-in agent), for :mod:`crm_ml.authz` to judge.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from console.auth import Forbidden, LoginRequired, get_session, password_fingerprint
from crm_ml import agents
from crm_ml.config import get_settings
from crm_ml.db import session_scope
from crm_ml.identity import Identity, from_metadata, parse_user

__all__ = [
    "AgentIdentity",
    "AgentViewer",
    "Viewer",
    "current_viewer",
    "header_identity",
    "require_agent",
    "signed_identity",
    "staff_identity",
]

logger = logging.getLogger(__name__)


def signed_identity(user: str | None, sig: str | None) -> Identity:
    """The identity ``user`` proves with ``sig`` (anonymous when the signature is wrong)."""
    return from_metadata({"auth": {"user": user, "sig": sig}}, get_settings().identity_secret)


def header_identity(request: Request) -> Identity | None:
    """The identity of the signed ``X-CRM-User`` headers; None when the request has none."""
    user = request.headers.get("X-CRM-User")
    if not user:
        return None
    return signed_identity(user, request.headers.get("X-CRM-Sig"))


def require_agent(
    x_crm_user: Annotated[str | None, Header()] = None,
    x_crm_sig: Annotated[str | None, Header()] = None,
) -> Identity:
    """The signed agent calling the API; 401 without a valid signature, 403 for non-agents."""
    identity = signed_identity(x_crm_user, x_crm_sig)
    if identity.number is None:
        raise HTTPException(401, "sign in as an agent")
    if identity.role != "agent":
        raise HTTPException(403, "agents only")
    return identity


@dataclass(frozen=True)
class Viewer:
    """The signed-in agent looking at a console page."""

    identity: Identity
    name: str
    username: str
    via_session: bool = True  # False: signed X-CRM-User headers (no cookie, no CSRF risk)

    @property
    def user(self) -> str:
        """The agent's user id, ``agent:<n>``."""
        return self.identity.user


def current_viewer(request: Request) -> Viewer:
    """The agent behind this request: signed ``X-CRM-User`` headers, or the session cookie.

    A session stays valid while the agent's password is the one they signed in with.

    Raises:
        LoginRequired: nobody is signed in.
        Forbidden: signed in, but not as an agent.
    """
    ident = header_identity(request)
    if ident is not None:
        if ident.number is None:
            raise LoginRequired()
        if ident.role != "agent":
            raise Forbidden()
        return Viewer(ident, f"Agent {ident.number}", f"agent{ident.number}", via_session=False)

    session = get_session(request)
    ident = parse_user(session.data.get("user") or "")
    if ident is None or session.secret is None:
        raise LoginRequired()
    if ident.role != "agent":
        raise Forbidden()
    with session_scope() as s:
        agent = agents.get_agent(session=s, agent_id=ident.number or 0)
        if agent is None or not hmac.compare_digest(
                password_fingerprint(agent.password_hash, session.secret),
                str(session.data.get("pw", ""))):
            session.clear()
            raise LoginRequired()
        return Viewer(ident, agent.name, agent.username)


def staff_identity(request: Request) -> Identity | None:
    """Who asks: the signed headers' identity (any role), else the signed-in agent; else None.

    Raises:
        CRMUnavailable: the CRM could not be asked whether the session is valid.
    """
    ident = header_identity(request)
    if ident is not None:
        return ident
    try:
        return current_viewer(request).identity
    except (LoginRequired, Forbidden):
        return None


AgentIdentity = Annotated[Identity, Depends(require_agent)]
AgentViewer = Annotated[Viewer, Depends(current_viewer)]
