"""The authorization matrix: every role against every reading and writing capability.

Capabilities are the crm_ml functions behind the actions (``crm_ml.sales``,
``crm_ml.support``) and every console route (pages, forms and ``/api/*``). The
expected answer of each role is written out in the two tables below
(``Y`` allowed, ``-`` denied); the tests are generated from them, so a change
of policy is a change of one character here.

Each case runs on its own copy of a small hand-made SQLite CRM:

* reps ``rep:2`` (id 2) and ``rep:3`` (id 3), both under ``manager:1`` (id 101);
* customer 12347 (account of rep 2) with orders 500001 (processing) and
  500003 (delivered); customer 12348 (account of rep 3) with order 500002;
* lead 10 (rep 2) and lead 11 (rep 3), both scored;
* churn scores, segments, recommendations and a forecast for the analytics;
* escalation 1 (open) of ``web:cust-1``, customer 12347.

"Denied" means :class:`crm_ml.authz.Forbidden`, or a not-found that hides the
row's existence (``LeadNotFound``, ``CustomerNotFound``, ``NotFound``), and for
a write: nothing changed in the CRM. "Allowed" means an answer and, for a
write, the change made.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from crm_ml import agents, sales, support
from crm_ml.authz import Forbidden
from crm_ml.config import get_settings
from crm_ml.db import migrate
from crm_ml.db import models as m
from crm_ml.db.session import get_engine, session_scope
from crm_ml.errors import NotFound
from crm_ml.identity import ANONYMOUS, Identity, sign
from tests.actions.wording import render

SECRET = "authz-matrix-secret"

ROLES: dict[str, Identity] = {
    "anon": ANONYMOUS,
    "c12347": Identity("customer", 12347),
    "c12348": Identity("customer", 12348),
    "rep2": Identity("rep", 2),
    "rep3": Identity("rep", 3),
    "mgr1": Identity("manager", 1),
    "agent1": Identity("agent", 1),
}

# --------------------------------------------------------------------------- the tables
# Resources named in a capability belong to customer 12347 / rep 2 unless it says "own".

CRM_MATRIX = """
capability                              anon c12347 c12348 rep2 rep3 mgr1 agent1
read:support.order_status(500001)        -    Y      -      -    -    -    -
read:support.invoice(500001)             -    Y      -      -    -    -    -
read:support.refund_status(own)          -    Y      Y      -    -    -    -
read:support.suggestions                 Y    Y      Y      Y    Y    Y    Y
read:sales.hot_leads                     -    -      -      Y    Y    Y    -
read:sales.pipeline_summary              -    -      -      Y    Y    Y    -
read:sales.explain_lead(10)              -    -      -      Y    -    Y    -
read:sales.find_lead(name of 10)         -    -      -      Y    -    Y    -
read:sales.churn_risks                   -    -      -      Y    Y    Y    Y
read:sales.churn_risk(12347)             -    -      -      Y    -    Y    Y
read:sales.customer_segment(12347)       -    -      -      Y    -    Y    Y
read:sales.customer_recommendations(12347) - -      -      Y    -    Y    Y
read:sales.segment_summary               -    -      -      Y    Y    Y    Y
read:sales.sales_forecast                -    -      -      Y    Y    Y    Y
read:action_customer_count               -    -      -      Y    Y    Y    Y
write:support.cancel_order(500001)       -    Y      -      -    -    -    -
write:support.request_refund(500003)     -    Y      -      -    -    -    -
write:support.request_order_change(500001) - Y      -      -    -    -    -
write:support.request_invoice_copy(500001) - Y      -      -    -    -    -
write:support.set_shipping_address(own)  -    Y      Y      -    -    -    -
write:support.request_account_change(own) -   Y      Y      -    -    -    -
write:support.request_erasure(own)       -    Y      Y      -    -    -    -
write:support.open_customer_ticket       Y    Y      Y      Y    Y    Y    Y
write:sales.update_lead_status(10)       -    -      -      Y    -    Y    -
write:sales.log_interaction(lead 10)     -    -      -      Y    -    Y    -
write:sales.log_interaction(12347)       -    -      -      Y    -    Y    -
"""

CONSOLE_MATRIX = """
route                                    anon c12347 c12348 rep2 rep3 mgr1 agent1
GET  /login                               Y    Y      Y      Y    Y    Y    Y
GET  /chat                                Y    Y      Y      Y    Y    Y    Y
GET  /health                              Y    Y      Y      Y    Y    Y    Y
GET  /api/openapi.json                    -    -      -      -    -    -    Y
GET  /api/docs                            -    -      -      -    -    -    Y
GET  /redoc                               -    -      -      -    -    -    -
GET  /docs                                -    -      -      -    -    -    -
GET  /openapi.json                        -    -      -      -    -    -    -
GET  /                                    -    -      -      -    -    -    Y
GET  /inbox/rows                          -    -      -      -    -    -    Y
GET  /insights                            -    -      -      -    -    -    Y
GET  /escalations/1                       -    -      -      -    -    -    Y
GET  /escalations/1/live                  -    -      -      -    -    -    Y
POST /escalations/1/reply                 -    -      -      -    -    -    Y
POST /escalations/1/resolve               -    -      -      -    -    -    Y
GET  /api/escalations                     -    -      -      -    -    -    Y
GET  /api/escalations/1                   -    -      -      -    -    -    Y
POST /api/escalations/1/reply             -    -      -      -    -    -    Y
POST /api/escalations/1/resolve           -    -      -      -    -    -    Y
POST /api/agents/heartbeat                -    -      -      -    -    -    Y
GET  /charts/forecast.png                 -    -      -      Y    Y    Y    Y
"""

# Routes the console must not serve at all (FastAPI's public documentation
# defaults): a 404 is their "denied", and nobody, not even an agent, gets them.
NOT_SERVED = {"GET /redoc", "GET /docs", "GET /openapi.json"}

# Cases where the code does not (yet) do what the table says: xfail(strict), so the
# table stays the policy and a fix shows up as an XPASS to be removed from here.
KNOWN_GAPS: dict[tuple[str, str], str] = {
}


def _parse(table: str) -> list[tuple[str, str, bool]]:
    """``(name, role, allowed)`` for every cell; the name is the row's words before the marks."""
    lines = table.strip().splitlines()
    roles = lines[0].split()[1:]
    assert roles == list(ROLES), "the table's columns must be the roles, in order"
    cases = []
    for line in lines[1:]:
        words = line.split()
        name, marks = " ".join(words[: -len(roles)]), words[-len(roles):]
        assert all(mk in {"Y", "-"} for mk in marks), line
        cases += [(name, role, mk == "Y") for role, mk in zip(roles, marks, strict=True)]
    return cases


