"""The console's pages (server-rendered, Jinja2): sign-in, inbox, escalation, insights, chat.

* ``GET /login``, ``POST /login``, ``POST /logout``
* ``GET /``: the inbox: escalations and tickets as one list of threads (status,
  channel, customer, reason, sentiment, waiting time, who claimed it), filtered by
  ``status`` and ``channel``, paged (``/inbox/rows`` refreshes the table every few seconds)
* ``GET /escalations/{id}``: the agent's summary of the conversation, profile, live
  transcript (``/escalations/{id}/live``, polled every 2 s), claim, reply and resolve forms
* ``GET /tickets/{id}``: a ticket of another kind, with its conversation and summary
* ``POST /threads/{kind}/{id}/claim`` (``takeover=1`` to take another agent's),
  ``POST /threads/{kind}/{id}/release``
* ``GET /insights``: segments, forecast, sentiment and escalations per day, hot leads
* ``GET /chat``: the customers' web chat on Rasa's socket.io channel

Every page but ``/login`` and ``/chat`` is for agents; a visit counts as the agent's
heartbeat. Forms carry the session's CSRF token. A reply claims the thread; a
thread another agent claimed takes no reply until it is taken over. Replies and resolutions go
through the same path as the API: :func:`crm_ml.handoff.reply_to_escalation` or
:func:`crm_ml.handoff.resolve_escalation`, then :func:`console.api.rasa_handoff`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi import Path as FastPath
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from console import insights as ins
from console import model_panels
from console.api import (
    EscalationId,
    crm_call,
    email_reply,
    rasa_handoff,
    record_reply,
    record_resolve,
)
from console.auth import (
    authenticate,
    check_csrf,
    get_session,
    password_fingerprint,
    too_many_failures,
)
from console.dependencies import AgentViewer, Viewer, signed_identity
from crm_ml import agents, handoff, thread_summary
from crm_ml import inbox as crm_inbox
from crm_ml import insights as crm_insights
from crm_ml.config import get_settings
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.errors import NotFound

__all__ = [
    "PAGE_CSP",
    "chat",
    "claim_thread",
    "escalation_live",
    "escalation_page",
    "inbox",
    "inbox_rows",
    "insights_page",
    "login",
    "login_form",
    "login_redirect",
    "logout",
    "render",
    "release_thread",
    "reply",
    "resolve",
    "router",
    "templates",
    "ticket_page",
]

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["sentiment_dots"] = ins.sentiment_dots

router = APIRouter(include_in_schema=False)

PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def render(request: Request, name: str, context: dict[str, Any], status: int = 200,
           csp: str = PAGE_CSP, forms: bool = True) -> HTMLResponse:
    """Render a template with the session's CSRF token (pages with forms) and security headers."""
    session = get_session(request)
    ctx = {"csrf": session.csrf_token() if forms and session.secret else "", **context}
    response = templates.TemplateResponse(request, name, ctx, status_code=status)
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _safe_next(target: str | None) -> str:
    """Only local paths (no scheme, no host) are followed after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


def _seen(viewer: Viewer) -> None:
    """The page visit is the agent's heartbeat."""
    number = viewer.identity.number or 0
    with session_scope() as s:
        agents.heartbeat(session=s, agent_id=number)


# --- sign-in -----------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    session = get_session(request)
    return render(request, "login.html", {"next": _safe_next(next), "error": None,
                                          "disabled": session.secret is None},
                  status=200 if session.secret else 503)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, username: Annotated[str, Form(max_length=64)] = "",
          password: Annotated[str, Form(max_length=1024)] = "",
          csrf_token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/") -> Response:
    session = get_session(request)
    target = _safe_next(next)
    if session.secret is None:
        return render(request, "login.html", {"next": target, "error": None, "disabled": True},
                      status=503)
    check_csrf(request, csrf_token)
    name = username.strip().lower()
    if too_many_failures(name):
        return render(request, "login.html", {
            "next": target, "disabled": False,
            "error": "Too many wrong passwords: wait 15 minutes and try again."}, status=429)
    agent = crm_call(lambda: authenticate(name, password)) if name and password else None
    if agent is None:
        logger.info("failed console sign-in")
        return render(request, "login.html", {
            "next": target, "disabled": False, "error": "Wrong username or password."},
            status=401)
    session.start(f"agent:{agent.id}", password_fingerprint(agent.password_hash, session.secret))
    logger.info("agent:%d signed in", agent.id)
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf_token)
    get_session(request).clear()
    return RedirectResponse("/login", status_code=303)


