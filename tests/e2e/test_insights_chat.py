"""The papers' remaining models in chat, through the real Rasa server and action server (REST).

On a copy of the loaded and trained CRM (``make load train-models``): a rep asks for
unusual orders among their accounts, a customer's lifetime value and the next best
action for a lead and a customer; a manager asks for the team's unusual orders; a
customer gets the refusal. Every figure said is checked against the rows the models
wrote in the copy.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from actions.speech import say_money, say_percent
from crm_ml.config import PROJECT_ROOT
from crm_ml.identity import sign
from tests.support.servers import Stack, assistant, crm_snapshot

CRM = PROJECT_ROOT / "var" / "crm.db"


def _trained() -> bool:
    if not CRM.is_file():
        return False
    with sqlite3.connect(CRM) as conn:
        try:
            return all(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (
                "customer_values", "unusual_activity", "next_best_actions", "feedback_topics"))
        except sqlite3.OperationalError:
            return False


pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not _trained(), reason="var/crm.db has no lifetime values, "
                                 "unusual orders, next best actions or topics "
                                 "(make load train-models)")]

SECRET = "insights-secret"
REFUSAL = "Sorry, I can't share that with you."  # domain's utter_not_allowed


@pytest.fixture(scope="module")
def crm_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crm_snapshot(tmp_path_factory.mktemp("insights"))


@pytest.fixture(scope="module")
def stack(crm_copy: Path) -> Iterator[Stack]:
    with assistant(crm_copy.parent, f"sqlite:///{crm_copy}",
                   extra_env={"CRM_IDENTITY_SECRET": SECRET, "CRM_TODAY": ""}) as running:
        yield running


def _say(stack: Stack, sender: str, text: str, user: str) -> str:
    metadata = {"auth": {"user": user, "sig": sign(user, SECRET)}}
    return "\n".join(r.get("text") or "" for r in stack.say(sender, text, metadata=metadata))


def _one(db: Path, sql: str, *args: object) -> tuple:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchone()


def test_unusual_orders_of_a_reps_accounts(stack: Stack, crm_copy: Path) -> None:
    (count,) = _one(crm_copy, "SELECT count(*) FROM unusual_activity u JOIN accounts a ON "
                    "a.customer_id = u.customer_id WHERE a.rep_id = 2 AND u.scope = 'order' "
                    "AND u.occurred_at >= '2011-11-01' AND u.occurred_at < '2011-12-01'")
    answer = _say(stack, "web:i-odd", "any unusual orders in november 2011?", "rep:2")
    if count:
        shown = min(count, 5)
        assert answer.startswith(f"{shown} unusual order"), answer
        assert "among your accounts' orders in November 2011" in answer
        (invoice,) = _one(crm_copy, "SELECT u.invoice FROM unusual_activity u JOIN accounts a "
                          "ON a.customer_id = u.customer_id WHERE a.rep_id = 2 AND "
                          "u.scope = 'order' AND u.occurred_at >= '2011-11-01' AND "
                          "u.occurred_at < '2011-12-01' ORDER BY u.score DESC LIMIT 1")
        assert f"order {invoice} of" in answer
    else:
        assert answer.startswith("No unusual orders among your accounts' orders"), answer
    assert "As of 9 December 2011" in answer


def test_a_managers_unusual_orders_cover_the_team(stack: Stack, crm_copy: Path) -> None:
    answer = _say(stack, "web:i-odd-m", "were there any suspicious orders last month",
                  "manager:1")
    assert "unusual order" in answer and "among the orders in November 2011" in answer, answer


def test_lifetime_value_is_the_stored_prediction(stack: Stack, crm_copy: Path) -> None:
    spend_6m, alive = _one(crm_copy, "SELECT spend_6m, prob_alive FROM customer_values "
                           "WHERE customer_id = 12347")
    answer = _say(stack, "web:i-ltv", "whats the lifetime value of customer 12347", "rep:2")
    assert answer.startswith("Customer 12347, ") and " so far over " in answer, answer
    assert f"Predicted: {say_money(spend_6m)} in the next 6 months" in answer, answer
    assert f"{say_percent(alive)} likely still active" in answer


def test_next_best_action_for_a_lead_and_a_customer(stack: Stack, crm_copy: Path) -> None:
    lead, rate = _one(crm_copy, "SELECT n.lead_id, n.expected_rate FROM next_best_actions n "
                      "JOIN leads l ON l.id = n.lead_id WHERE l.rep_id = 2 ORDER BY n.lead_id "
                      "LIMIT 1")
    answer = _say(stack, "web:i-nba", f"what should I do next with lead {lead}", "rep:2")
    assert answer.startswith(f"Next best action for lead {lead}, "), answer
    assert "Call on their" in answer and f"a yes: {say_percent(rate)}" in answer
    answer = _say(stack, "web:i-nba", "next best action for customer 12347", "rep:2")
    assert answer.startswith("Next best action for customer 12347, "), answer


def test_a_manager_asks_what_customers_complain_about(stack: Stack, crm_copy: Path) -> None:
    (label,) = _one(crm_copy, "SELECT label FROM feedback_topics ORDER BY size DESC LIMIT 1")
    answer = _say(stack, "web:i-topics", "what are customers complaining about this month?",
                  "manager:1")
    # the demo CRM holds no complaint written in December 2011: said, then all topics
    assert answer.startswith("No customer complaints were written in this month"), answer
    assert f"- {label}: " in answer and "As of 9 December 2011" in answer
    answer = _say(stack, "web:i-topics", "what did customers complain about in february 2015",
                  "manager:1")
    assert answer.startswith("What customers complained about in February 2015"), answer
    assert "on the period before" in answer or "new this period" in answer


@pytest.mark.parametrize("text", ["any unusual orders this week?",
                                  "what are customers complaining about",
                                  "whats the lifetime value of customer 12347",
                                  "next best action for customer 12347"])
def test_customers_are_refused(stack: Stack, text: str) -> None:
    assert _say(stack, "web:i-cust", text, "customer:12347") == REFUSAL
