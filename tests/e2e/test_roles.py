"""Who sees what, through the real Rasa server and action server (REST).

A rep signed as rep:2 gets only rep 2's leads, ranked as lead_scores ranks
them; another rep cannot read them; an anonymous visitor gets no order details
and no sales data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from crm_ml.db import models as m
from crm_ml.db.session import get_engine
from crm_ml.identity import sign
from tests.support.seed import SCORES, seed_leads
from tests.support.servers import Stack, assistant

pytestmark = pytest.mark.e2e

SECRET = "roles-secret"


def signed(user: str) -> dict:
    return {"auth": {"user": user, "sig": sign(user, SECRET)}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("roles")
    url = f"sqlite:///{workdir / 'crm.db'}"
    seed_leads(url, data_hash="roles")
    with assistant(workdir, url, extra_env={"CRM_IDENTITY_SECRET": SECRET}) as running:
        yield running


def _lead_ids(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"Lead (\d+),", text)]


def test_rep_2_gets_only_their_leads_in_score_order(stack: Stack) -> None:
    answer = " ".join(r["text"] for r in stack.say("web:rep2", "who are my hottest leads",
                                                   metadata=signed("rep:2")))
    expected = sorted((lead for lead in SCORES if (lead - 1) % 8 + 1 == 2),
                      key=lambda lead: -SCORES[lead])
    assert _lead_ids(answer) == expected
    assert f"reason for lead {expected[0]}" in answer


def test_manager_sees_the_team(stack: Stack) -> None:
    answer = " ".join(r["text"] for r in stack.say("web:mgr", "show me the hottest leads",
                                                   metadata=signed("manager:1")))
    top5 = sorted(SCORES, key=lambda lead: -SCORES[lead])[:5]
    assert _lead_ids(answer) == top5


def test_another_rep_cannot_read_rep_2s_lead(stack: Stack) -> None:
    answer = " ".join(r["text"] for r in stack.say("web:rep3", "why is lead 2 hot",
                                                   metadata=signed("rep:3")))
    assert "reason for lead 2" not in answer
    assert "Lead 2," not in answer
    own = " ".join(r["text"] for r in stack.say("web:rep2b", "why is lead 2 hot",
                                                metadata=signed("rep:2")))
    assert "reason for lead 2" in own


def test_forged_signature_is_anonymous(stack: Stack) -> None:
    forged = {"auth": {"user": "rep:2", "sig": sign("rep:2", "wrong-secret")}}
    answer = " ".join(r["text"] for r in stack.say("web:forger", "who are my hottest leads",
                                                   metadata=forged))
    assert _lead_ids(answer) == []
    assert "can't share" in answer


def test_customer_count_is_for_staff_only(stack: Stack) -> None:
    """Company-wide figures: visitors and customers get the polite refusal, no number."""
    refusal = "Sorry, I can't share that with you."  # domain's utter_not_allowed
    for sender, metadata in (("web:anon-count", None),
                             ("web:cust-count", signed("customer:12347"))):
        texts = [r["text"] for r in stack.say(sender, "how many customers do we have",
                                              metadata=metadata)]
        assert texts == [refusal], (sender, texts)
        assert not re.search(r"\d", " ".join(texts))
    staff = " ".join(r["text"] for r in stack.say("web:rep-count", "how many customers do we have",
                                                  metadata=signed("rep:2")))
    assert re.search(r"We have \d+ customers in the CRM", staff), staff


def test_anonymous_visitor_gets_no_order_details(stack: Stack) -> None:
    replies = stack.say("web:anon", "where is my order 500001")
    answer = " ".join(r["text"] for r in replies)
    assert "e-mail" in answer  # asked to verify
    for detail in ("35.64", "delivered", "2010"):
        assert detail not in answer
    wrong = stack.say("web:anon", "my email is someone.else@example.com")
    wrong_text = " ".join(r["text"] for r in wrong)
    assert "35.64" not in wrong_text and "delivered" not in wrong_text.lower()


def test_verified_customer_sees_their_order(stack: Stack) -> None:
    with get_engine(f"sqlite:///{stack.workdir / 'crm.db'}").connect() as conn:
        email = conn.execute(select(m.Customer.email).where(m.Customer.id == 12347)).scalar_one()
    stack.say("web:ada", "where is my order 500001")
    answer = " ".join(r["text"] for r in stack.say("web:ada", f"my email is {email}"))
    assert "500001" in answer and "delivered" in answer.lower()
