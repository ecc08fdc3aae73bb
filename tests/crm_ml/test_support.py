"""crm_ml.support on a small hand-made CRM: verification, orders, refunds, tickets, ideas.

The fixtures here (``crm_template``, ``crm``) are shared with the action tests
(tests/actions/test_orders.py, test_account.py, test_support.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_ml import audit as crm_audit
from crm_ml import gdpr, handoff, support
from crm_ml.authz import Forbidden, active_customer, own_customer_id
from crm_ml.db import migrate, session_scope
from crm_ml.db import models as m
from crm_ml.db.session import get_engine
from crm_ml.errors import NotFound
from crm_ml.identity import ANONYMOUS, Identity

SECRET = "s3cret"
GEORGE = Identity("customer", 12347)
OLIVIA = Identity("customer", 12348)
ERASED = Identity("customer", 12349)  # anonymized: a signed identity from before the erasure
GEORGE_EMAIL = "george.rossi.12347@example.com"
OLIVIA_EMAIL = "olivia.smith.12348@example.com"
NOW = dt.datetime(2024, 5, 1, 12, 0)


def _at(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day)


def seed(s: Session) -> None:
    """Three customers, five products, George's orders in every status, Olivia's two."""
    s.add_all([
        m.Customer(id=12347, name="George Rossi", email=GEORGE_EMAIL, country="United Kingdom",
                   anonymized=False),
        m.Customer(id=12348, name="Olivia Smith", email=OLIVIA_EMAIL, country="France",
                   anonymized=False),
        m.Customer(id=12349, name="Erased", email="erased.12349@example.com", country="Spain",
                   anonymized=True),
        m.Product(stock_code="85123A", description="WHITE HANGING HEART T-LIGHT HOLDER",
                  unit_price=2.55),
        m.Product(stock_code="71053", description="WHITE METAL LANTERN", unit_price=3.39),
        m.Product(stock_code="22423", description="REGENCY CAKESTAND 3 TIER", unit_price=12.75),
        m.Product(stock_code="85099B", description="JUMBO BAG RED RETROSPOT", unit_price=1.95),
        m.Product(stock_code="21212", description="PACK OF 72 RETROSPOT CAKE CASES",
                  unit_price=0.55),
    ])
    s.flush()
    orders = [
        # id, customer, date, kind, status, total, lines (code, qty, price)
        ("581001", 12347, "2011-12-08 10:00", "sale", "processing", 28.86,
         [("85123A", 6, 2.55), ("71053", 4, 3.39)]),
        ("580900", 12347, "2011-12-05 09:00", "sale", "shipped", 25.50, [("22423", 2, 12.75)]),
        ("579000", 12347, "2011-11-20 15:30", "sale", "delivered", 37.80,
         [("85099B", 10, 1.95), ("21212", 24, 0.55), ("85123A", 2, 2.55)]),
        ("C579001", 12347, "2011-11-21 11:00", "cancellation", "cancelled", -5.10,
         [("85123A", -2, 2.55)]),
        ("581002", 12348, "2011-12-09 12:00", "sale", "processing", 23.40,
         [("85099B", 12, 1.95)]),
        ("560000", 12348, "2011-07-01 08:00", "sale", "delivered", 275.00,
         [("21212", 500, 0.55)]),
        ("581003", 12349, "2011-12-08 08:00", "sale", "processing", 12.75,
         [("22423", 1, 12.75)]),
    ]
    for oid, cust, day, kind, status, total, lines in orders:
        s.add(m.Order(id=oid, customer_id=cust, invoiced_at=_at(day), country="United Kingdom",
                      kind=kind, status=status, total=total))
        s.flush()
        for code, qty, price in lines:
            s.add(m.OrderLine(order_id=oid, stock_code=code, quantity=qty, unit_price=price))


@pytest.fixture(scope="session")
def crm_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, seeded SQLite file, built once and copied by :func:`crm`."""
    path = tmp_path_factory.mktemp("crm_template") / "crm.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    with session_scope(url) as s:
        seed(s)
    get_engine(url).dispose()
    return path


@pytest.fixture
def crm(env: pytest.MonkeyPatch, crm_template: Path, tmp_path: Path) -> Iterator[str]:
    """This test's own copy of the seeded CRM, configured as the CRM of the process."""
    path = tmp_path / "crm.db"
    shutil.copyfile(crm_template, path)
    url = f"sqlite:///{path}"
    env.setenv("CRM_DATABASE_URL", url)
    env.setenv("CRM_IDENTITY_SECRET", SECRET)
    yield url
    get_engine(url).dispose()


