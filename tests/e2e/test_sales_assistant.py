"""The sales assistant's part B through the real Rasa server and action server (REST).

On a copy of the loaded CRM (var/crm.db, ``make load``): a rep gets a customer's 360
and orders, disambiguation by name, follow-ups that are tasks (not logged calls),
shorthand ids resolved against their own leads, and "undo"; "send an email" writes
nothing; a manager sees the team's accounts; a customer gets the refusal.
"""

from __future__ import annotations

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

SECRET = "sales-secret"
REFUSAL = "Sorry, I can't share that with you."  # domain's utter_not_allowed


def signed(user: str) -> dict:
    return {"auth": {"user": user, "sig": sign(user, SECRET)}}


@pytest.fixture(scope="module")
def crm_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crm_snapshot(tmp_path_factory.mktemp("sales"))


@pytest.fixture(scope="module")
def stack(crm_copy: Path) -> Iterator[Stack]:
    with assistant(crm_copy.parent, f"sqlite:///{crm_copy}",
                   extra_env={"CRM_IDENTITY_SECRET": SECRET, "CRM_TODAY": ""}) as running:
        yield running


def _replies(stack: Stack, sender: str, text: str, user: str | None) -> list[dict]:
    return stack.say(sender, text, metadata=signed(user) if user else None)


def _say(stack: Stack, sender: str, text: str, user: str | None) -> str:
    return "\n".join(r.get("text") or "" for r in _replies(stack, sender, text, user))


def _count(db: Path, sql: str, *args: object) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


def _name(db: Path, table: str, row_id: int) -> str:
    """A synthetic name as loaded (crm_ml.loader.synthetic_name), read from the copy."""
    with sqlite3.connect(db) as conn:
        return str(conn.execute(f"SELECT name FROM {table} WHERE id = ?", (row_id,)
                                ).fetchone()[0])


def test_rep_gets_the_360_and_orders_of_their_customer(stack: Stack, crm_copy: Path) -> None:
    name = _name(crm_copy, "customers", 12347)
    answer = _say(stack, "web:s-360", "tell me about customer 12347", "rep:2")
    assert answer.startswith(f"Customer 12347, {name}, from Iceland"), answer
    assert "Churn risk" in answer and "Value so far £4,922 over 8 orders" in answer
    assert "Last orders: 581180 of" in answer
    answer = _say(stack, "web:s-360", "what did 12347 order last?", "rep:2")
    assert answer.startswith(f"The last order of customer 12347, {name}, is order "
                             "581180"), answer
    answer = _say(stack, "web:s-360", "tell me about customer 12348", "rep:2")
    assert "can't find customer 12348 among your accounts" in answer, answer


def test_a_name_with_several_customers_offers_buttons(stack: Stack, crm_copy: Path) -> None:
    with sqlite3.connect(crm_copy) as conn:  # a name two or more of rep 2's customers share
        name, ids = conn.execute(
            "SELECT c.name, group_concat(c.id) FROM customers c JOIN accounts a "
            "ON a.customer_id = c.id WHERE a.rep_id = 2 GROUP BY c.name HAVING count(*) > 1 "
            "ORDER BY c.name LIMIT 1").fetchone()
    replies = _replies(stack, "web:s-name", f"who is {name}", "rep:2")
    assert f"of your customers are called {name}" in replies[0]["text"], replies
    payloads = [b["payload"] for b in replies[0].get("buttons", [])]
    first = min(int(i) for i in ids.split(","))
    assert f'/ask_customer_360{{"customer_id":"{first}"}}' in payloads


def test_send_an_email_writes_nothing(stack: Stack, crm_copy: Path) -> None:
    before = _count(crm_copy, "SELECT count(*) FROM interactions WHERE kind IN ('call','note')")
    answer = _say(stack, "web:s-mail", "send an email to lead 41562", "rep:2")
    assert answer.startswith("I can't send e-mails, and I haven't written anything"), answer
    assert _count(crm_copy, "SELECT count(*) FROM interactions WHERE kind IN ('call','note')"
                  ) == before