def _params(table: str) -> list[Any]:
    params = []
    for name, role, allow in _parse(table):
        marks = []
        gap = KNOWN_GAPS.get((name, role))
        if gap:
            marks.append(pytest.mark.xfail(reason=gap, strict=True))
        params.append(pytest.param(name, role, allow, id=f"{name}|{role}|"
                                   f"{'allow' if allow else 'deny'}", marks=marks))
    return params


# --------------------------------------------------------------------------- the CRM

NOW = dt.datetime(2011, 12, 1, 12, 0)
LEAD_10_NAME = "Ada Lovelace"


def _seed(url: str) -> None:
    migrate.upgrade(url)
    with get_engine(url).begin() as conn:
        conn.execute(insert(m.SalesRep), [
            {"id": 101, "handle": "manager:1", "name": "Maria Lopez", "email": "m@x.test",
             "role": "manager", "manager_id": None},
            {"id": 2, "handle": "rep:2", "name": "Rep Two", "email": "r2@x.test",
             "role": "rep", "manager_id": 101},
            {"id": 3, "handle": "rep:3", "name": "Rep Three", "email": "r3@x.test",
             "role": "rep", "manager_id": 101},
        ])
        conn.execute(insert(m.Customer), [
            {"id": 12347, "name": "Ada Customer", "email": "ada@example.com",
             "country": "Iceland", "anonymized": False},
            {"id": 12348, "name": "Ben Customer", "email": "ben@example.com",
             "country": "Finland", "anonymized": False},
        ])
        conn.execute(insert(m.Account), [
            {"id": 1, "customer_id": 12347, "rep_id": 2, "name": "Ada Ltd"},
            {"id": 2, "customer_id": 12348, "rep_id": 3, "name": "Ben plc"},
        ])
        conn.execute(insert(m.Product), [
            {"stock_code": "85123A", "description": "WHITE HANGING HEART T-LIGHT HOLDER",
             "unit_price": 2.55},
            {"stock_code": "22423", "description": "REGENCY CAKESTAND 3 TIER",
             "unit_price": 12.75},
        ])
        conn.execute(insert(m.Order), [
            {"id": "500001", "customer_id": 12347, "invoiced_at": NOW, "country": "Iceland",
             "kind": "sale", "status": "processing", "total": 15.30},
            {"id": "500003", "customer_id": 12347, "invoiced_at": NOW - dt.timedelta(days=30),
             "country": "Iceland", "kind": "sale", "status": "delivered", "total": 25.50},
            {"id": "500002", "customer_id": 12348, "invoiced_at": NOW, "country": "Finland",
             "kind": "sale", "status": "processing", "total": 30.60},
        ])
        conn.execute(insert(m.OrderLine), [
            {"order_id": "500001", "stock_code": "85123A", "quantity": 6, "unit_price": 2.55},
            {"order_id": "500003", "stock_code": "22423", "quantity": 2, "unit_price": 12.75},
            {"order_id": "500002", "stock_code": "85123A", "quantity": 12, "unit_price": 2.55},
        ])
        conn.execute(insert(m.Lead), [
            {"id": 10, "source": "bank_marketing", "external_ref": "b-10", "name": LEAD_10_NAME,
             "rep_id": 2, "status": "new", "features": {}, "converted": None},
            {"id": 11, "source": "bank_marketing", "external_ref": "b-11", "name": "Bob Hope",
             "rep_id": 3, "status": "new", "features": {}, "converted": None},
        ])
        conn.execute(insert(m.LeadScore), [
            {"lead_id": 10, "score": 0.9, "model_version": "t",
             "reasons": [{"text": "reason ten", "effect": "raises", "weight": 1}]},
            {"lead_id": 11, "score": 0.8, "model_version": "t",
             "reasons": [{"text": "reason eleven", "effect": "raises", "weight": 1}]},
        ])
        conn.execute(insert(m.ChurnScore), [
            {"customer_id": 12347, "probability": 0.7, "reasons": [], "model_version": "t"},
            {"customer_id": 12348, "probability": 0.4, "reasons": [], "model_version": "t"},
        ])
        conn.execute(insert(m.Segment), [
            {"customer_id": c, "recency_days": 10, "frequency": 2, "monetary": 40.0,
             "r_score": 5, "f_score": 3, "m_score": 2, "rfm_segment": "Champions",
             "cluster": 0, "cluster_name": "big", "model_version": "t"}
            for c in (12347, 12348)])
        conn.execute(insert(m.Recommendation), [
            {"customer_id": 12347, "segment": None, "rank": 1, "stock_code": "22423",
             "score": 0.5, "source": "item_cf", "model_version": "t"},
            {"customer_id": None, "segment": None, "rank": 1, "stock_code": "85123A",
             "score": 0.9, "source": "popularity", "model_version": "t"},
        ])
        conn.execute(insert(m.Forecast), [
            {"series": "total", "period_start": dt.date(2011, 12, 5) + dt.timedelta(weeks=k),
             "yhat": 1000.0 + k, "lower": 900.0, "upper": 1100.0 + k, "model_version": "t"}
            for k in range(13)])
        conn.execute(insert(m.Escalation), [{
            "id": 1, "sender_id": "web:cust-1", "channel": "web", "customer_id": 12347,
            "reason": "explicit_request", "status": "open", "sentiment": "negative",
            "transcript": [{"from": "customer", "text": "I want a human"}],
            "sentiment_history": [], "context": {"customer_id": 12347, "verified": True,
                                                 "name": "Ada Customer"},
            "created_at": NOW}])
        conn.execute(insert(m.Agent), [{"id": 1, "username": "agent1", "name": "Agent One",
                                        "password_hash": "!"}])
    get_engine(url).dispose()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("authz") / "template.db"
    _seed(f"sqlite:///{path}")
    return path


