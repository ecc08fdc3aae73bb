"""bot.tracker_store.CRMTrackerStore: Rasa's SQL tracker store without re-reads, same data.

Each test compares what the store hands back with what Rasa's own
SQLTrackerStore reads from the same database file.
"""

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, Dict, List

import pytest
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

from bot.tracker_store import CRMTrackerStore

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet]
slots:
  handoff_outbox:
    type: any
    mappings: [{type: custom}]
responses:
  utter_greet: [{text: hi}]
""")


class Collect(EventBroker):
    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []

    def publish(self, event: Dict[str, Any]) -> None:
        self.events.append(event)


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tracker.db"


def store(db: Path, broker: EventBroker = None) -> CRMTrackerStore:
    return CRMTrackerStore(domain=DOMAIN, dialect="sqlite", db=str(db), event_broker=broker)


def stock(db: Path) -> SQLTrackerStore:
    return SQLTrackerStore(domain=DOMAIN, dialect="sqlite", db=str(db))


def turn(tracker, text: str) -> None:  # noqa: ANN001
    tracker.update(UserUttered(text, {"name": "greet", "confidence": 1.0}))
    tracker.update(ActionExecuted("utter_greet"))
    tracker.update(BotUttered("hi"))
    tracker.update(ActionExecuted("action_listen"))


def texts(tracker) -> List[str]:  # noqa: ANN001
    return [e.text for e in tracker.events if isinstance(e, UserUttered)]


def test_what_it_writes_is_what_rasa_reads_and_each_event_is_published_once(db: Path) -> None:
    broker = Collect()
    ours = store(db, broker)
    tracker = run(ours.get_or_create_tracker("s1"))
    for text in ("one", "two", "three"):
        turn(tracker, text)
        run(ours.save(tracker))
        tracker = run(ours.retrieve("s1"))
    assert texts(tracker) == ["one", "two", "three"]
    assert texts(run(stock(db).retrieve("s1"))) == ["one", "two", "three"]
    users = [e["text"] for e in broker.events if e["event"] == "user"]
    assert users == ["one", "two", "three"]  # no event published twice
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM events WHERE sender_id='s1'")
    assert rows.fetchone()[0] == len(tracker.events)


def test_a_turn_that_failed_half_way_is_read_again_from_the_database(db: Path) -> None:
    ours = store(db)
    tracker = run(ours.get_or_create_tracker("s1"))
    turn(tracker, "saved")
    run(ours.save(tracker))
    tracker.update(UserUttered("never saved"))  # the turn crashed before saving
    again = run(ours.retrieve("s1"))
    assert again is not tracker
    assert texts(again) == ["saved"]


def test_another_writer_and_an_erasure_are_noticed(db: Path) -> None:
    ours, other = store(db), store(db)  # two Rasa processes on one database
    tracker = run(ours.get_or_create_tracker("s1"))
    turn(tracker, "mine")
    run(ours.save(tracker))
    theirs = run(other.retrieve("s1"))
    turn(theirs, "theirs")
    run(other.save(theirs))
    assert texts(run(ours.retrieve("s1"))) == ["mine", "theirs"]
    # GDPR erase deletes the conversation behind the store's back.
    con = sqlite3.connect(db)
    con.execute("DELETE FROM events WHERE sender_id = 's1'")
    con.commit()
    assert run(ours.retrieve("s1")) is None
    assert ours.peek("s1") is None


def test_peek_gives_the_saved_tracker_only(db: Path) -> None:
    ours = store(db)
    assert ours.peek("s1") is None
    tracker = run(ours.get_or_create_tracker("s1"))
    turn(tracker, "hello")
    tracker.update(SlotSet("handoff_outbox", [{"text": "from the agent"}]))
    run(ours.save(tracker))
    assert ours.peek("s1") is tracker
    assert ours.peek("s1").get_slot("handoff_outbox") == [{"text": "from the agent"}]
    tracker.update(UserUttered("unsaved"))
    assert ours.peek("s1") is None


def test_only_so_many_conversations_are_kept(db: Path) -> None:
    ours = CRMTrackerStore(domain=DOMAIN, dialect="sqlite", db=str(db), keep=2)
    for sender in ("a", "b", "c"):
        tracker = run(ours.get_or_create_tracker(sender))
        turn(tracker, sender)
        run(ours.save(tracker))
    assert ours.peek("a") is None and ours.peek("c") is not None
    assert texts(run(ours.retrieve("a"))) == ["a"]  # read from the database instead


def start_session(tracker) -> None:  # noqa: ANN001
    from rasa.shared.core.events import SessionStarted

    tracker.update(ActionExecuted("action_session_start"))
    tracker.update(SessionStarted())
    tracker.update(ActionExecuted("action_listen"))


def test_a_first_session_is_kept_a_later_one_is_read_as_rasa_reads_it(db: Path) -> None:
    ours = store(db)
    tracker = run(ours.get_or_create_tracker("s1", append_action_listen=False))  # as Rasa
    start_session(tracker)
    turn(tracker, "first")
    run(ours.save(tracker))
    # The first session is the whole conversation: what Rasa would read back.
    assert ours.peek("s1") is tracker
    assert run(ours.retrieve("s1")) is tracker
    assert texts(run(stock(db).retrieve("s1"))) == ["first"]
    # A new session after it: Rasa reads only the new one, and so does this store.
    start_session(tracker)
    turn(tracker, "second")
    run(ours.save(tracker))
    assert ours.peek("s1") is None
    again = run(ours.retrieve("s1"))
    assert texts(again) == texts(run(stock(db).retrieve("s1"))) == ["second"]