def test_a_reminder_is_a_task_listed_closed_and_undone(stack: Stack, crm_copy: Path) -> None:
    calls = "SELECT count(*) FROM interactions WHERE lead_id = 49498"
    before = _count(crm_copy, calls)
    answer = _say(stack, "web:s-task", "remind me to call lead 49498 tomorrow at 10", "rep:2")
    assert answer.startswith("I've created a follow-up task to call lead 49498, due "), answer
    assert "at 10:00" in answer and "not a logged call" in answer
    assert _count(crm_copy, calls) == before
    assert _count(crm_copy, "SELECT count(*) FROM tasks WHERE lead_id = 49498 AND "
                  "status = 'open'") == 1
    # "tomorrow" is the rep's real tomorrow (not the demo data's as-of date), which is in
    # "this week" except on a Sunday: ask for all open follow-ups
    answer = _say(stack, "web:s-task", "what follow-ups do I have", "rep:2")
    assert "call lead 49498" in answer, answer
    answer = _say(stack, "web:s-task", "done with the call to 49498", "rep:2")
    assert answer.startswith("Marked done: your follow-up to call lead 49498"), answer
    answer = _say(stack, "web:s-task", "undo", "rep:2")
    assert answer.startswith("Undone: marking done the follow-up"), answer
    assert _count(crm_copy, "SELECT count(*) FROM tasks WHERE lead_id = 49498 AND "
                  "status = 'open'") == 1
    assert _count(crm_copy, "SELECT count(*) FROM audit_log WHERE action = 'undo'") >= 1


def test_shorthand_call_resolves_to_the_reps_lead_and_undo_removes_it(
        stack: Stack, crm_copy: Path) -> None:
    calls = "SELECT count(*) FROM interactions WHERE lead_id = 48122"
    before = _count(crm_copy, calls)
    answer = _say(stack, "web:s-short", "log call w/ 48122 - no answer, try again monday",
                  "rep:2")
    lead = _name(crm_copy, "leads", 48122)
    assert answer.startswith(f"Logged a call with lead 48122, {lead}"), answer
    assert _count(crm_copy, calls) == before + 1
    answer = _say(stack, "web:s-short", "undo", "rep:2")
    assert answer.startswith("Undone: the call logged on lead 48122"), answer
    assert _count(crm_copy, calls) == before
    answer = _say(stack, "web:s-short", "mark 48122 won", "rep:2")
    assert answer.startswith(f"Done: lead 48122, {lead}, is now won."), answer
    answer = _say(stack, "web:s-short", "undo", "rep:2")
    assert answer.startswith("Undone: lead 48122 set to won"), answer
    assert _count(crm_copy, "SELECT count(*) FROM leads WHERE id = 48122 AND status = 'new'"
                  ) == 1


def test_another_reps_number_is_not_written(stack: Stack, crm_copy: Path) -> None:
    written = "SELECT count(*) FROM interactions WHERE kind IN ('call', 'note')"
    before = _count(crm_copy, written)
    answer = _say(stack, "web:s-other", "log call w/ 48122 - no answer", "rep:3")
    assert "haven't written anything" in answer, answer
    assert _count(crm_copy, written) == before


def test_manager_sees_the_teams_customer(stack: Stack) -> None:  # rep 2 is in the team
    answer = _say(stack, "web:s-mgr", "tell me about customer 12347", "manager:1")
    assert answer.startswith("Customer 12347, "), answer
    assert "account owner" in answer


@pytest.mark.parametrize("user", ["customer:12347", None])
def test_customers_get_none_of_it(stack: Stack, user: str | None, crm_copy: Path) -> None:
    sender = f"web:s-{user or 'anon'}".replace(":", "-")
    before = _count(crm_copy, "SELECT count(*) FROM tasks")
    for text in ("tell me about customer 12347", "remind me to call lead 49498 tomorrow",
                 "undo"):
        answer = _say(stack, sender, text, user)
        assert "Iceland" not in answer and "follow-up task" not in answer, (text, answer)
    assert _count(crm_copy, "SELECT count(*) FROM tasks") == before


def test_hot_lead_lists_honour_count_and_source(stack: Stack) -> None:
    answer = _say(stack, "web:s-hot", "who are my 3 hottest leads", "rep:2")
    lines = answer.split("\n")
    assert lines[0].startswith("Your hottest open leads"), answer
    assert [line[:3] for line in lines[1:]] == ["1. ", "2. ", "3. "], answer
    answer = _say(stack, "web:s-hot", "my hottest leads from bank marketing", "rep:2")
    assert "from Bank Marketing" in answer.split("\n")[0], answer


def test_churn_list_and_never_ordered_are_separate(stack: Stack) -> None:
    answer = _say(stack, "web:s-churn", "which of my accounts may churn", "rep:2")
    assert "no product purchase on record" not in answer, answer
    answer = _say(stack, "web:s-churn", "accounts that never ordered", "rep:2")
    assert "never placed an order" in answer or "Every one of your accounts" in answer, answer