def audits(action: str | None = None) -> list[m.AuditLog]:
    with session_scope() as s:
        stmt = select(m.AuditLog).order_by(m.AuditLog.id)
        if action:
            stmt = stmt.where(m.AuditLog.action == action)
        return list(s.scalars(stmt))


def tickets(kind: str | None = None) -> list[m.Ticket]:
    with session_scope() as s:
        stmt = select(m.Ticket).order_by(m.Ticket.id)
        if kind:
            stmt = stmt.where(m.Ticket.kind == kind)
        return list(s.scalars(stmt))


# --------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(("raw", "clean"), [
    ("536365", "536365"), ("c536379", "C536379"), (" C 536379 ", "C536379"), (536365, "536365"),
    ("53636", None), ("5363655", None), ("X536365", None), ("536365; drop table", None),
    ("", None), (None, None), (True, None), (["536365"], None),
])
def test_clean_order_id(raw: object, clean: str | None) -> None:
    assert support.clean_order_id(raw) == clean


@pytest.mark.parametrize(("raw", "clean"), [
    ("George.Rossi.12347@Example.com", GEORGE_EMAIL), ("a@b.co.uk.", "a@b.co.uk"),
    ("no-at-sign.example.com", None), ("a@b", None), ("a@@b.com", None), ("a..b@c.com", None),
    ("' or 1=1 --@x.com", None), (None, None), (12, None),
])
def test_clean_email(raw: object, clean: str | None) -> None:
    assert support.clean_email(raw) == clean


@pytest.mark.parametrize(("raw", "clean"), [
    ("12 High Street,  Leeds LS1 4AB ", "12 High Street, Leeds LS1 4AB"),
    ("Rose Cottage, Lower Slaughter GL54 2HP", "Rose Cottage, Lower Slaughter GL54 2HP"),
    ("yes", None), ("High Street Leeds", None), ("123456789", None), ("1 " + "a" * 400, None),
])
def test_clean_address(raw: str, clean: str | None) -> None:
    assert support.clean_address(raw) == clean


# --------------------------------------------------------------------------- verification