@pytest.fixture
def crm(env: pytest.MonkeyPatch, template: Path, tmp_path: Path) -> Iterator[str]:
    """A fresh copy of the seeded CRM, configured as the CRM of this process."""
    path = tmp_path / "crm.db"
    shutil.copy(template, path)
    url = f"sqlite:///{path}"
    env.chdir(tmp_path)  # no .env of the working tree
    env.setenv("CRM_DATABASE_URL", url)
    env.setenv("CRM_IDENTITY_SECRET", SECRET)
    env.delenv("CRM_CONSOLE_SECRET", raising=False)
    env.setenv("CRM_RASA_URL", "http://127.0.0.1:9")  # never reached: rasa_handoff is faked
    env.setenv("CRM_TRACKER_DB_URL", f"sqlite:///{tmp_path / 'tracker.db'}")
    get_settings.cache_clear()
    yield url
    get_engine(url).dispose()


# --------------------------------------------------------------------------- crm_ml cases


@dataclass(frozen=True)
class Capability:
    """One thing an action may do: the call, and for writes how to see its effect."""

    call: Callable[[Session, Identity], Any]
    effect: Callable[[Session], Any] | None = None  # a snapshot that a write changes


def _count(model: Any, *where: Any) -> Callable[[Session], int]:
    return lambda s: s.scalar(select(func.count()).select_from(model).where(*where))


