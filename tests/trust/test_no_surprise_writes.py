"""No write without a stated target: 50 rep messages that mention a lead or a customer
without asking for a write leave every CRM row a rep could change as it was.

Through the real Rasa server and action server (REST) on a copy of the loaded CRM
(var/crm.db): the leads' statuses, the logged calls and notes, the follow-up tasks,
the undo entries and the tickets are hashed before and after.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_ml.config import PROJECT_ROOT
from crm_ml.identity import sign
from tests.support.servers import Stack, assistant, crm_snapshot

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not (PROJECT_ROOT / "var" / "crm.db").is_file(),
                                 reason="var/crm.db not loaded (make load)")]

SECRET = "trust-writes-secret"

#: Rep 2's leads (41562, 48122, 49498) and accounts (12347, 12355), asked about only.
MESSAGES = [
    "why is lead 48122 hot", "tell me about customer 12347", "who is customer 12355",
    "what did 12347 order last?", "orders of customer 12347", "last order of 12355",
    "whats the lifetime value of 12347", "how likely is 12347 to churn",
    "what segment is customer 12347 in", "what should I offer 12347",
    "is lead 49498 worth calling", "what's the score of lead 41562",
    "explain lead 48122's score", "who are my hottest leads", "top 3 leads",
    "hot leads from bank marketing", "how's my pipeline", "which of my accounts may churn",
    "accounts that never ordered", "what follow-ups do I have this week",
    "did I call lead 48122 already?", "when did we last talk to customer 12347",
    "send an email to lead 41562", "email customer 12347 the catalogue",
    "text lead 49498 for me", "can you message George Rossi",
    "lead 48122?", "48122", "12347", "customer 12347", "lead 49498 status",
    "what is the status of lead 48122", "is 48122 a lead or a customer",
    "does customer 12347 have open tickets", "who owns customer 12355",
    "how much has 12347 spent with us", "what did customer 12355 buy",
    "tell me about George Rossi", "who is James Rossi", "show me lead 41562",
    "revenue of customer 12347", "forecast for next quarter",
    "should I call lead 48122 today?", "what do you know about 49498",
    "is customer 12347 happy", "undo", "what can you do for lead 48122",
    "thanks, that's all about 12347", "hi, about lead 41562", "bye",
]
TABLES = {
    "leads": "SELECT id, status FROM leads ORDER BY id",
    "calls and notes": "SELECT id, kind, lead_id, customer_id, text FROM interactions "
                       "WHERE kind IN ('call', 'note') ORDER BY id",
    "tasks": "SELECT id, status, lead_id, customer_id, due_at FROM tasks ORDER BY id",
    "undo entries": "SELECT id, action, undone_at FROM undo_entries ORDER BY id",
    "tickets": "SELECT id, status, customer_id FROM tickets ORDER BY id",
}


def _fingerprint(db: Path) -> dict[str, tuple[int, str]]:
    out = {}
    with sqlite3.connect(db) as conn:
        for name, sql in TABLES.items():
            rows = conn.execute(sql).fetchall()
            out[name] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return out


@pytest.fixture(scope="module")
def crm_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crm_snapshot(tmp_path_factory.mktemp("nowrites"))


@pytest.fixture(scope="module")
def stack(crm_copy: Path) -> Iterator[Stack]:
    with assistant(crm_copy.parent, f"sqlite:///{crm_copy}",
                   extra_env={"CRM_IDENTITY_SECRET": SECRET, "CRM_TODAY": ""}) as running:
        yield running


def test_fifty_messages_without_a_write_request_change_no_row(stack: Stack,
                                                               crm_copy: Path) -> None:
    assert len(MESSAGES) == 50
    before = _fingerprint(crm_copy)
    metadata = {"auth": {"user": "rep:2", "sig": sign("rep:2", SECRET)}}
    answered = 0
    wrote = []
    for n, text in enumerate(MESSAGES):
        replies = stack.say(f"web:nowrite-{n}", text, metadata=metadata)
        answered += bool(replies)
        said = " ".join(r.get("text") or "" for r in replies)
        if any(w in said for w in ("Logged a", "created a follow-up", "Done: lead",
                                   "Marked done")):
            wrote.append((text, said))
    after = _fingerprint(crm_copy)
    assert wrote == []
    assert after == before
    assert answered == len(MESSAGES)
