"""After-delivery claims through the real Rasa server and action server (REST).

On a copy of the loaded CRM: an anonymous customer reports a wrong item, verifies,
picks the line with its button's payload, is asked to confirm, and only their
"yes" opens a refund, for that line only; another reports a parcel marked
delivered that never came, gives a wrong e-mail once, then the right one
alone, and gets a missing-parcel claim for the order number given first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_ml.config import PROJECT_ROOT
from tests.support.servers import Stack, assistant, crm_snapshot

CRM = PROJECT_ROOT / "var" / "crm.db"

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not CRM.is_file(), reason="var/crm.db missing (make load)")]


@pytest.fixture(scope="module")
def crm_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crm_snapshot(tmp_path_factory.mktemp("claims"))


@pytest.fixture(scope="module")
def stack(crm_copy: Path) -> Iterator[Stack]:
    with assistant(crm_copy.parent, f"sqlite:///{crm_copy}",
                   extra_env={"CRM_IDENTITY_SECRET": "claims-secret"}) as running:
        yield running


def _rows(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def _delivered_order(db: Path, skip: int = 0) -> tuple[str, str]:
    """A delivered order of several lines of distinct products, and its customer's e-mail."""
    return _rows(db, "SELECT o.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id "
                 "JOIN order_lines l ON l.order_id = o.id WHERE o.kind = 'sale' AND "
                 "o.status = 'delivered' AND c.email IS NOT NULL GROUP BY o.id HAVING "
                 "count(l.id) BETWEEN 3 AND 5 AND count(DISTINCT l.stock_code) = count(l.id) "
                 "ORDER BY o.id LIMIT 1 OFFSET ?", skip)[0]


def _texts(replies: list[dict]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def test_wrong_item_refunds_the_chosen_line_only_after_a_yes(stack: Stack,
                                                            crm_copy: Path) -> None:
    order_id, email = _delivered_order(crm_copy)
    sender = "web:claims-wrong-item"
    asked = _texts(stack.say(sender, "wrong item received"))
    assert "order" in asked and "e-mail" in asked, asked

    replies = stack.say(sender, f"{order_id}, {email}")
    text = _texts(replies)
    assert "Thank you, those details match." in text
    assert "sorry you received the wrong item" in text, text
    buttons = [b for r in replies for b in r.get("buttons") or []]
    lines = _rows(crm_copy, "SELECT l.id, l.quantity, l.unit_price, p.description FROM "
                  "order_lines l JOIN products p ON p.stock_code = l.stock_code "
                  "WHERE l.order_id = ?", order_id)
    assert len(buttons) == len(lines) >= 3
    assert {b["payload"] for b in buttons} == {
        f'/choose_item{{"order_line":"{line_id}"}}' for line_id, *_ in lines}

    chosen = next(b for b in buttons if b["payload"] == buttons[-1]["payload"])
    confirm = _texts(stack.say(sender, chosen["payload"]))
    assert f"from order {order_id}" in confirm and "this item only" in confirm, confirm
    assert _rows(crm_copy, "SELECT id FROM tickets WHERE kind = 'refund' AND order_id = ?",
                 order_id) == []  # asked first, nothing opened yet

    done = _texts(stack.say(sender, "yes please"))
    assert "I've arranged the return and a refund" in done, done
    [(subject, body)] = _rows(crm_copy, "SELECT subject, body FROM tickets WHERE "
                              "kind = 'refund' AND order_id = ?", order_id)
    line_id = int(chosen["payload"].split('"')[3])
    _, quantity, price, description = next(line for line in lines if line[0] == line_id)
    assert subject == f"Refund of line {line_id} of order {order_id}"
    assert f"{quantity} x {description}" in body
    assert f"refund {quantity * price:.2f} for this line only" in body
    others = [d for i, _, _, d in lines if i != line_id]
    assert not any(f"x {d} " in body for d in others)


def test_missing_parcel_after_a_wrong_email_keeps_the_order_number(stack: Stack,
                                                                   crm_copy: Path) -> None:
    order_id, email = _delivered_order(crm_copy, skip=1)
    sender = "web:claims-missing-parcel"
    asked = _texts(stack.say(sender, f"order {order_id} says delivered but it's not here"))
    assert "e-mail address on the order" in asked, asked
    failed = _texts(stack.say(sender, "it's nobody.here@example.org"))
    assert "couldn't match those details" in failed, failed
    claim = _texts(stack.say(sender, f"sorry, it's {email}"))
    assert "Thank you, those details match." in claim, claim
    assert f"missing-parcel claim for order {order_id}" in claim, claim
    [(kind, status)] = _rows(crm_copy, "SELECT kind, status FROM tickets WHERE order_id = ? "
                             "AND kind = 'missing_parcel'", order_id)
    assert status == "open"
