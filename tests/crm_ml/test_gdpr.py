"""GDPR export and erase: nothing personal is left, in any table or tracker event."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select, text

from crm_ml import gdpr
from crm_ml.authz import Forbidden
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.errors import CRMUnavailable, NotFound
from crm_ml.identity import ANONYMOUS, Identity
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
    tracker_store(tracker_url, [(sender, {"event": "user", "text": said, "timestamp": 1.0})
                                for sender, said in [("tg:42", MESSAGE),
                                                     ("web:x", "hello from Ada"),
                                                     ("web:other", "not Ada's")]])
    return sqlite_url, tracker_url


def tracker_store(url: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    """A SQL tracker store with the columns of Rasa 3.6's, holding ``events``."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, "
                          "sender_id VARCHAR(255), type_name VARCHAR(255), timestamp FLOAT, "
                          "intent_name VARCHAR(255), action_name VARCHAR(255), data TEXT)"))
        for sender, event in events:
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            conn.execute(text("INSERT INTO events (sender_id, type_name, timestamp, intent_name,"
                              " action_name, data) VALUES (:s, :t, :ts, :i, :a, :d)"),
                         {"s": sender, "t": event["event"], "ts": event.get("timestamp"),
                          "i": intent, "a": event.get("name"), "d": json.dumps(event)})
    engine.dispose()


