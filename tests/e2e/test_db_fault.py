"""Fault test: the CRM database becomes unavailable in the middle of a conversation.

The real Rasa server and action server run on a CRM database. A customer asks
where their order is and gets it from the CRM; then the database goes away.
The same question gets the polite ``utter_crm_unavailable`` answer (HTTP 200,
no stack trace, no hang), a question that needs no CRM is still answered, and
the turn survives the event broker failing to write to the CRM. When the
database is back the conversation carries on with real data, and nothing said
during the outage is lost: the tracker store holds every message, and the
event broker, which keeps what it could not write, stores them in the CRM's
interactions afterwards.

Two ways of losing the database:

* SQLite (the default): the file is moved away and a directory takes its path,
  so that it cannot be opened (chmod would not do: the tests may run as root)
  nor created afresh; then it is moved back.
* PostgreSQL on 127.0.0.1:5432 (skipped with the reason when it does not
  answer): every connection to the test's database is terminated and new ones
  are refused (``ALLOW_CONNECTIONS false``); then they are allowed again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from crm_ml import loader
from crm_ml.db import migrate
from crm_ml.db.session import get_engine
from crm_ml.identity import sign
from tests.conftest import PG_ADMIN_URL
from tests.support.retail import retail_frame
from tests.support.servers import Stack, assistant

pytestmark = pytest.mark.e2e

SECRET = "db-fault-secret"
CUSTOMER = "customer:12347"
POLITE = ("Sorry, I can't reach our customer records right now. Please try again in a few "
          "minutes; nothing you've said is lost.")  # domain's utter_crm_unavailable
REAL_ANSWER = "Order 500001 of 4 January 2010"  # customer 12347's latest order
ASK = "where is my order"
HELLO = "hello"
# An outage turn must be answered promptly, not after the client gives up.
MAX_TURN_S = 20.0


def signed(user: str) -> dict:
    return {"auth": {"user": user, "sig": sign(user, SECRET)}}


def load_crm(url: str) -> None:
    migrate.upgrade(url)
    with get_engine(url).begin() as conn:
        loader.load_retail(conn, loader.prepare_retail(retail_frame()), data_hash="fault")
    get_engine(url).dispose()


def timed_say(stack: Stack, sender: str, message: str) -> tuple[list[str], float]:
    """The reply texts (HTTP errors raise) and how long the turn took."""
    t0 = time.monotonic()
    replies = stack.say(sender, message, metadata=signed(CUSTOMER))
    return [r.get("text", "") for r in replies], time.monotonic() - t0


def tracker_user_texts(stack: Stack, sender: str) -> list[str]:
    conn = sqlite3.connect(f"file:{stack.workdir / 'tracker.db'}?mode=ro", uri=True,
                           timeout=30)
    try:
        rows = conn.execute("SELECT json_extract(data, '$.text') FROM events "
                            "WHERE sender_id = ? AND type_name = 'user' ORDER BY id",
                            (sender,)).fetchall()
    finally:
        conn.close()
    return [t for (t,) in rows]


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def conversation_through_an_outage(stack: Stack, sender: str, crm_url: str,
                                   outage: Callable[[], AbstractContextManager[None]]) -> None:
    """The scenario, the same on every database."""
    answer, _ = timed_say(stack, sender, ASK)
    assert any(REAL_ANSWER in a for a in answer), answer

    with outage():
        for message in (ASK, "what is on my invoice"):
            replies, seconds = timed_say(stack, sender, message)
            assert replies == [POLITE], replies
            assert seconds < MAX_TURN_S, f"{message!r} took {seconds:.1f} s"
        replies, _ = timed_say(stack, sender, HELLO)  # no CRM needed: answered as usual
        assert replies and replies != [POLITE] and "Traceback" not in " ".join(replies)
        # Not lost: the tracker store has what was said while the CRM was down.
        assert tracker_user_texts(stack, sender)[-3:] == [ASK, "what is on my invoice", HELLO]

    answer, _ = timed_say(stack, sender, ASK)
    assert any(REAL_ANSWER in a for a in answer), answer
    said = [ASK, ASK, "what is on my invoice", HELLO, ASK]
    assert tracker_user_texts(stack, sender) == said

    # The event broker kept what it could not write and stores it once the CRM is back.
    engine = create_engine(crm_url)

    def stored() -> list[str]:
        with engine.connect() as conn:
            return [t for (t,) in conn.execute(text(
                "SELECT text FROM interactions WHERE sender_id = :s AND direction = 'in' "
                "ORDER BY created_at, id"), {"s": sender})]

    try:
        assert wait_for(lambda: stored() == said, timeout=90), stored()
    finally:
        engine.dispose()
    log = (stack.workdir / "actions.log").read_text()
    assert "the CRM is unavailable" in log  # logged with its stack trace, never shown


# --------------------------------------------------------------------------- SQLite


def test_sqlite_crm_goes_away_mid_conversation(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    url = f"sqlite:///{path}"
    load_crm(url)

    @contextmanager
    def outage() -> Iterator[None]:
        away = tmp_path / "crm.db.away"
        path.rename(away)
        path.mkdir()  # nothing can open the path, nor create a new empty CRM there
        try:
            yield
        finally:
            path.rmdir()
            away.rename(path)

    with assistant(tmp_path, url, extra_env={"CRM_IDENTITY_SECRET": SECRET}) as stack:
        conversation_through_an_outage(stack, "web:fault-sqlite", url, outage)
    with sqlite3.connect(path) as conn:  # the file came back whole
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# --------------------------------------------------------------------------- PostgreSQL


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(sql)


def test_postgresql_crm_goes_away_mid_conversation(pg_url: str, tmp_path: Path) -> None:
    load_crm(pg_url)
    name = pg_url.rsplit("/", 1)[1]

    @contextmanager
    def outage() -> Iterator[None]:
        _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        _admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
        try:
            yield
        finally:
            _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    with assistant(tmp_path, pg_url, extra_env={"CRM_IDENTITY_SECRET": SECRET}) as stack:
        conversation_through_an_outage(stack, "web:fault-postgres", pg_url, outage)
