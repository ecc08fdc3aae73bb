"""GDPR export and erase: nothing personal is left, in any table or tracker event."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import create_engine, inspect, text

from crm_ml import gdpr
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.errors import NotFound
from crm_ml.pii import mask

EMAIL = "ada.lovelace.12347@example.com"
NAME = "Ada Lovelace"
MESSAGE = "my parcel to 12 Byron Street never came"


@pytest.fixture
def crm(env, sqlite_url: str, tmp_path) -> tuple[str, str]:
    env.setenv("CRM_DATABASE_URL", sqlite_url)
    tracker_url = f"sqlite:///{tmp_path / 'tracker.db'}"
    with session_scope() as s:
        for cid, name, email in [(12347, NAME, EMAIL), (12348, "Bo Other", "bo@example.com")]:
            s.add(m.Customer(id=cid, name=name, email=email, country="UK", anonymized=False,
                             shipping_address="12 Byron Street" if cid == 12347 else None))
        s.flush()
        s.add(m.Order(id="500001", customer_id=12347, invoiced_at=dt.datetime(2011, 1, 2),
                      country="UK", kind="sale", status="delivered", total=10))
        s.add(m.ChannelIdentity(sender_id="tg:42", customer_id=12347))
        s.add(m.Interaction(sender_id="tg:42", channel="telegram", direction="in",
                            text=MESSAGE, customer_id=None))
        s.add(m.Interaction(sender_id="web:x", channel="web", direction="in",
                            text="hello from Ada", customer_id=12347))
        s.add(m.Interaction(sender_id="web:other", channel="web", direction="in",
                            text="not Ada's", customer_id=12348))
        s.add(m.Escalation(sender_id="tg:42", channel="telegram", customer_id=12347,
                           reason="very negative message",
                           transcript=[{"from": "customer", "text": MESSAGE}],
                           context={"name": NAME}))
        s.add(m.Ticket(kind="complaint", customer_id=12347, sender_id="tg:42",
                       subject="parcel", body=f"{NAME} <{EMAIL}>: {MESSAGE}"))
    engine = create_engine(tracker_url)
    with engine.begin() as conn:  # the columns of Rasa 3.6's SQL tracker store
        conn.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255),"
                          " type_name VARCHAR(255), timestamp FLOAT, intent_name VARCHAR(255),"
                          " action_name VARCHAR(255), data TEXT)"))
        for sender, said in [("tg:42", MESSAGE), ("web:x", "hello from Ada"),
                             ("web:other", "not Ada's")]:
            conn.execute(text("INSERT INTO events (sender_id, type_name, timestamp, data) "
                              "VALUES (:s, 'user', 1.0, :d)"),
                         {"s": sender, "d": json.dumps({"event": "user", "text": said})})
    engine.dispose()
    return sqlite_url, tracker_url


def _dump(url: str) -> str:
    engine = create_engine(url)
    out = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            out += [repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{table}"'))]
    engine.dispose()
    return "\n".join(out)


def test_export_has_everything(crm) -> None:
    _, tracker_url = crm
    with session_scope() as s:
        data = gdpr.export(session=s, customer_id=12347, tracker_url=tracker_url)
    assert data["customer"]["email"] == EMAIL
    assert [o["id"] for o in data["orders"]] == ["500001"]
    assert {i["text"] for i in data["interactions"]} == {MESSAGE, "hello from Ada"}
    assert {e["text"] for e in data["conversation_events"]} == {MESSAGE, "hello from Ada"}
    assert len(data["tickets"]) == 1 and len(data["escalations"]) == 1
    json.dumps(data)  # JSON-ready


def test_erase_leaves_no_trace(crm) -> None:
    crm_url, tracker_url = crm
    with session_scope() as s:
        counts = gdpr.erase(session=s, customer_id=12347, tracker_url=tracker_url)
    assert counts["interactions"] == 2 and counts["tracker_events"] == 2
    everything = _dump(crm_url) + _dump(tracker_url)
    for secret in (EMAIL, NAME, MESSAGE, "hello from Ada", "Byron"):
        assert secret not in everything, secret
    assert "not Ada's" in everything and "bo@example.com" in everything  # others untouched
    with session_scope() as s:
        customer = s.get(m.Customer, 12347)
        assert customer.anonymized and customer.email.endswith("@invalid")
        assert s.get(m.Order, "500001").customer_id == 12347  # accounts kept, pseudonymous


def test_unknown_customer(crm) -> None:
    with pytest.raises(NotFound), session_scope() as s:
        gdpr.erase(session=s, customer_id=99999)


def test_masking_of_personal_data_in_text() -> None:
    assert mask(f"write to {EMAIL}") == "write to a***@example.com"
    assert mask("card 4111 1111 1111 1111") == "card [number ending 1111]"
    assert mask("call 07700 900123") == "call [phone]"
    assert mask("order 536365 for customer 12347 on 2011-12-09 10:00") == \
        "order 536365 for customer 12347 on 2011-12-09 10:00"
