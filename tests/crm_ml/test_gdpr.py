"""GDPR export and erase: nothing personal is left, in any table or tracker event."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
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

ROOT = Path(__file__).resolve().parents[2]
BOT_PYTHON = ROOT / ".venv-bot" / "bin" / "python"
EMAIL = "ada.lovelace.12347@example.com"
NAME = "Ada Lovelace"
MESSAGE = "my parcel to 12 Byron Street never came"
AGENT_REPLY = f"Hello {NAME}, your parcel is on its way"  # waiting for Telegram
AT = dt.datetime(2011, 1, 3, 9, 0)


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
        # Written before the erasure: they tie Ada's conversations to her number.
        for actor, action, entity, entity_id in AUDITED:
            s.add(m.AuditLog(actor=actor, action=action, entity=entity, entity_id=entity_id,
                             details={}, at=AT))
    tracker_store(tracker_url, [(sender, {"event": "user", "text": said, "timestamp": 1.0})
                                for sender, said in [("tg:42", MESSAGE),
                                                     ("web:x", "hello from Ada"),
                                                     ("web:other", "not Ada's")]])
    telegram_outbox(tracker_url, [(42, AGENT_REPLY), (99, "not for Ada")])
    return sqlite_url, tracker_url


AUDITED = [  # (actor, action, entity, entity_id)
    ("tg:42", "verify_failed", "orders", "500001"),
    ("tg:42", "verified", "customers", "12347"),
    ("tg:42", "verify_blocked", "channel_identities", "tg:42"),
    ("web:x", "cancel_order", "orders", "500001"),
    ("web:other", "verified", "customers", "12348"),
    ("agent:1", "reply", "escalations", "1"),
]


def telegram_outbox(url: str, messages: list[tuple[int, str]]) -> None:
    """The ``telegram_outbox`` table of bot/telegram/_outbox.py, holding ``messages`` to chats."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS telegram_outbox (id INTEGER PRIMARY KEY, "
                          "bot_id VARCHAR(32) NOT NULL, chat_id BIGINT NOT NULL, "
                          "method VARCHAR(32) NOT NULL, params TEXT NOT NULL, "
                          "created_at FLOAT NOT NULL)"))
        for chat, said in messages:
            conn.execute(text("INSERT INTO telegram_outbox (bot_id, chat_id, method, params, "
                              "created_at) VALUES ('123', :c, 'send_message', :p, 1.3e9)"),
                         {"c": chat, "p": json.dumps({"text": said})})
    engine.dispose()


