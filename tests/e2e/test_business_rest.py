"""Questions about the business through the real Rasa server and action server (REST).

On a copy of the loaded CRM (var/crm.db, ``make load``): a rep and a manager get
figures computed from the orders, with the as-of date stated; an unknown country is
asked back; a customer and an anonymous visitor get the refusal and no figure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from crm_ml.config import PROJECT_ROOT
from crm_ml.identity import sign
from tests.support.servers import Stack, assistant, crm_snapshot

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not (PROJECT_ROOT / "var" / "crm.db").is_file(),
                                 reason="var/crm.db not loaded (make load)")]

SECRET = "business-secret"
AS_OF = "As of 9 December 2011, the last day of the loaded data."
REFUSAL = "Sorry, I can't share that with you."  # domain's utter_not_allowed


def signed(user: str) -> dict:
    return {"auth": {"user": user, "sig": sign(user, SECRET)}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    copy = crm_snapshot(tmp_path_factory.mktemp("business"))
    with assistant(copy.parent, f"sqlite:///{copy}",
                   extra_env={"CRM_IDENTITY_SECRET": SECRET, "CRM_TODAY": ""}) as running:
        yield running


def _say(stack: Stack, sender: str, text: str, user: str | None) -> str:
    replies = stack.say(sender, text, metadata=signed(user) if user else None)
    return "\n".join(r.get("text") or "" for r in replies)


def test_rep_asks_for_revenue_and_top_products(stack: Stack) -> None:
    answer = _say(stack, "web:biz-rep", "what was our revenue last month", "rep:2")
    assert "Revenue in November 2011: £1.12 million from 2,642 orders" in answer, answer
    assert AS_OF in answer
    answer = _say(stack, "web:biz-rep", "top 5 products in Germany in 2011", "rep:2")
    assert "Top 5 products by net revenue in Germany in 2011:" in answer, answer
    assert "1. Regency cakestand 3 tier (code 22423)" in answer
    answer = _say(stack, "web:biz-rep", "which customers haven't ordered in 6 months",
                  "rep:2")
    assert re.search(r"\d+ customers of your accounts ordered before but not since", answer), \
        answer


def test_unknown_country_is_asked_back(stack: Stack) -> None:
    answer = _say(stack, "web:biz-rep2", "top products in narnia", "rep:2")
    assert answer.startswith('Which country? I have no orders from "narnia".'), answer
    assert "United Kingdom" in answer and "Germany" in answer


def test_manager_asks_by_rep_and_for_the_teams_customers(stack: Stack) -> None:
    answer = _say(stack, "web:biz-mgr", "revenue by sales rep last month", "manager:1")
    assert "By sales rep, largest first" in answer, answer
    assert "Farid Haddad" in answer
    answer = _say(stack, "web:biz-mgr", "top customers by spend", "manager:1")
    assert "of your team's accounts by net spend" in answer, answer


@pytest.mark.parametrize("user", ["customer:12347", None])
def test_customers_get_no_business_figures(stack: Stack, user: str | None) -> None:
    sender = f"web:biz-{user or 'anon'}".replace(":", "-")
    for text in ("what was your revenue last month", "top customers by spend",
                 "which customers haven't ordered in 6 months"):
        answer = _say(stack, sender, text, user)
        assert answer == REFUSAL, (text, answer)
        assert "£" not in answer


def test_the_ask_back_is_answered_in_the_next_message(stack: Stack) -> None:
    answer = _say(stack, "web:biz-follow", "top 3 products in narnia", "rep:2")
    assert answer.startswith("Which country?"), answer
    answer = _say(stack, "web:biz-follow", "Germany", "rep:2")
    assert answer.startswith("Top 3 products by net revenue in Germany"), answer