def _action_customer_count(s: Session, who: Identity) -> Any:
    """Run the real action (it opens its own session) with a signed tracker."""
    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    from actions.customers import ActionCustomerCount

    metadata = {} if who.number is None else {
        "auth": {"user": who.user, "sig": sign(who.user, SECRET)}}
    latest = {"text": "how many customers do we have", "metadata": metadata,
              "intent": {"name": "ask_customer_count", "confidence": 1.0}, "entities": []}
    tracker = Tracker("web:matrix", {}, latest, [], False, None, {}, "action_listen")
    dispatcher = CollectingDispatcher()
    asyncio.run(ActionCustomerCount().run(dispatcher, tracker, {}))
    said = " ".join(render(x) for x in dispatcher.messages)
    if "2 customers" not in said:
        raise Forbidden(said)
    return said


CAPABILITIES: dict[str, Capability] = {
    "read:support.order_status(500001)": Capability(
        lambda s, who: support.order_status(session=s, identity=who, order_id="500001")),
    "read:support.invoice(500001)": Capability(
        lambda s, who: support.invoice(session=s, identity=who, order_id="500001")),
    "read:support.refund_status(own)": Capability(
        lambda s, who: support.refund_status(session=s, identity=who)),
    "read:support.suggestions": Capability(
        lambda s, who: support.suggestions(session=s, identity=who)),
    "read:sales.hot_leads": Capability(
        lambda s, who: sales.hot_leads(session=s, identity=who)),
    "read:sales.pipeline_summary": Capability(
        lambda s, who: sales.pipeline_summary(session=s, identity=who)),
    "read:sales.explain_lead(10)": Capability(
        lambda s, who: sales.explain_lead(session=s, identity=who, lead_id=10)),
    "read:sales.find_lead(name of 10)": Capability(
        lambda s, who: sales.find_lead(session=s, identity=who, lead_name=LEAD_10_NAME)),
    "read:sales.churn_risks": Capability(
        lambda s, who: sales.churn_risks(session=s, identity=who)),
    "read:sales.churn_risk(12347)": Capability(
        lambda s, who: sales.churn_risk(session=s, identity=who, customer_id=12347)),
    "read:sales.customer_segment(12347)": Capability(
        lambda s, who: sales.customer_segment(session=s, identity=who, customer_id=12347)),
    "read:sales.customer_recommendations(12347)": Capability(
        lambda s, who: sales.customer_recommendations(session=s, identity=who,
                                                      customer_id=12347)),
    "read:sales.segment_summary": Capability(
        lambda s, who: sales.segment_summary(session=s, identity=who)),
    "read:sales.sales_forecast": Capability(
        lambda s, who: sales.sales_forecast(session=s, identity=who, weeks=4)),
    "read:action_customer_count": Capability(_action_customer_count),
    "write:support.cancel_order(500001)": Capability(
        lambda s, who: support.cancel_order(session=s, identity=who, order_id="500001",
                                            actor="web:matrix"),
        lambda s: s.get(m.Order, "500001").status),
    "write:support.request_refund(500003)": Capability(
        lambda s, who: support.request_refund(session=s, identity=who, order_id="500003",
                                              reason="broken", sender_id="web:matrix"),
        _count(m.Ticket, m.Ticket.kind == "refund")),
    "write:support.request_order_change(500001)": Capability(
        lambda s, who: support.request_order_change(session=s, identity=who,
                                                    order_id="500001", request="blue one",
                                                    sender_id="web:matrix"),
        _count(m.Ticket, m.Ticket.kind == "order_change")),
    "write:support.request_invoice_copy(500001)": Capability(
        lambda s, who: support.request_invoice_copy(session=s, identity=who,
                                                    order_id="500001", sender_id="web:matrix"),
        _count(m.Ticket, m.Ticket.kind == "invoice")),
    "write:support.set_shipping_address(own)": Capability(
        lambda s, who: support.set_shipping_address(
            session=s, identity=who, address="1 High Street, Reykjavik 101", actor="web:m"),
        lambda s: tuple(s.scalars(select(m.Customer.shipping_address)
                                  .order_by(m.Customer.id)))),
    "write:support.request_account_change(own)": Capability(
        lambda s, who: support.request_account_change(
            session=s, identity=who, request="new phone", new_email=None,
            sender_id="web:matrix"),
        _count(m.Ticket, m.Ticket.kind == "account_change")),
    "write:support.request_erasure(own)": Capability(
        lambda s, who: support.request_erasure(session=s, identity=who,
                                               sender_id="web:matrix"),
        _count(m.Ticket, m.Ticket.kind == "erasure")),
    "write:support.open_customer_ticket": Capability(
        lambda s, who: support.open_customer_ticket(session=s, identity=who,
                                                    kind="complaint", text="late",
                                                    sender_id="web:matrix"),
        _count(m.Ticket, m.Ticket.kind == "complaint")),
    "write:sales.update_lead_status(10)": Capability(
        lambda s, who: sales.update_lead_status(session=s, identity=who, status="contacted",
                                                lead_id=10),
        lambda s: s.get(m.Lead, 10).status),
    "write:sales.log_interaction(lead 10)": Capability(
        lambda s, who: sales.log_interaction(session=s, identity=who, text="called them",
                                             sender_id="web:matrix", channel="web",
                                             lead_id=10),
        _count(m.Interaction, m.Interaction.lead_id == 10)),
    "write:sales.log_interaction(12347)": Capability(
        lambda s, who: sales.log_interaction(session=s, identity=who, text="note: nice",
                                             sender_id="web:matrix", channel="web",
                                             customer_id=12347),
        _count(m.Interaction, m.Interaction.customer_id == 12347)),
}


