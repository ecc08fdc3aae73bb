"""crm_ml.claims on the seeded CRM of tests/crm_ml/test_support.py (George 12347, Olivia 12348)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm_ml import claims
from crm_ml.authz import Forbidden
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.errors import NotFound
from crm_ml.identity import ANONYMOUS, Identity
from tests.crm_ml.test_support import audits, crm, crm_template  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("crm")

GEORGE = Identity("customer", 12347)
OLIVIA = Identity("customer", 12348)


def _line(order_id: str, stock_code: str) -> int:
    with session_scope() as s:
        return s.scalars(select(m.OrderLine.id).where(m.OrderLine.order_id == order_id,
                                                      m.OrderLine.stock_code == stock_code)).one()


def test_order_items_largest_first_with_their_amounts() -> None:
    with session_scope() as s:
        order, items = claims.order_items(session=s, identity=GEORGE, order_id="579000")
    assert order.order_id == "579000"
    assert [(i.description, i.quantity, i.amount) for i in items] == [
        ("JUMBO BAG RED RETROSPOT", 10, 19.5),
        ("PACK OF 72 RETROSPOT CAKE CASES", 24, 13.2),
        ("WHITE HANGING HEART T-LIGHT HOLDER", 2, 5.1)]


def test_a_cancellation_note_has_no_items_to_claim() -> None:
    with session_scope() as s:
        _, items = claims.order_items(session=s, identity=GEORGE, order_id="C579001")
    assert items == []  # its one line is a negative quantity


def test_line_refund_is_for_that_line_once() -> None:
    line = _line("579000", "21212")
    with session_scope() as s:
        first = claims.request_line_refund(session=s, identity=GEORGE, order_id="579000",
                                           line_id=line, problem="wrong", sender_id="web:t")
    with session_scope() as s:
        again = claims.request_line_refund(session=s, identity=GEORGE, order_id="579000",
                                           line_id=line, problem="wrong", sender_id="web:t")
        other = claims.request_line_refund(
            session=s, identity=GEORGE, order_id="579000",
            line_id=_line("579000", "85123A"), problem="damaged", sender_id="web:t")
    assert (first.outcome, first.item.amount) == ("opened", 13.2)
    assert (again.outcome, again.ticket_id) == ("already_open", first.ticket_id)
    assert other.outcome == "opened" and other.ticket_id != first.ticket_id
    assert len(audits("open_ticket")) == 2


@pytest.mark.parametrize(("identity", "order_id", "stock_code", "error"), [
    (OLIVIA, "579000", "21212", NotFound),   # George's order
    (GEORGE, "579000", "22423", NotFound),   # a line of another order
    (ANONYMOUS, "579000", "21212", Forbidden),
])
def test_line_refund_only_for_the_callers_own_line(identity: Identity, order_id: str,
                                                   stock_code: str, error: type) -> None:
    line = _line("580900" if stock_code == "22423" else order_id, stock_code)
    with session_scope() as s, pytest.raises(error):
        claims.request_line_refund(session=s, identity=identity, order_id=order_id,
                                   line_id=line, problem="wrong", sender_id="web:t")


def test_line_refund_refuses_an_unknown_problem() -> None:
    with session_scope() as s, pytest.raises(ValueError, match="problem"):
        claims.request_line_refund(session=s, identity=GEORGE, order_id="579000",
                                   line_id=_line("579000", "21212"), problem="meh",
                                   sender_id="web:t")


def test_missing_parcel_claim_for_the_latest_order_by_default() -> None:
    with session_scope() as s:
        claim = claims.open_missing_parcel_claim(session=s, identity=GEORGE, order_id=None,
                                                 text="nothing came", sender_id="web:t")
    assert (claim.order.order_id, claim.outcome) == ("581001", "processing")  # not shipped
    with session_scope() as s:
        claim = claims.open_missing_parcel_claim(session=s, identity=GEORGE, order_id="580900",
                                                 text="nothing came", sender_id="web:t")
        ticket = s.get(m.Ticket, claim.ticket_id)
        assert (ticket.kind, ticket.order_id, ticket.body) == (
            "missing_parcel", "580900", "nothing came")
    assert claim.outcome == "opened"


def test_recent_orders_newest_first_and_limited() -> None:
    with session_scope() as s:
        orders = claims.recent_orders(session=s, identity=GEORGE, limit=2)
        olivia = claims.recent_orders(session=s, identity=OLIVIA)
    assert [o.order_id for o in orders] == ["581001", "580900"]
    assert [o.order_id for o in olivia] == ["581002", "560000"]
