"""The whole thread: REST message -> Rasa 3.6.21 -> rasa-sdk action server -> CRM -> reply."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from crm_ml.db.session import get_engine
from crm_ml.identity import sign
from tests.support.retail import retail_crm
from tests.support.servers import Stack, assistant

pytestmark = pytest.mark.e2e

SECRET = "e2e-rest-secret"


def signed(user: str) -> dict:
    """Message metadata proving ``user`` (the customer count is for staff only)."""
    return {"auth": {"user": user, "sig": sign(user, SECRET)}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    url = retail_crm(workdir)
    with assistant(workdir, url, extra_env={"CRM_IDENTITY_SECRET": SECRET}) as running:
        yield running


def test_custom_action_answers_from_the_crm(stack: Stack) -> None:
    replies = stack.say("web:e2e-1", "how many customers do we have", metadata=signed("rep:2"))
    assert len(replies) == 1
    answer = replies[0]["text"]
    # The fixture CRM has 4 customers, 3 with a product purchase, in 4 countries.
    assert "4 customers" in answer
    assert "3 of them have bought" in answer
    assert "4 countries" in answer
    assert replies[0]["recipient_id"] == "web:e2e-1"


def test_the_answer_follows_the_database(stack: Stack, tmp_path: Path) -> None:
    """Change the CRM behind the running servers: the next answer changes with it."""
    url = next(p for p in stack.workdir.iterdir() if p.name == "crm.db")
    with get_engine(f"sqlite:///{url}").begin() as conn:
        conn.execute(text("INSERT INTO customers (id, name, email, country, anonymized) "
                          "VALUES (99999, 'New Person', 'new@example.com', 'Malta', 0)"))
    answer = stack.say("web:e2e-2", "how many customers are there",
                       metadata=signed("manager:1"))[0]["text"]
    assert "5 customers" in answer and "5 countries" in answer


def test_plain_rule_reply(stack: Stack) -> None:
    assert "assistant" in stack.say("web:e2e-3", "hello")[0]["text"]
    assert "virtual assistant" in stack.say("web:e2e-3", "are you a bot")[0]["text"]


def test_action_server_down_gives_a_polite_answer(stack: Stack) -> None:
    """With the action server gone, Rasa answers and the conversation goes on."""
    from tests.support.servers import start_actions, stop

    port = int(stack.actions_url.rsplit(":", 1)[1])
    stop(stack.actions)
    replies = stack.say("web:e2e-4", "how many customers do we have")
    assert [r["text"] for r in replies] == [
        "Sorry, I can't reach our customer records right now. Please try again in a few "
        "minutes; nothing you've said is lost."]  # domain's utter_crm_unavailable
    log = stack.workdir / "actions-restarted.log"
    import os

    stack.actions = start_actions(port, {**os.environ, "CRM_DATABASE_URL":
                                         f"sqlite:///{stack.workdir / 'crm.db'}"}, log)
    assert "best sellers" in stack.say("web:e2e-4", "can you recommend something")[0]["text"]