def test_the_tables_cover_every_capability_and_route() -> None:
    names = {name for name, _, _ in _parse(CRM_MATRIX)}
    assert names == set(CAPABILITIES)
    routes = {name for name, _, _ in _parse(CONSOLE_MATRIX)}
    assert routes == set(ROUTES)
    from console.app import create_app

    served = {(method, route.path) for route in create_app().routes
              for method in getattr(route, "methods", None) or ()
              if method in {"GET", "POST"} and route.path != "/static"}
    tested = {(r.split()[0], _template(r.split()[1])) for r in ROUTES}
    absent = {(r.split()[0], r.split()[1]) for r in NOT_SERVED}
    # POST /login and /logout: see test_console_forms_need_the_sessions_csrf_token.
    assert served - tested <= {("POST", "/login"), ("POST", "/logout")}, \
        f"console routes missing from CONSOLE_MATRIX: {sorted(served - tested)}"
    assert not served & absent, f"served, but must not be: {sorted(served & absent)}"
    assert all(not allow for name, _, allow in _parse(CONSOLE_MATRIX) if name in NOT_SERVED)


def _template(path: str) -> str:
    return path.replace("/1", "/{escalation_id}") if "escalations/1" in path else path


def _snapshot_all(s: Session) -> dict[str, Any]:
    """Every row that a denied call must leave alone."""
    def rows(model: Any) -> list[tuple]:
        cols = model.__table__.columns
        return [tuple(r) for r in s.execute(select(*cols).order_by(*model.__table__.primary_key
                                                                    .columns))]

    return {model.__tablename__: rows(model) for model in (
        m.Customer, m.Order, m.Lead, m.Ticket, m.Interaction, m.Escalation, m.Agent,
        m.ChannelIdentity)}