def test_verification_links_the_sender_and_audits_without_the_email(
        crm: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with session_scope() as s:
        result = support.verify_customer(session=s, sender_id="web:v1", order_id="579000",
                                         email="George.Rossi.12347@EXAMPLE.com", now=NOW)
    assert (result.status, result.customer_id) == ("verified", 12347)
    with session_scope() as s:
        link = s.get(m.ChannelIdentity, "web:v1")
        assert (link.customer_id, link.verified_at) == (12347, NOW)
    [entry] = audits()
    assert (entry.actor, entry.action, entry.entity_id) == ("web:v1", "verified", "12347")
    assert "@" not in json.dumps(entry.details)
    assert "@" not in caplog.text


def test_a_cancellation_note_verifies_too(crm: str) -> None:
    with session_scope() as s:
        result = support.verify_customer(session=s, sender_id="web:v1", order_id="c579001",
                                         email=GEORGE_EMAIL, now=NOW)
    assert result.customer_id == 12347


@pytest.mark.parametrize(("order_id", "email"), [
    ("579000", OLIVIA_EMAIL),  # a real order, the e-mail of another customer
    ("999999", GEORGE_EMAIL),  # no such order
    ("581003", "erased.12349@example.com"),  # an erased customer
    ("579000", "not an email"),
])
def test_failed_verification_does_not_say_why(crm: str, order_id: str, email: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with session_scope() as s:
        result = support.verify_customer(session=s, sender_id="web:v1", order_id=order_id,
                                         email=email, now=NOW)
    assert result == support.Verification("failed", None, 4)
    [entry] = audits()
    assert (entry.actor, entry.action) == ("web:v1", "verify_failed")
    assert "@" not in json.dumps(entry.details) and "@" not in caplog.text
    with session_scope() as s:
        assert s.get(m.ChannelIdentity, "web:v1") is None


def test_five_failures_an_hour_lock_the_sender(crm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def attempt(email: str, now: dt.datetime, sender: str = "tg:42") -> support.Verification:
        # The audit entries, which the limit counts, are stamped with the same clock.
        monkeypatch.setattr(crm_audit, "utcnow", lambda: now)
        with session_scope() as s:
            return support.verify_customer(session=s, sender_id=sender, order_id="579000",
                                           email=email, now=now)

    statuses = [attempt(OLIVIA_EMAIL, NOW + dt.timedelta(minutes=i)).status for i in range(5)]
    assert statuses == ["failed"] * 4 + ["locked"]
    # The right details no longer help within the hour...
    assert attempt(GEORGE_EMAIL, NOW + dt.timedelta(minutes=10)).status == "locked"
    with session_scope() as s:
        assert s.get(m.ChannelIdentity, "tg:42") is None
    # ...another sender is not affected...
    assert attempt(GEORGE_EMAIL, NOW + dt.timedelta(minutes=10), sender="tg:43").status == \
        "verified"
    # ...and an hour after the first failures the sender may try again.
    assert attempt(GEORGE_EMAIL, NOW + dt.timedelta(minutes=65)).status == "verified"
    assert [a.action for a in audits()].count("verify_failed") == 5
    assert [a.action for a in audits()].count("verify_blocked") == 1


# --------------------------------------------------------------------------- orders


def test_order_status_for_its_owner(crm: str) -> None:
    with session_scope() as s:
        order = support.order_status(session=s, identity=GEORGE, order_id="579000")
        latest = support.order_status(session=s, identity=GEORGE)
        credit = support.order_status(session=s, identity=GEORGE, order_id="c579001")
    assert order == support.OrderSummary("579000", _at("2011-11-20 15:30"), "sale", "delivered",
                                         37.80, 3, 36)
    assert (latest.order_id, latest.status) == ("581001", "processing")
    assert (credit.kind, credit.total, credit.items) == ("cancellation", -5.10, 2)


def test_order_status_hides_other_customers_orders(crm: str) -> None:
    with session_scope() as s:
        with pytest.raises(NotFound):
            support.order_status(session=s, identity=GEORGE, order_id="581002")
        with pytest.raises(NotFound):
            support.order_status(session=s, identity=GEORGE, order_id="999999")
        with pytest.raises(Forbidden):
            support.order_status(session=s, identity=ANONYMOUS, order_id="579000")
        with pytest.raises(Forbidden):
            support.order_status(session=s, identity=Identity("rep", 1), order_id="579000")


def test_cancel_a_processing_order(crm: str) -> None:
    with session_scope() as s:
        outcome = support.cancel_order(session=s, identity=GEORGE, order_id="581001",
                                       actor="web:c1")
    assert (outcome.cancelled, outcome.reason, outcome.order.status) == (
        True, "cancelled", "cancelled")
    [entry] = audits("cancel_order")
    assert (entry.actor, entry.entity, entry.entity_id) == ("web:c1", "orders", "581001")
    with session_scope() as s:
        again = support.cancel_order(session=s, identity=GEORGE, order_id="581001",
                                     actor="web:c1")
    assert (again.cancelled, again.reason) == (False, "already_cancelled")


@pytest.mark.parametrize(("order_id", "reason"), [
    ("580900", "shipped"), ("579000", "delivered"), ("C579001", "not_a_sale")])
def test_orders_that_cannot_be_cancelled(crm: str, order_id: str, reason: str) -> None:
    with session_scope() as s:
        outcome = support.cancel_order(session=s, identity=GEORGE, order_id=order_id,
                                       actor="web:c1")
    assert (outcome.cancelled, outcome.reason) == (False, reason)
    assert audits() == []


def test_cancel_another_customers_order_is_not_found_and_changes_nothing(crm: str) -> None:
    with session_scope() as s, pytest.raises(NotFound):
        support.cancel_order(session=s, identity=GEORGE, order_id="581002", actor="web:c1")
    with session_scope() as s:
        assert s.get(m.Order, "581002").status == "processing"


def test_order_change_goes_to_the_team_while_processing(crm: str) -> None:
    with session_scope() as s:
        done = support.request_order_change(session=s, identity=GEORGE, order_id="581001",
                                            request="add 6 more lanterns", sender_id="web:c1")
        late = support.request_order_change(session=s, identity=GEORGE, order_id="579000",
                                            request="add 6 more lanterns", sender_id="web:c1")
    assert done.outcome == "opened" and late.outcome == "delivered"
    [ticket] = tickets("order_change")
    assert (ticket.order_id, ticket.customer_id, ticket.body) == (
        "581001", 12347, "add 6 more lanterns")


# --------------------------------------------------------------------------- refunds


def test_refund_request_opens_one_ticket(crm: str) -> None:
    with session_scope() as s:
        first = support.request_refund(session=s, identity=GEORGE, order_id="579000",
                                       reason="the bag is torn", sender_id="web:r1")
        second = support.request_refund(session=s, identity=GEORGE, order_id="579000",
                                        reason="again", sender_id="web:r1")
    assert first.outcome == "opened" and second == support.RefundRequest(
        first.order, "already_open", first.ticket_id)
    [ticket] = tickets("refund")
    assert (ticket.order_id, ticket.customer_id, ticket.sender_id, ticket.body) == (
        "579000", 12347, "web:r1", "the bag is torn")
    [entry] = audits("open_ticket")
    assert (entry.actor, entry.details) == ("web:r1", {"kind": "refund"})


@pytest.mark.parametrize(("order_id", "outcome"), [
    ("581001", "processing"), ("C579001", "not_a_sale"), ("580900", "opened")])
def test_refund_only_for_shipped_or_delivered_orders(crm: str, order_id: str,
                                                     outcome: str) -> None:
    with session_scope() as s:
        result = support.request_refund(session=s, identity=GEORGE, order_id=order_id,
                                        reason="", sender_id="web:r1")
    assert result.outcome == outcome
    assert len(tickets("refund")) == (outcome == "opened")


def test_refund_status_lists_requests_and_credits(crm: str) -> None:
    with session_scope() as s:
        support.request_refund(session=s, identity=GEORGE, order_id="579000", reason="",
                               sender_id="web:r1")
        support.cancel_order(session=s, identity=GEORGE, order_id="581001", actor="web:r1")
    with session_scope() as s:
        status = support.refund_status(session=s, identity=GEORGE)
        assert support.refund_status(session=s, identity=OLIVIA) == support.RefundStatus()
        with pytest.raises(Forbidden):
            support.refund_status(session=s, identity=ANONYMOUS)
    assert [(r.order_id, r.status) for r in status.requests] == [("579000", "open")]
    assert [(c.order_id, c.amount, c.kind) for c in status.credits] == [
        ("581001", 28.86, "cancelled_order"), ("C579001", 5.10, "cancellation")]


# --------------------------------------------------------------------------- invoices


def test_invoice_lists_the_largest_lines(crm: str) -> None:
    with session_scope() as s:
        inv = support.invoice(session=s, identity=GEORGE, order_id="579000", max_lines=2)
    assert [(x.description, x.quantity, x.amount) for x in inv.lines] == [
        ("PACK OF 72 RETROSPOT CAKE CASES", 24, 13.2), ("JUMBO BAG RED RETROSPOT", 10, 19.5),
    ][::-1]
    assert inv.order.lines == 3 and inv.ticket_id is None


def test_invoice_copy_opens_one_invoice_ticket(crm: str) -> None:
    with session_scope() as s:
        first = support.request_invoice_copy(session=s, identity=GEORGE, order_id="580900",
                                             sender_id="web:i1")
        second = support.request_invoice_copy(session=s, identity=GEORGE, order_id="580900",
                                              sender_id="web:i1")
    assert first.ticket_id == second.ticket_id is not None
    [ticket] = tickets("invoice")
    assert (ticket.order_id, ticket.customer_id) == ("580900", 12347)
    with session_scope() as s, pytest.raises(NotFound):
        support.request_invoice_copy(session=s, identity=OLIVIA, order_id="580900",
                                     sender_id="web:i2")


# --------------------------------------------------------------------------- account


def test_shipping_address_is_stored_and_audited_without_the_address(crm: str) -> None:
    with session_scope() as s:
        first = support.set_shipping_address(session=s, identity=GEORGE,
                                             address="12 High Street, Leeds LS1 4AB",
                                             actor="web:a1")
        second = support.set_shipping_address(session=s, identity=GEORGE,
                                              address="3 Mill Lane, York YO1 7HH", actor="web:a1")
    assert (first, second) == (False, True)
    with session_scope() as s:
        assert s.get(m.Customer, 12347).shipping_address == "3 Mill Lane, York YO1 7HH"
    entries = audits("set_shipping_address")
    assert [e.details for e in entries] == [{"replaced": False}, {"replaced": True}]
    assert all("Lane" not in json.dumps(e.details) for e in entries)


def test_shipping_address_checks(crm: str) -> None:
    with session_scope() as s:
        with pytest.raises(support.InvalidRequest):
            support.set_shipping_address(session=s, identity=GEORGE, address="yes", actor="x")
        with pytest.raises(Forbidden):
            support.set_shipping_address(session=s, identity=ANONYMOUS,
                                         address="12 High Street, Leeds", actor="x")


def test_account_change_keeps_the_new_email_out_of_the_audit(crm: str) -> None:
    with session_scope() as s:
        ticket_id = support.request_account_change(
            session=s, identity=GEORGE, request="change my email to new.me@example.com",
            new_email="New.Me@example.com", sender_id="web:a1")
    [ticket] = tickets("account_change")
    assert ticket.id == ticket_id and ticket.subject == "E-mail change request"
    assert "new.me@example.com" in ticket.body
    [entry] = audits("account_change_requested")
    assert entry.details == {"ticket_id": ticket_id, "email_change": True}


def test_erasure_request_is_recorded_once(crm: str) -> None:
    with session_scope() as s:
        first = support.request_erasure(session=s, identity=GEORGE, sender_id="web:d1")
        second = support.request_erasure(session=s, identity=GEORGE, sender_id="web:d1")
        with pytest.raises(Forbidden):
            support.request_erasure(session=s, identity=ANONYMOUS, sender_id="web:d2")
    assert first == second
    assert [(t.kind, t.customer_id) for t in tickets()] == [("erasure", 12347)]
    assert [(e.actor, e.entity_id) for e in audits("erasure_requested")] == [("web:d1", "12347")]


def test_customer_tickets_link_only_the_callers_own_order(crm: str) -> None:
    with session_scope() as s:
        own = support.open_customer_ticket(session=s, identity=GEORGE, kind="complaint",
                                           text="the lantern arrived broken",
                                           sender_id="web:t1", order_id="579000")
        other = support.open_customer_ticket(session=s, identity=ANONYMOUS, kind="complaint",
                                             text="the lantern arrived broken",
                                             sender_id="web:t2", order_id="579000")
        with pytest.raises(support.InvalidRequest):
            support.open_customer_ticket(session=s, identity=GEORGE, kind="hack", text="x",
                                         sender_id="web:t1")
    first, second = tickets()
    assert (first.id, first.customer_id, first.order_id) == (own, 12347, "579000")
    assert (second.id, second.customer_id, second.order_id) == (other, None, None)
    assert "not verified: 579000" in second.body


# --------------------------------------------------------------------------- suggestions


def test_best_sellers_net_of_cancellations_over_the_last_90_days(crm: str) -> None:
    with session_scope() as s:
        top = support.best_sellers(session=s, limit=3)
    # 21212: 24 (Olivia's 500 are older than 90 days); 85099B: 10 + 12; 85123A: 6 + 2 - 2.
    assert [p.stock_code for p in top] == ["21212", "85099B", "85123A"]


def test_suggestions_personal_when_the_model_has_some(crm: str) -> None:
    with session_scope() as s:
        assert support.suggestions(session=s, identity=GEORGE).personal is False
        assert support.suggestions(session=s, identity=ANONYMOUS).personal is False
        s.add_all([m.Recommendation(customer_id=12347, rank=r, stock_code=c, score=1 / r,
                                    source="item_cf", model_version="t")
                   for r, c in [(2, "22423"), (1, "71053")]])
    with session_scope() as s:
        mine = support.suggestions(session=s, identity=GEORGE)
        theirs = support.suggestions(session=s, identity=OLIVIA)
    assert mine.personal and [p.stock_code for p in mine.items] == ["71053", "22423"]
    assert not theirs.personal


# --------------------------------------------------------------------------- erased customers


def test_an_erased_customer_is_no_customer(crm: str) -> None:
    with session_scope() as s:
        assert own_customer_id(GEORGE, session=s) == 12347
        assert active_customer(GEORGE, session=s) == 12347
        for who in (ERASED, Identity("customer", 99999)):  # erased, or never in the CRM
            assert active_customer(who, session=s) is None
            with pytest.raises(NotFound):
                own_customer_id(who, session=s)
        for who in (ANONYMOUS, Identity("rep", 1), Identity("agent", 1)):
            assert active_customer(who, session=s) is None
            with pytest.raises(Forbidden):
                own_customer_id(who, session=s)


# Every customer-facing read or change, as an erased customer holding their old identity.
ERASED_CALLS = {
    "order_status": lambda s: support.order_status(session=s, identity=ERASED,
                                                   order_id="581003"),
    "latest_order": lambda s: support.order_status(session=s, identity=ERASED),
    "cancel_order": lambda s: support.cancel_order(session=s, identity=ERASED,
                                                   order_id="581003", actor="web:e1"),
    "order_change": lambda s: support.request_order_change(
        session=s, identity=ERASED, order_id="581003", request="more", sender_id="web:e1"),
    "refund": lambda s: support.request_refund(session=s, identity=ERASED, order_id="581003",
                                               reason="torn", sender_id="web:e1"),
    "refund_status": lambda s: support.refund_status(session=s, identity=ERASED),
    "invoice": lambda s: support.invoice(session=s, identity=ERASED),
    "invoice_copy": lambda s: support.request_invoice_copy(session=s, identity=ERASED,
                                                           order_id=None, sender_id="web:e1"),
    "shipping_address": lambda s: support.set_shipping_address(
        session=s, identity=ERASED, address="1 New Street, Leeds LS1 1AA", actor="web:e1"),
    "account_change": lambda s: support.request_account_change(
        session=s, identity=ERASED, request="new phone", new_email=None, sender_id="web:e1"),
    "erasure_request": lambda s: support.request_erasure(session=s, identity=ERASED,
                                                         sender_id="web:e1"),
}


@pytest.mark.parametrize("call", list(ERASED_CALLS))
def test_an_erased_customer_reads_and_changes_nothing(crm: str, call: str) -> None:
    with session_scope() as s, pytest.raises(NotFound):
        ERASED_CALLS[call](s)
    with session_scope() as s:
        assert s.get(m.Order, "581003").status == "processing"
        assert s.get(m.Customer, 12349).shipping_address is None
    assert tickets() == [] and audits() == []


def test_an_erased_customer_is_anonymous_for_tickets_ideas_and_handoffs(crm: str) -> None:
    with session_scope() as s:
        s.add(m.Recommendation(customer_id=12349, rank=1, stock_code="71053", score=1.0,
                               source="item_cf", model_version="t"))  # a model trained again
    with session_scope() as s:
        ideas = support.suggestions(session=s, identity=ERASED)
        ticket = support.open_customer_ticket(session=s, identity=ERASED, kind="complaint",
                                              text="it broke", sender_id="web:e1",
                                              order_id="581003")
        outcome = handoff.open_escalation(session=s, sender_id="web:e1", channel="web",
                                          reason="asked for a human", transcript=[],
                                          sentiment_history=[], customer_id=12349, now=NOW)
    assert not ideas.personal and "71053" not in [p.stock_code for p in ideas.items]
    [filed] = tickets("complaint")
    assert (filed.id, filed.customer_id, filed.order_id) == (ticket, None, None)
    with session_scope() as s:
        esc = s.get(m.Escalation, outcome.escalation_id)
        assert (esc.customer_id, esc.context) == (None, {"customer_id": None, "verified": False})


def test_a_signed_in_customer_reads_nothing_once_erased(crm: str, tmp_path: Path) -> None:
    """``crm-ml gdpr erase``: the customer's signed identity still verifies, and finds nothing."""
    with session_scope() as s:
        assert support.order_status(session=s, identity=GEORGE).order_id == "581001"
        gdpr.erase(session=s, customer_id=12347, tracker_url=f"sqlite:///{tmp_path / 't.db'}")
    with session_scope() as s:
        for order_id in ("581001", None):
            with pytest.raises(NotFound):
                support.order_status(session=s, identity=GEORGE, order_id=order_id)
        with pytest.raises(NotFound):
            support.refund_status(session=s, identity=GEORGE)
        assert not support.suggestions(session=s, identity=GEORGE).personal
        assert s.get(m.Order, "581001").customer_id == 12347  # the accounts keep it


def test_empty_crm_has_no_best_sellers(env: pytest.MonkeyPatch, sqlite_url: str) -> None:
    with session_scope(sqlite_url) as s:
        assert support.best_sellers(session=s) == []