# --- inbox and escalations ---------------------------------------------------------


ThreadKind = Annotated[str, FastPath(pattern="^(escalation|ticket)$")]
ThreadId = Annotated[int, FastPath(ge=1, le=2**63 - 1)]
_STATUS_FILTERS = ("open", "all", *crm_inbox.STATUSES)


def _inbox(status: str, channel: str | None, page: int) -> crm_inbox.InboxPage:
    def run() -> crm_inbox.InboxPage:
        with session_scope() as s:
            return crm_inbox.list_threads(session=s, status=status, channel=channel or None,
                                          page=page)

    return crm_call(run)


def _filters(status: str | None, channel: str | None) -> tuple[str, str | None]:
    """Unknown filter values fall back to the default view (open threads, every channel)."""
    status = status if status in _STATUS_FILTERS else "open"
    return status, (channel or "").strip()[:24] or None


@router.get("/", response_class=HTMLResponse)
def inbox(request: Request, viewer: AgentViewer, resolved: int | None = None,
          status: str | None = None, channel: str | None = None,
          page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> HTMLResponse:
    crm_call(lambda: _seen(viewer))
    status, channel = _filters(status, channel)
    data = _inbox(status, channel, page)
    query = urlencode({k: v for k, v in {"status": status, "channel": channel,
                                         "page": data.page}.items() if v})
    return render(request, "inbox.html", {
        "viewer": viewer, "rows": data.rows, "inbox": data, "status": status,
        "channel": channel, "statuses": _STATUS_FILTERS, "resolved": resolved,
        "me": viewer.identity.number, "query": query,
        "page_link": lambda n: "/?" + urlencode({k: v for k, v in {
            "status": status, "channel": channel, "page": n}.items() if v})})


@router.get("/inbox/rows", response_class=HTMLResponse)
def inbox_rows(request: Request, viewer: AgentViewer, status: str | None = None,
               channel: str | None = None,
               page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> HTMLResponse:
    crm_call(lambda: _seen(viewer))
    status, channel = _filters(status, channel)
    data = _inbox(status, channel, page)
    return render(request, "_inbox_rows.html", {"rows": data.rows, "status": status,
                                                "me": viewer.identity.number}, forms=False)


def _summary(s: Any, sender_id: str | None,
             transcript: list[dict[str, Any]] | None) -> thread_summary.ThreadSummary | None:
    if not sender_id:
        return None
    return thread_summary.summarise_conversation(session=s, sender_id=sender_id,
                                                 transcript=transcript)


def _claim(s: Any, kind: str, thread_id: int) -> dict[str, Any] | None:
    return crm_inbox.claim_of(session=s, kind=kind, thread_id=thread_id)


def _messages(s: Any, esc: Any) -> list[dict[str, Any]]:
    """The live conversation (interactions), else the transcript saved at escalation."""
    live = handoff.conversation(session=s, sender_id=esc.sender_id)
    if live:
        return [{"from": "customer" if c["direction"] == "in"
                 else "agent" if c.get("kind") == "agent" else "assistant",
                 "text": c["text"], "sentiment": c.get("sentiment"), "at": c["at"]}
                for c in live]
    return [{"from": "customer" if t.get("from") == "customer" else "assistant",
             "text": t.get("text", ""), "sentiment": t.get("sentiment"), "at": t.get("at")}
            for t in esc.transcript or []]


def _profile(s: Any, esc: Any) -> dict[str, Any]:
    """The customer's profile now (falls back to the one saved with the escalation)."""
    ctx = dict(esc.context or {})
    if esc.customer_id is not None:
        fresh = handoff.customer_profile(session=s, customer_id=esc.customer_id)
        if fresh.get("verified"):
            ctx = fresh
    return ctx


@router.get("/escalations/{escalation_id}", response_class=HTMLResponse)
def escalation_page(request: Request, escalation_id: EscalationId, viewer: AgentViewer,
                    sent: int = 0, error: str | None = None) -> HTMLResponse:
    crm_call(lambda: _seen(viewer))

    def load() -> dict[str, Any]:
        with session_scope() as s:
            esc = handoff.get_escalation(session=s, escalation_id=escalation_id)
            return {"esc": {"id": esc.id, "sender_id": esc.sender_id, "channel": esc.channel,
                            "reason": esc.reason, "status": esc.status,
                            "sentiment": esc.sentiment, "agent": esc.agent,
                            "customer_id": esc.customer_id,
                            "history": esc.sentiment_history or [],
                            "created_at": esc.created_at.isoformat(sep=" ",
                                                                   timespec="minutes")},
                    "profile": _profile(s, esc), "messages": _messages(s, esc),
                    "summary": _summary(s, esc.sender_id, esc.transcript),
                    "claim": _claim(s, "escalation", esc.id)}

    data = crm_call(load)
    return render(request, "escalation.html", {
        "viewer": viewer, **data, "sent": bool(sent), "error": _ERRORS.get(error or ""),
        "me": viewer.identity.number, "kind": "escalation", "thread_id": escalation_id})


_ERRORS = {"unreachable": "The assistant could not be reached: the message was not sent.",
           "resolved": "This conversation is already resolved.",
           "claimed": "Another agent has claimed this conversation: take it over first."}


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(request: Request, ticket_id: ThreadId, viewer: AgentViewer,
                error: str | None = None) -> HTMLResponse:
    """A ticket: what it is about, its conversation (when it came from one) and its summary."""
    crm_call(lambda: _seen(viewer))

    def load() -> dict[str, Any]:
        with session_scope() as s:
            ticket = s.get(m.Ticket, ticket_id)
            if ticket is None:
                raise NotFound(f"ticket {ticket_id}")
            live = (handoff.conversation(session=s, sender_id=ticket.sender_id)
                    if ticket.sender_id else [])
            messages = [{"from": "customer" if c["direction"] == "in"
                         else "agent" if c.get("kind") == "agent" else "assistant",
                         "text": c["text"], "sentiment": c.get("sentiment")} for c in live]
            return {"ticket": {"id": ticket.id, "kind": ticket.kind, "status": ticket.status,
                               "subject": ticket.subject, "body": ticket.body,
                               "order_id": ticket.order_id, "sender_id": ticket.sender_id,
                               "customer_id": ticket.customer_id,
                               "created_at": ticket.created_at.isoformat(
                                   sep=" ", timespec="minutes")},
                    "profile": handoff.customer_profile(session=s,
                                                        customer_id=ticket.customer_id),
                    "messages": messages, "summary": _summary(s, ticket.sender_id, []),
                    "claim": _claim(s, "ticket", ticket.id)}

    data = crm_call(load)
    return render(request, "ticket.html", {
        "viewer": viewer, **data, "error": _ERRORS.get(error or ""),
        "me": viewer.identity.number, "kind": "ticket", "thread_id": ticket_id})


def _thread_page(kind: str, thread_id: int) -> str:
    return f"/{kind}s/{thread_id}"


@router.post("/threads/{kind}/{thread_id}/claim")
def claim_thread(request: Request, kind: ThreadKind, thread_id: ThreadId, viewer: AgentViewer,
                 takeover: Annotated[int, Form()] = 0,
                 csrf_token: Annotated[str, Form()] = "") -> Response:
    """Claim a thread (``takeover=1``: from the agent who holds it)."""
    check_csrf(request, csrf_token, viewer)
    page = _thread_page(kind, thread_id)

    def run() -> None:
        with session_scope() as s:
            crm_inbox.claim(session=s, kind=kind, thread_id=thread_id,
                            agent_id=viewer.identity.number or 0, takeover=bool(takeover))

    try:
        crm_call(run)
    except crm_inbox.AlreadyClaimed:
        return RedirectResponse(f"{page}?error=claimed", status_code=303)
    return RedirectResponse(page, status_code=303)


@router.post("/threads/{kind}/{thread_id}/release")
def release_thread(request: Request, kind: ThreadKind, thread_id: ThreadId,
                   viewer: AgentViewer, csrf_token: Annotated[str, Form()] = "") -> Response:
    """Give a thread back to the team (only the agent who holds it can)."""
    check_csrf(request, csrf_token, viewer)

    def run() -> None:
        with session_scope() as s:
            crm_inbox.release(session=s, kind=kind, thread_id=thread_id,
                              agent_id=viewer.identity.number or 0)

    crm_call(run)
    return RedirectResponse(_thread_page(kind, thread_id), status_code=303)


@router.get("/escalations/{escalation_id}/live")
def escalation_live(escalation_id: EscalationId, viewer: AgentViewer) -> JSONResponse:
    """The transcript, status and claim holder, polled by the escalation page (a heartbeat)."""
    crm_call(lambda: _seen(viewer))

    def load() -> dict[str, Any]:
        with session_scope() as s:
            esc = handoff.get_escalation(session=s, escalation_id=escalation_id)
            claim = _claim(s, "escalation", esc.id)
            return {"id": esc.id, "status": esc.status, "messages": _messages(s, esc),
                    "claimed_by": claim["agent_id"] if claim else None}

    return JSONResponse(crm_call(load), headers={"Cache-Control": "no-store"})


@router.post("/escalations/{escalation_id}/reply")
def reply(request: Request, escalation_id: EscalationId, viewer: AgentViewer,
          text: Annotated[str, Form(max_length=4000)] = "",
          csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf_token, viewer)
    page = f"/escalations/{escalation_id}"
    if not text.strip():
        return RedirectResponse(page, status_code=303)

    def claim() -> None:
        with session_scope() as s:
            crm_inbox.claim(session=s, kind="escalation", thread_id=escalation_id,
                            agent_id=viewer.identity.number or 0)

    try:
        crm_call(claim)
    except crm_inbox.AlreadyClaimed:
        return RedirectResponse(f"{page}?error=claimed", status_code=303)
    try:
        sender = record_reply(escalation_id, viewer.user)
    except handoff.AlreadyResolved:
        return RedirectResponse(f"{page}?error=resolved", status_code=303)
    try:
        rasa_handoff("reply", {"sender_id": sender, "text": text.strip(), "agent": viewer.user,
                               "agent_name": viewer.name})
    except HTTPException:
        return RedirectResponse(f"{page}?error=unreachable", status_code=303)
    email_reply(escalation_id, sender, viewer.name, text.strip())  # anonymous visitors
    return RedirectResponse(f"{page}?sent=1", status_code=303)


@router.post("/escalations/{escalation_id}/resolve")
def resolve(request: Request, escalation_id: EscalationId, viewer: AgentViewer,
            csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf_token, viewer)

    try:
        sender = record_resolve(escalation_id, viewer.user)
    except handoff.AlreadyResolved:
        return RedirectResponse("/", status_code=303)
    try:
        rasa_handoff("resume", {"sender_id": sender, "agent": viewer.user})
    except HTTPException:
        # Resolved in the CRM; the bot will answer the customer's next message anyway.
        logger.warning("escalation %d resolved but the bot was not told", escalation_id)
    return RedirectResponse(f"/?resolved={escalation_id}", status_code=303)


# --- insights ----------------------------------------------------------------------


@router.get("/insights", response_class=HTMLResponse)
def insights_page(request: Request, viewer: AgentViewer) -> HTMLResponse:
    crm_call(lambda: _seen(viewer))

    def load() -> tuple[crm_insights.Insights, dict[str, Any]]:
        with session_scope() as s:
            return (crm_insights.overview(session=s, identity=viewer.identity),
                    model_panels.panels(session=s, identity=viewer.identity))

    data, models = crm_call(load)
    charts = bool(getattr(request.app.state, "charts", False))
    return render(request, "insights.html",
                  {"viewer": viewer, "charts": charts, **ins.page_context(data), **models})


# --- web chat ----------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    ws = "wss" if parts.scheme == "https" else "ws"
    return f"{parts.scheme}://{parts.netloc}", f"{ws}://{parts.netloc}"


@router.get("/chat", response_class=HTMLResponse)
def chat(request: Request, user: str | None = None, sig: str | None = None) -> HTMLResponse:
    """The customers' web chat. ``?user=customer:12347&sig=<hex>`` signs the customer in."""
    settings = get_settings()
    auth = None
    invalid = False
    if user:
        ident = signed_identity(user, sig)
        if ident.number is not None:
            auth = {"user": ident.user, "sig": (sig or "").strip().lower()}
        else:
            invalid = True
    http_origin, ws_origin = _origin(settings.rasa_url)
    config = {"server": http_origin, "path": urlsplit(settings.rasa_url).path.rstrip("/")
              + "/socket.io/", "auth": auth, "user": auth["user"] if auth else None}
    csp = (f"default-src 'self'; img-src 'self' data: https: http:; style-src 'self'; "
           f"script-src 'self'; connect-src 'self' {http_origin} {ws_origin}; "
           "frame-ancestors 'self'; base-uri 'none'; form-action 'self'")
    return render(request, "chat.html", {
        # </script> cannot appear in the JSON: "<" is escaped.
        "config": json.dumps(config).replace("<", "\\u003c"), "user": config["user"],
        "invalid": invalid}, csp=csp, forms=False)


def login_redirect(request: Request) -> RedirectResponse:
    """Where an unauthenticated page visit goes (JSON endpoints get 401 instead)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