@pytest.mark.parametrize("capability, role, allow", _params(CRM_MATRIX))
def test_crm_capability(crm: str, capability: str, role: str, allow: bool) -> None:
    cap, who = CAPABILITIES[capability], ROLES[role]
    with session_scope() as s:
        before = _snapshot_all(s)
        effect_before = cap.effect(s) if cap.effect else None
    outcome: Any
    try:
        with session_scope() as s:
            outcome = cap.call(s, who)
    except (Forbidden, NotFound) as exc:
        outcome = exc
    denied = isinstance(outcome, (Forbidden, NotFound))
    with session_scope() as s:
        after = _snapshot_all(s)
        effect_after = cap.effect(s) if cap.effect else None
    if allow:
        assert not denied, f"{role} was refused {capability}: {outcome!r}"
        if cap.effect:
            assert effect_after != effect_before, f"{capability} by {role} changed nothing"
    else:
        assert denied, f"{role} may not {capability}, but got {outcome!r}"
        assert after == before, f"a refused {capability} by {role} still changed the CRM"


# What an allowed caller sees: only their own (or their team's) rows.
SCOPES = [
    ("rep2", "hot_leads", {10}), ("rep3", "hot_leads", {11}), ("mgr1", "hot_leads", {10, 11}),
    ("rep2", "churn_risks", {12347}), ("rep3", "churn_risks", {12348}),
    ("mgr1", "churn_risks", {12347, 12348}), ("agent1", "churn_risks", {12347, 12348}),
    ("rep2", "pipeline", 1), ("rep3", "pipeline", 1), ("mgr1", "pipeline", 2),
]


@pytest.mark.parametrize("role, what, expected", SCOPES)
def test_allowed_callers_see_only_their_scope(crm: str, role: str, what: str,
                                              expected: Any) -> None:
    who = ROLES[role]
    with session_scope() as s:
        if what == "hot_leads":
            got: Any = {lead.id for lead in sales.hot_leads(session=s, identity=who)}
        elif what == "churn_risks":
            got = {r.customer_id for r in sales.churn_risks(session=s, identity=who)}
        else:
            got = sales.pipeline_summary(session=s, identity=who).total
    assert got == expected


def test_tickets_link_only_the_callers_own_order(crm: str) -> None:
    """Anyone may complain, but an order number only ties to its owner's ticket."""
    with session_scope() as s:
        own = support.open_customer_ticket(session=s, identity=ROLES["c12347"],
                                           kind="complaint", text="late", order_id="500001",
                                           sender_id="web:a")
        other = support.open_customer_ticket(session=s, identity=ROLES["c12348"],
                                             kind="complaint", text="late",
                                             order_id="500001", sender_id="web:b")
        anon = support.open_customer_ticket(session=s, identity=ANONYMOUS, kind="complaint",
                                            text="late", order_id="500001", sender_id="web:c")
    with session_scope() as s:
        tickets = {t.id: t for t in s.scalars(select(m.Ticket))}
    assert (tickets[own].order_id, tickets[own].customer_id) == ("500001", 12347)
    for tid, customer in ((other, 12348), (anon, None)):
        assert tickets[tid].order_id is None and tickets[tid].customer_id == customer
        assert "not verified" in tickets[tid].body


# --------------------------------------------------------------------------- console


def _headers(role: str) -> dict[str, str]:
    who = ROLES[role]
    if who.number is None:
        return {}
    return {"X-CRM-User": who.user, "X-CRM-Sig": sign(who.user, SECRET)}


def _escalation(s: Session) -> tuple[str, str | None]:
    esc = s.get(m.Escalation, 1)
    return esc.status, esc.agent


def _replies(s: Session) -> int:
    return _count(m.AuditLog, m.AuditLog.action == "reply")(s)


def _seen(s: Session) -> Any:
    return s.get(m.Agent, 1).last_seen_at


@dataclass(frozen=True)
class Route:
    """A console route: how to call it, and for writes what it changes."""

    kwargs: dict[str, Any]
    effect: Callable[[Session], Any] | None = None
    handoff: str | None = None  # the Rasa handoff call an allowed write makes


