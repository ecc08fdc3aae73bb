"""GDPR erasure from the chat, through the real Rasa server and action server.

A customer asks to delete their account, proves who they are (order number and
e-mail), says yes, and is erased at once by the code of ``crm-ml gdpr erase``.
Rasa holds that very conversation in memory while the action erases it and
saves it afterwards; the checks below make sure that saving does not bring the
conversation back: neither the CRM nor the tracker store holds the customer's
e-mail, name or messages afterwards, the interactions the event broker writes
for the last turn are not linked to the customer, and the conversation goes on
as an anonymous one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.retail import retail_crm
from tests.support.servers import API_TOKEN, Stack, assistant, eventually
from tests.trust.stack import sqlite_rows

pytestmark = pytest.mark.e2e

SECRET = "erasure-secret"
SENDER = "web:erase-me-7f3a"
CUSTOMER, ORDER = 12347, "500001"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("erasure")
    url = retail_crm(workdir)
    with assistant(workdir, url, extra_env={"CRM_IDENTITY_SECRET": SECRET}) as running:
        yield running


rows = sqlite_rows


def dump(path: Path) -> str:
    """Every row of every table of a SQLite file, as text."""
    tables = [t for (t,) in rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    return "\n".join(repr(r) for t in tables for r in rows(path, f'SELECT * FROM "{t}"'))


def texts(replies: list[dict]) -> str:
    return " ".join(r.get("text", "") for r in replies)


def test_a_verified_customer_erases_their_account_from_the_chat(stack: Stack) -> None:
    crm, tracker = stack.workdir / "crm.db", stack.workdir / "tracker.db"
    [(name, email)] = rows(crm, "SELECT name, email FROM customers WHERE id = ?", (CUSTOMER,))
    first = f"my name is {name} and i want to delete my account"
    details = f"order {ORDER}, my email is {email}"

    asked = texts(stack.say(SENDER, first))
    assert "I need its number and the e-mail address" in asked
    confirm = texts(stack.say(SENDER, details))
    assert "those details match" in confirm and "Shall I go ahead?" in confirm
    assert eventually(lambda: rows(crm, "SELECT 1 FROM interactions WHERE sender_id = ? AND "
                                      "customer_id = ?", (SENDER, CUSTOMER)))
    done = stack.say(SENDER, "yes")
    assert texts(done).startswith("Done: I've deleted your account's personal details")

    # The broker writes the last turn (the "yes" and the answer) after the erasure.
    last = eventually(lambda: rows(crm, "SELECT direction, text, customer_id FROM interactions "
                                      "WHERE sender_id = ? ORDER BY id", (SENDER,)))
    assert [(d, t) for d, t, _ in last] == [("in", "yes"), ("out", texts(done))]
    assert all(customer is None for *_, customer in last)  # not linked to the erased row

    everything = dump(crm) + dump(tracker)
    for secret in (email, name, first, details):
        assert secret not in everything, f"{secret!r} survived the erasure"
    [(anonymized, new_email)] = rows(crm, "SELECT anonymized, email FROM customers "
                                          "WHERE id = ?", (CUSTOMER,))
    assert anonymized and new_email.endswith("@invalid")
    assert rows(crm, "SELECT customer_id FROM orders WHERE id = ?", (ORDER,)) == [(CUSTOMER,)]
    assert rows(crm, "SELECT * FROM channel_identities") == []

    # Audited: who (the channel, not the chat's id), what, when.
    [(actor, entity_id, details_json, at)] = rows(
        crm, "SELECT actor, entity_id, details, at FROM audit_log WHERE action = 'gdpr_erase'")
    expected = "web:" + hmac.new(SECRET.encode(), SENDER.encode(),
                                 hashlib.sha256).hexdigest()[:16]
    assert (actor, entity_id, at is not None) == (expected, str(CUSTOMER), True)
    assert json.loads(details_json)["from_chat"] is True
    # The entries before it (the verification) stay, under the same pseudonym.
    assert rows(crm, "SELECT action FROM audit_log WHERE actor = ? ORDER BY id",
                (expected,)) == [("verified",), ("gdpr_erase",)]
    assert rows(crm, "SELECT action FROM audit_log WHERE actor = ?", (SENDER,)) == []

    # The tracker store kept the erased turns only as empty shells: Rasa reads them.
    stored = rows(tracker, "SELECT type_name, data FROM events WHERE sender_id = ? "
                           "ORDER BY id", (SENDER,))
    user_texts = [json.loads(d).get("text") for t, d in stored if t == "user"]
    assert user_texts == [None, None, "yes"]
    full = httpx.get(f"{stack.rasa_url}/conversations/{SENDER}/tracker",
                     params={"token": API_TOKEN, "include_events": "ALL"}, timeout=30)
    assert full.status_code == 200
    assert full.json()["slots"]["verified_customer"] is None
    assert email not in full.text and name not in full.text

    # The conversation no longer acts as the customer, and later turns stay clean.
    again = texts(stack.say(SENDER, "where is my order"))
    assert "I need its number and the e-mail address" in again
    assert email not in dump(tracker) and name not in dump(tracker)
    assert len(rows(tracker, "SELECT 1 FROM events WHERE sender_id = ? AND type_name = "
                             "'session_started'", (SENDER,))) == 2
    for log in ("rasa.log", "actions.log"):
        assert "Traceback" not in (stack.workdir / log).read_text(), log


def test_a_signed_in_customer_erases_their_account(stack: Stack) -> None:
    crm, sender, customer = stack.workdir / "crm.db", "web:erase-signed-2b9c", 12348
    user = f"customer:{customer}"
    signed = {"auth": {"user": user, "sig": hmac.new(SECRET.encode(), user.encode(),
                                                     hashlib.sha256).hexdigest()}}
    [(email,)] = rows(crm, "SELECT email FROM customers WHERE id = ?", (customer,))
    assert "Shall I go ahead?" in texts(stack.say(sender, "please delete my account",
                                                  metadata=signed))
    done = texts(stack.say(sender, "yes", metadata=signed))
    assert done.startswith("Done: I've deleted")
    assert rows(crm, "SELECT anonymized FROM customers WHERE id = ?", (customer,)) == [(1,)]
    assert email not in dump(crm) + dump(stack.workdir / "tracker.db")
    last = eventually(lambda: len(rows(crm, "SELECT 1 FROM interactions WHERE sender_id = ?",
                                     (sender,))) >= 2)
    assert last
    assert rows(crm, "SELECT text, customer_id FROM interactions WHERE sender_id = ? "
                     "AND direction = 'in'", (sender,)) == [("yes", None)]