def outbox_chats(url: str) -> list[int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        chats = [r[0] for r in conn.execute(text("SELECT chat_id FROM telegram_outbox"))]
    engine.dispose()
    return chats


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
    assert data["telegram_outbox"] == [{"sender_id": "tg:42", "method": "send_message",
                                        "params": {"text": AGENT_REPLY},
                                        "created_at": "2011-03-13T07:06:40+00:00"}]
    assert [(a["actor"], a["action"]) for a in data["audit_log"]] == [
        (actor, action) for actor, action, *_ in AUDITED if actor in {"tg:42", "web:x"}]
    json.dumps(data)  # JSON-ready


def test_erase_leaves_no_trace(crm) -> None:
    crm_url, tracker_url = crm
    with session_scope() as s:
        counts = gdpr.erase(session=s, customer_id=12347, tracker_url=tracker_url)
    assert counts["interactions"] == 2 and counts["tracker_events"] == 2
    assert counts["telegram_outbox"] == 1 and counts["audit_log"] == 4
    everything = _dump(crm_url) + _dump(tracker_url)
    for secret in (EMAIL, NAME, MESSAGE, "hello from Ada", "Byron", AGENT_REPLY,
                   "'tg:42'", "'web:x'"):  # no conversation id ties a person to Ada
        assert secret not in everything, secret
    assert "not Ada's" in everything and "bo@example.com" in everything  # others untouched
    assert "not for Ada" in everything and outbox_chats(tracker_url) == [99]
    with session_scope() as s:
        customer = s.get(m.Customer, 12347)
        assert customer.anonymized and customer.email.endswith("@invalid")
        assert s.get(m.Order, "500001").customer_id == 12347  # accounts kept, pseudonymous


def test_erase_keeps_the_audit_log_under_pseudonyms(crm, env) -> None:
    """Who did what, when: every entry stays; Ada's conversations become keyed pseudonyms."""
    env.setenv("CRM_IDENTITY_SECRET", "s3cret")
    _, tracker_url = crm
    with session_scope() as s:
        gdpr.erase(session=s, customer_id=12347, tracker_url=tracker_url)
    with session_scope() as s:
        entries = [(e.actor, e.action, e.entity, e.entity_id, e.at) for e in s.scalars(
            select(m.AuditLog).where(m.AuditLog.action != "gdpr_erase").order_by(m.AuditLog.id))]
    tg, web = gdpr.chat_actor("tg:42"), gdpr.chat_actor("web:x")
    assert tg.startswith("tg:") and web.startswith("web:") and tg != web
    assert entries == [
        (tg, "verify_failed", "orders", "500001", AT),
        (tg, "verified", "customers", "12347", AT),
        (tg, "verify_blocked", "channel_identities", tg, AT),
        (web, "cancel_order", "orders", "500001", AT),
        ("web:other", "verified", "customers", "12348", AT),  # not Ada's: untouched
        ("agent:1", "reply", "escalations", "1", AT),
    ]


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


def test_erase_from_a_telegram_chat_drops_its_waiting_messages(crm) -> None:
    """The live chat's events are redacted, but what waits for Telegram goes: it names Ada."""
    crm_url, tracker_url = crm
    live = "tg:77"
    with session_scope() as s:
        s.add(m.ChannelIdentity(sender_id=live, customer_id=12347))
        s.add(m.AuditLog(actor=live, action="verified", entity="customers", entity_id="12347",
                         details={}, at=AT))
    tracker_store(tracker_url, [(live, e) for e in LIVE_EVENTS])
    telegram_outbox(tracker_url, [(77, f"Thanks {NAME}, that's you.")])
    with session_scope() as s:
        counts = gdpr.erase_own_account(session=s, identity=Identity("customer", 12347),
                                        sender_id=live, tracker_url=tracker_url)
    assert counts["telegram_outbox"] == 2  # tg:42's and the live chat's
    assert outbox_chats(tracker_url) == [99]
    assert len(tracker_rows(tracker_url, live)) == len(LIVE_EVENTS)  # kept, redacted
    everything = _dump(crm_url) + _dump(tracker_url)
    for secret in (EMAIL, NAME, AGENT_REPLY, "'tg:42'"):
        assert secret not in everything, secret
    assert "'tg:77'" not in _dump(crm_url)  # the live chat's own rows keep their id
    with session_scope() as s:
        actors = {e.action: e.actor for e in s.scalars(select(m.AuditLog))}
    assert actors["gdpr_erase"] == gdpr.chat_actor(live)
    assert gdpr.chat_actor(live) in {e for e in actors.values()}


@pytest.mark.skipif(not BOT_PYTHON.exists(), reason="no bot env")
def test_the_outbox_bot_telegram_keeps_is_exported_and_erased(crm, tmp_path) -> None:
    """Against the table as bot/telegram/_outbox.py creates and fills it (bot env)."""
    db = tmp_path / "tracker-with-bot-outbox.db"
    code = ("import sys, sqlalchemy as sa\n"
            "from bot.telegram import TelegramOutbox\n"
            "outbox = TelegramOutbox('555')\n"
            "outbox.bind(sa.create_engine('sqlite:///' + sys.argv[1]))\n"
            "outbox.put(42, 'send_message', {'text': sys.argv[2]})\n"
            "outbox.put(-1001, 'send_message', {'text': 'a group, not Ada'})\n")
    done = subprocess.run([str(BOT_PYTHON), "-c", code, str(db), AGENT_REPLY], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    url = f"sqlite:///{db}"
    with session_scope() as s:
        data = gdpr.export(session=s, customer_id=12347, tracker_url=url)
    assert [(w["sender_id"], w["method"], w["params"]) for w in data["telegram_outbox"]] == [
        ("tg:42", "send_message", {"text": AGENT_REPLY})]
    with session_scope() as s:
        counts = gdpr.erase(session=s, customer_id=12347, tracker_url=url)
    assert counts["telegram_outbox"] == 1 and counts["tracker_events"] == 0
    assert outbox_chats(url) == [-1001] and AGENT_REPLY not in _dump(url)


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