ROUTES: dict[str, Route] = {
    "GET /login": Route({}),
    "GET /chat": Route({}),
    "GET /health": Route({}),
    "GET /api/openapi.json": Route({}),
    "GET /api/docs": Route({}),
    "GET /redoc": Route({}),
    "GET /docs": Route({}),
    "GET /openapi.json": Route({}),
    "GET /": Route({}),
    "GET /inbox/rows": Route({}),
    "GET /insights": Route({}),
    "GET /escalations/1": Route({}),
    "GET /escalations/1/live": Route({}),
    "POST /escalations/1/reply": Route({"data": {"text": "hello from the matrix"}},
                                       _replies, "reply"),
    "POST /escalations/1/resolve": Route({"data": {}}, _escalation, "resume"),
    "GET /api/escalations": Route({}),
    "GET /api/escalations/1": Route({}),
    "POST /api/escalations/1/reply": Route({"json": {"text": "hello from the matrix"}},
                                           _replies, "reply"),
    "POST /api/escalations/1/resolve": Route({}, _escalation, "resume"),
    "POST /api/agents/heartbeat": Route({}, _seen),
    "GET /charts/forecast.png": Route({}),
}


@pytest.fixture
def console(crm: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, list]]:
    """The console app on the CRM copy; the Rasa handoff calls are recorded, not sent."""
    import console.api as api
    import console.pages as pages
    from console import auth
    from console.app import create_app

    auth._failures.clear()
    calls: list[tuple[str, dict[str, Any]]] = []

    def fake_handoff(path: str, payload: dict[str, Any]) -> dict[str, Any]:
        calls.append((path, payload))
        return {"status": "pushed"}

    monkeypatch.setattr(api, "rasa_handoff", fake_handoff)
    monkeypatch.setattr(pages, "rasa_handoff", fake_handoff)
    with TestClient(create_app(), follow_redirects=False) as client:
        yield client, calls


def _denied(r: Any) -> bool:
    """401/403, or a page's redirect to the sign-in form."""
    if r.status_code in (401, 403):
        return True
    return r.status_code == 303 and r.headers.get("location", "").startswith("/login")


@pytest.mark.parametrize("route, role, allow", _params(CONSOLE_MATRIX))
def test_console_route(console: tuple[TestClient, list], route: str, role: str,
                       allow: bool) -> None:
    client, calls = console
    spec = ROUTES[route]
    method, path = route.split()
    with session_scope() as s:
        before = _snapshot_all(s)
        effect_before = spec.effect(s) if spec.effect else None
    r = client.request(method, path, headers=_headers(role), **spec.kwargs)
    with session_scope() as s:
        after = _snapshot_all(s)
        effect_after = spec.effect(s) if spec.effect else None
    assert r.status_code < 500, r.text
    if allow:
        assert not _denied(r) and r.status_code < 400, (r.status_code, r.text[:300])
        if spec.effect:
            assert effect_after != effect_before, f"{route} by {role} changed nothing"
        if spec.handoff:
            assert [c[0] for c in calls] == [spec.handoff]
            assert calls[0][1]["sender_id"] == "web:cust-1"
    else:
        absent = route in NOT_SERVED and r.status_code == 404
        assert _denied(r) or absent, (r.status_code, r.text[:300])
        assert calls == [], f"a refused {route} still reached the customer"
        assert after == before, f"a refused {route} by {role} still changed the CRM"


def test_console_forms_need_the_sessions_csrf_token(console: tuple[TestClient, list]) -> None:
    """A signed-in agent's browser (cookie session) cannot be made to post a form."""
    from tests.console.conftest import csrf_of

    client, calls = console
    agents.set_password("agent1", "correct horse battery")
    page = client.get("/login")
    r = client.post("/login", data={"username": "agent1", "password": "correct horse battery",
                                    "csrf_token": csrf_of(page.text), "next": "/"})
    assert r.status_code == 303
    for path, data in (("/escalations/1/reply", {"text": "forged"}),
                       ("/escalations/1/resolve", {}),
                       ("/logout", {})):
        for token in ({}, {"csrf_token": "wrong"}):
            r = client.post(path, data={**data, **token})
            assert r.status_code == 403, (path, token, r.status_code)
    assert calls == []
    with session_scope() as s:
        assert _escalation(s) == ("open", None)
        assert _replies(s) == 0
    # The real token works.
    token = csrf_of(client.get("/escalations/1").text)
    r = client.post("/escalations/1/resolve", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/?resolved=1"
    with session_scope() as s:
        assert _escalation(s) == ("resolved", "agent:1")