def tracker_rows(url: str, sender: str) -> list[tuple[str, float, str | None, dict]]:
    """``(type_name, timestamp, intent_name, data)`` of a sender's stored events, in order."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT type_name, timestamp, intent_name, data FROM events "
                                 "WHERE sender_id = :s ORDER BY id"), {"s": sender}).all()
    engine.dispose()
    return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]


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


# A chat that verified Ada, as Rasa stored it before the turn that confirms the erasure.
LIVE = "web:live"
LIVE_EVENTS: list[dict[str, Any]] = [
    {"event": "action", "name": "action_session_start", "timestamp": 10.0},
    {"event": "session_started", "timestamp": 10.1},
    {"event": "action", "name": "action_listen", "timestamp": 10.2},
    {"event": "user", "text": f"500001 {EMAIL}", "timestamp": 11.0, "message_id": "m1",
     "input_channel": "rest", "metadata": {"auth": {"user": "x", "sig": "y"}},
     "parse_data": {"text": f"500001 {EMAIL}", "intent": {"name": "inform"},
                    "entities": [{"entity": "email", "value": EMAIL}]}},
    {"event": "entities", "entities": [{"entity": "email", "value": EMAIL}], "timestamp": 11.1},
    {"event": "slot", "name": "email", "value": EMAIL, "timestamp": 11.2},
    {"event": "action", "name": "action_verify_customer", "policy": "RulePolicy",
     "confidence": 1.0, "timestamp": 11.3},
    {"event": "bot", "text": f"Thanks {NAME}, that's you.", "data": {"custom": NAME},
     "metadata": {"utter_action": "utter_verified"}, "timestamp": 11.4},
    {"event": "slot", "name": "verified_customer", "value": "12347", "timestamp": 11.5},
]


@pytest.fixture
def live_chat(crm) -> tuple[str, str]:
    crm_url, tracker_url = crm
    with session_scope() as s:  # said before verification: not linked to Ada yet
        s.add(m.Interaction(sender_id=LIVE, channel="rest", direction="in",
                            text=f"500001 {EMAIL}", customer_id=None))
        s.add(m.ChannelIdentity(sender_id=LIVE, customer_id=12347))
    tracker_store(tracker_url, [(LIVE, e) for e in LIVE_EVENTS])
    return crm_url, tracker_url


def test_erase_from_a_chat_redacts_the_live_conversation_in_place(live_chat) -> None:
    """Rasa appends the events past the number of rows it finds: that number must not change."""
    crm_url, tracker_url = live_chat
    with session_scope() as s:
        counts = gdpr.erase_own_account(session=s, identity=Identity("customer", 12347),
                                        sender_id=LIVE, tracker_url=tracker_url)
    assert counts["tracker_events"] == 2 + len(LIVE_EVENTS)  # tg:42 and web:x deleted
    assert counts["interactions"] == 3  # the live chat's message before verification too
    rows = tracker_rows(tracker_url, LIVE)
    assert [(t, ts) for t, ts, _, _ in rows] == [(e["event"], e["timestamp"])
                                                 for e in LIVE_EVENTS]
    assert all(intent is None for _, _, intent, _ in rows)
    assert [d.get("name") for *_, d in rows] == [e.get("name") for e in LIVE_EVENTS]
    assert tracker_rows(tracker_url, "tg:42") == tracker_rows(tracker_url, "web:x") == []
    everything = _dump(crm_url) + _dump(tracker_url)
    for secret in (EMAIL, NAME, MESSAGE, "hello from Ada", "Byron", "500001 "):
        assert secret not in everything, secret
    assert '"value": "12347"' not in everything  # the verified slot is gone too
    with session_scope() as s:
        [entry] = s.scalars(select(m.AuditLog).where(m.AuditLog.action == "gdpr_erase"))
        assert (entry.entity, entry.entity_id) == ("customers", "12347")
        assert entry.actor == gdpr.chat_actor(LIVE) and "live" not in entry.actor
        assert entry.details == {"conversations": 3, "from_chat": True}
        assert entry.at is not None
        assert s.get(m.Customer, 12347).anonymized


@pytest.mark.parametrize("who", [ANONYMOUS, Identity("rep", 1), Identity("manager", 1),
                                 Identity("agent", 1), Identity("customer", None)])
def test_only_a_customer_erases_from_a_chat(live_chat, who: Identity) -> None:
    crm_url, tracker_url = live_chat
    before = _dump(crm_url) + _dump(tracker_url)
    with pytest.raises(Forbidden), session_scope() as s:
        gdpr.erase_own_account(session=s, identity=who, sender_id=LIVE,
                               tracker_url=tracker_url)
    assert _dump(crm_url) + _dump(tracker_url) == before


@pytest.mark.parametrize("store", ["empty", "other conversations only"])
def test_erase_from_a_chat_refuses_a_tracker_store_that_is_not_rasas(live_chat, tmp_path,
                                                                     store: str) -> None:
    """Saying "erased" while the conversation sits in another store would be untrue."""
    crm_url, tracker_url = live_chat
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    if store != "empty":
        tracker_store(elsewhere, [("web:x", {"event": "user", "text": "hello from Ada",
                                             "timestamp": 1.0})])
    before = _dump(crm_url) + _dump(elsewhere)
    with pytest.raises(CRMUnavailable, match="CRM_TRACKER_DB_URL"), session_scope() as s:
        gdpr.erase_own_account(session=s, identity=Identity("customer", 12347),
                               sender_id=LIVE, tracker_url=elsewhere)
    assert _dump(crm_url) + _dump(elsewhere) == before


def test_redacted_events_keep_what_rasa_needs_to_read_them() -> None:
    user, entities, slot, action, bot = (gdpr.redact_event(LIVE_EVENTS[i]) for i in (3, 4, 5, 6, 7))
    assert user == {"event": "user", "timestamp": 11.0, "input_channel": "rest", "text": None,
                    "parse_data": {"intent": {}, "entities": []}, "metadata": {}}
    assert entities == {"event": "entities", "timestamp": 11.1, "entities": []}
    assert slot == {"event": "slot", "name": "email", "timestamp": 11.2, "value": None}
    assert action == {"event": "action", "name": "action_verify_customer", "timestamp": 11.3,
                      "policy": "RulePolicy", "confidence": 1.0, "metadata": {},
                      "action_text": None}
    assert bot == {"event": "bot", "timestamp": 11.4, "text": None, "data": {}, "metadata": {}}
    assert gdpr.redact_event({"event": "pause", "timestamp": 1}) == {"event": "pause",
                                                                     "timestamp": 1}


def test_the_chat_actor_names_the_channel_not_the_sender(env) -> None:
    env.setenv("CRM_IDENTITY_SECRET", "s3cret")
    actor = gdpr.chat_actor("tg:123456789")
    assert actor.startswith("tg:") and "123456789" not in actor and len(actor) == 3 + 16
    assert gdpr.chat_actor("tg:123456789") == actor != gdpr.chat_actor("tg:123456788")
    assert gdpr.chat_actor("no namespace").startswith("chat:")
    env.setenv("CRM_IDENTITY_SECRET", "other")
    from crm_ml.config import get_settings

    get_settings.cache_clear()
    assert gdpr.chat_actor("tg:123456789") != actor  # keyed: not a plain hash of the id


def test_unknown_customer(crm) -> None:
    with pytest.raises(NotFound), session_scope() as s:
        gdpr.erase(session=s, customer_id=99999)


def test_masking_of_personal_data_in_text() -> None:
    assert mask(f"write to {EMAIL}") == "write to a***@example.com"
    assert mask("card 4111 1111 1111 1111") == "card [number ending 1111]"
    assert mask("call 07700 900123") == "call [phone]"
    assert mask("order 536365 for customer 12347 on 2011-12-09 10:00") == \
        "order 536365 for customer 12347 on 2011-12-09 10:00"
