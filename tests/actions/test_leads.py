"""actions.leads: hot leads, score reasons, status updates, calls and notes, pipeline."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions import crm as actions_crm
from actions import leads
from crm_ml.config import get_settings
from crm_ml.db import models as m
from crm_ml.db.session import get_engine, session_scope
from crm_ml.errors import CRMUnavailable
from crm_ml.identity import sign
from tests.actions.wording import render
from tests.crm_ml.test_sales import seed_crm, template_db  # noqa: F401 - fixture

SECRET = "test-secret"


@pytest.fixture
def crm(env: pytest.MonkeyPatch, template_db: Path, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """A copy of the seeded CRM of tests/crm_ml/test_sales.py, configured as the CRM."""
    path = tmp_path / "crm.db"
    shutil.copy(template_db, path)
    url = f"sqlite:///{path}"
    env.setenv("CRM_DATABASE_URL", url)
    env.setenv("CRM_IDENTITY_SECRET", SECRET)
    get_settings.cache_clear()
    yield url
    get_engine(url).dispose()


def tracker(text: str, intent: str, user: str | None = "rep:2", *, sig: str | None = None,
            message_id: str = "m-1", **entities: str) -> Tracker:
    """A tracker whose latest message is ``text`` from ``user`` (signed), with entities."""
    metadata = {} if user is None else {"auth": {"user": user, "sig": sig or sign(user, SECRET)}}
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.99},
        "entities": [{"entity": "sentiment", "value": "neutral", "confidence": 0.9}]
        + [{"entity": k, "value": v, "extractor": "RegexEntityExtractor"}
           for k, v in entities.items()],
        "metadata": metadata,
        "message_id": message_id,
    }
    return Tracker("web:test", {}, latest, [], False, None, {}, "action_listen")


# Staff answers whose words the tests check: the sentences live in domain/, and
# run() gives them as the text the rep reads (every other response by name).
WORDED = frozenset({
    "utter_ambiguous_lead", "utter_ambiguous_lead_best", "utter_lead_not_scored",
    "utter_lead_status_unchanged", "utter_lead_status_changed", "utter_call_logged",
    "utter_note_logged", "utter_call_already_logged", "utter_note_already_logged",
    "utter_no_leads", "utter_pipeline_status", "utter_pipeline_status_scored",
    "utter_no_churn_score", "utter_no_customer_segment", "utter_segment_empty",
    "utter_no_recommendations", "utter_lead_status_changed_undo", "utter_call_logged_undo",
    "utter_note_logged_undo", "utter_target_not_found", "utter_ask_lead_or_customer",
})


def run(action: Action, t: Tracker) -> tuple[list[dict[str, Any]], list[Any]]:
    """Run an action; return its events and what it said (text, response or image)."""
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, t, {}))
    said: list[Any] = []
    for msg in dispatcher.messages:
        if msg.get("response") in WORDED:
            said.append(render(msg))
        elif msg.get("response"):
            extra = {k: v for k, v in msg.items() if k not in {
                "text", "buttons", "elements", "custom", "template", "response", "image",
                "attachment"}}
            said.append({"response": msg["response"], **extra})
        elif msg.get("image"):
            said.append({"image": msg["image"]})
        else:
            said.append(msg["text"])
    return events, said


@contextmanager
def crm_down(monkeypatch: pytest.MonkeyPatch, *modules: Any) -> Iterator[None]:
    """Every session the actions open fails as an unreachable database does."""

    @contextmanager
    def broken(url: str | None = None) -> Iterator[Any]:
        raise CRMUnavailable("the CRM database is unavailable")
        yield  # pragma: no cover

    for module in modules:
        monkeypatch.setattr(module, "session_scope", broken)
    yield


NOT_ALLOWED = {"response": "utter_not_allowed"}
UNAVAILABLE = {"response": "utter_crm_unavailable"}


# ---------------------------------------------------------------------- hot leads


def test_hot_leads_of_a_rep(crm: str) -> None:
    events, said = run(leads.ActionShowHotLeads(), tracker("who are my hottest leads",
                                                           "ask_hot_leads"))
    assert events == []
    assert said == ["\n".join([
        "Your open leads with a score, best first:",
        "1. Lead 412, Ben Carter: 87%, because: previous campaign succeeded and contacted "
        "3 times this campaign.",
        "2. Lead 416, Olivia Smith: 60%.",
        "3. Lead 410, Amy Bell: 35%, because: age 35 and no previous contact.",
        "4. Lead 415, Olivia Smith: 20%.",
    ])]


def test_hot_leads_of_a_manager_name_the_owners(crm: str) -> None:
    _, said = run(leads.ActionShowHotLeads(), tracker("hot leads", "ask_hot_leads",
                                                      "manager:1"))
    lines = said[0].split("\n")
    assert lines[0] == "Your team's hottest open leads, with their chance to convert:"
    assert lines[1] == ("1. Lead 411, Noah Brown (Chloe Park's): 95%, because: previous "
                        "campaign succeeded.")
    assert len(lines) == 6 and "418" not in said[0]  # rep 9 is not on the team


def test_no_hot_leads(crm: str) -> None:
    _, said = run(leads.ActionShowHotLeads(), tracker("hot leads", "ask_hot_leads", "rep:1"))
    assert said == [{"response": "utter_no_hot_leads", "whose": "your open leads"}]


@pytest.mark.parametrize("user,sig", [(None, None), ("customer:12347", None),
                                      ("agent:1", None), ("rep:2", "0" * 64)])
def test_hot_leads_refused_to_non_reps(crm: str, user: str | None, sig: str | None) -> None:
    """Anonymous, customers, agents and forged signatures get a polite refusal."""
    events, said = run(leads.ActionShowHotLeads(),
                       tracker("who are my hottest leads", "ask_hot_leads", user, sig=sig))
    assert (events, said) == ([], [NOT_ALLOWED])


def test_hot_leads_with_the_crm_down(crm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with crm_down(monkeypatch, actions_crm):
        events, said = run(leads.ActionShowHotLeads(), tracker("hot leads", "ask_hot_leads"))
    assert (events, said) == ([], [UNAVAILABLE])


# ----------------------------------------------------------------- lead reasons


def test_explain_lead_score(crm: str) -> None:
    events, said = run(leads.ActionExplainLeadScore(),
                       tracker("why is lead 412 hot", "explain_lead_score", lead_id="412"))
    assert events == []
    assert said == [
        "Lead 412, Ben Carter (contacted, from X Education), has an 87% chance to convert. "
        "What raises it: previous campaign succeeded; contacted 3 times this campaign. "
        "What lowers it: called on a Monday."]


def test_explain_by_name_with_plain_reasons(crm: str) -> None:
    _, said = run(leads.ActionExplainLeadScore(),
                  tracker("why is amy bell hot", "explain_lead_score", lead_name="amy bell"))
    assert said == ["Lead 410, Amy Bell (new, from Bank Marketing), has a 35% chance to "
                    "convert. The main reasons: age 35; no previous contact."]


def test_explain_an_unscored_lead(crm: str) -> None:
    _, said = run(leads.ActionExplainLeadScore(),
                  tracker("why is lead 414 cold", "explain_lead_score", lead_id="414"))
    assert said == ["Lead 414, Dev Eng (lost, from Bank Marketing), hasn't been scored yet, "
                    "so I can't explain a score."]


@pytest.mark.parametrize("lead_id", ["411", "99999"])
def test_another_reps_lead_is_simply_not_found(crm: str, lead_id: str) -> None:
    """Rep 2 asking about rep 3's lead hears the same as for a lead that does not exist."""
    events, said = run(leads.ActionExplainLeadScore(),
                       tracker(f"why is lead {lead_id} hot", "explain_lead_score",
                               lead_id=lead_id))
    assert (events, said) == ([], [{"response": "utter_lead_not_found",
                                    "lead": f"lead {lead_id}", "whose": "your leads"}])


def test_ambiguous_lead_name(crm: str) -> None:
    _, said = run(leads.ActionExplainLeadScore(),
                  tracker("why is olivia smith hot", "explain_lead_score",
                          lead_name="olivia smith"))
    assert said == ["There are 2 leads called Olivia Smith: lead 416 (qualified) and lead "
                    "415 (new). Which one do you mean? Please say its number, like 'lead 416'."]


def test_explain_asks_for_the_lead(crm: str) -> None:
    _, said = run(leads.ActionExplainLeadScore(), tracker("explain lead score",
                                                          "explain_lead_score"))
    assert said == [{"response": "utter_ask_lead", "example": "why is lead 412 hot"}]
    _, said = run(leads.ActionExplainLeadScore(),
                  tracker("why is lead 4x hot", "explain_lead_score", lead_id="4x"))
    assert said == [{"response": "utter_invalid_lead_id", "lead_id": "4x",
                     "example": "why is lead 412 hot"}]


def test_explain_refused_to_anonymous_before_asking(crm: str) -> None:
    _, said = run(leads.ActionExplainLeadScore(), tracker("explain lead score",
                                                          "explain_lead_score", None))
    assert said == [NOT_ALLOWED]


# ---------------------------------------------------------------- status update


def _status(url: str, lead_id: int) -> str:
    with session_scope(url) as s:
        return s.get(m.Lead, lead_id).status


def _audit(url: str) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    with session_scope(url) as s:
        return [(a.actor, a.action, a.entity_id, a.details)
                for a in s.scalars(select(m.AuditLog).order_by(m.AuditLog.id))]


def test_update_lead_status(crm: str) -> None:
    events, said = run(leads.ActionUpdateLeadStatus(),
                       tracker("mark lead 412 as qualified", "update_lead_status",
                               lead_id="412", lead_status="Qualified"))
    assert events == []
    assert said == ["Done: lead 412, Ben Carter, is now qualified. It was contacted. "
                    'Say "undo" to put it back.']
    assert _status(crm, 412) == "qualified"
    assert _audit(crm) == [("rep:2", "update_lead_status", "412",
                            {"old": "contacted", "new": "qualified"})]


def test_update_to_the_same_status_writes_nothing(crm: str) -> None:
    _, said = run(leads.ActionUpdateLeadStatus(),
                  tracker("lead 412 is contacted", "update_lead_status", lead_id="412",
                          lead_status="contacted"))
    assert said == ["Lead 412, Ben Carter, is already contacted, so I left it as it is."]
    assert _audit(crm) == []


def test_update_another_reps_lead_is_refused_unchanged(crm: str) -> None:
    _, said = run(leads.ActionUpdateLeadStatus(),
                  tracker("mark lead 411 as won", "update_lead_status", lead_id="411",
                          lead_status="won"))
    assert said == [{"response": "utter_lead_not_found", "lead": "lead 411",
                     "whose": "your leads"}]
    assert _status(crm, 411) == "new" and _audit(crm) == []


def test_a_manager_updates_a_team_lead(crm: str) -> None:
    _, said = run(leads.ActionUpdateLeadStatus(),
                  tracker("mark lead 411 as won", "update_lead_status", "manager:1",
                          lead_id="411", lead_status="won"))
    assert said == ['Done: lead 411, Noah Brown, is now won. It was new. Say "undo" to put it '
                    'back.']
    assert _audit(crm) == [("manager:1", "update_lead_status", "411",
                            {"old": "new", "new": "won"})]


def test_update_status_checks_its_entities(crm: str) -> None:
    action = leads.ActionUpdateLeadStatus()
    _, said = run(action, tracker("mark lead 412 as closed", "update_lead_status",
                                  lead_id="412", lead_status="closed"))
    assert said == [{"response": "utter_invalid_lead_status", "lead_status": "closed"}]
    _, said = run(action, tracker("update lead 412", "update_lead_status", lead_id="412"))
    assert said == [{"response": "utter_ask_lead_status", "lead": "lead 412"}]
    _, said = run(action, tracker("we won it", "update_lead_status", lead_status="won"))
    assert said == [{"response": "utter_ask_lead", "example": "mark lead 412 as won"}]
    _, said = run(action, tracker("mark lead 0 as won", "update_lead_status", lead_id="0",
                                  lead_status="won"))
    assert said == [{"response": "utter_invalid_lead_id", "lead_id": "0",
                     "example": "mark lead 412 as won"}]
    assert _audit(crm) == []


def test_update_status_by_name_and_ambiguity(crm: str) -> None:
    action = leads.ActionUpdateLeadStatus()
    _, said = run(action, tracker("mark Ben Carter as won", "update_lead_status",
                                  lead_name="Ben Carter", lead_status="won"))
    assert said == ["Done: lead 412, Ben Carter, is now won. It was contacted. "
                    'Say "undo" to put it back.']
    _, said = run(action, tracker("mark olivia smith as lost", "update_lead_status",
                                  lead_name="olivia smith", lead_status="lost"))
    assert said[0].startswith("There are 2 leads called Olivia Smith")
    assert _status(crm, 415) == "new" and _status(crm, 416) == "qualified"


def test_update_status_refused_to_an_agent(crm: str) -> None:
    _, said = run(leads.ActionUpdateLeadStatus(),
                  tracker("mark lead 412 as won", "update_lead_status", "agent:1",
                          lead_id="412", lead_status="won"))
    assert said == [NOT_ALLOWED] and _status(crm, 412) == "contacted"


def test_update_status_with_the_crm_down(crm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with crm_down(monkeypatch, actions_crm):
        events, said = run(leads.ActionUpdateLeadStatus(),
                           tracker("mark lead 412 as won", "update_lead_status",
                                   lead_id="412", lead_status="won"))
    assert (events, said) == ([], [UNAVAILABLE])


# -------------------------------------------------------------- calls and notes


def test_log_a_call_with_a_lead(crm: str) -> None:
    text = "log a call with lead 412: interested in the premium course"
    events, said = run(leads.ActionLogInteraction(),
                       tracker(text, "log_interaction", lead_id="412", message_id="abc"))
    assert events == []
    assert said == ["Logged a call with lead 412, Ben Carter, with your words as the note. "
                    'Say "undo" to take it back.']
    with session_scope(crm) as s:
        row = s.scalars(select(m.Interaction)).one()
        assert (row.kind, row.lead_id, row.rep_id, row.text, row.channel, row.sender_id,
                row.event_id) == ("call", 412, 2, text, "web", "web:test", "rep-log:abc")
    assert _audit(crm) == [("rep:2", "log_interaction", str(row.id),
                            {"kind": "call", "lead_id": 412, "customer_id": None})]
    # The same message again (a retried action) adds nothing.
    _, said = run(leads.ActionLogInteraction(),
                  tracker(text, "log_interaction", lead_id="412", message_id="abc"))
    assert said == ["I had already logged that message as a call with lead 412, Ben Carter; "
                    "nothing new was added."]
    assert len(_audit(crm)) == 1


def test_log_a_note_on_an_account(crm: str) -> None:
    _, said = run(leads.ActionLogInteraction(),
                  tracker("record that customer 12347 asked for a catalogue",
                          "log_interaction", customer_id="12347"))
    assert said == ["Logged a note on customer 12347, Acme Gifts, with your words as the note. "
                    'Say "undo" to take it back.']
    _, said = run(leads.ActionLogInteraction(),
                  tracker("log a call with customer 12348", "log_interaction",
                          customer_id="12348"))
    assert said == ["I can't find 12348 among your leads or accounts, so I haven't written "
                    "anything. Could you check the number? For example: log a call with lead "
                    "412: no answer."]


def test_log_asks_for_a_lead(crm: str) -> None:
    _, said = run(leads.ActionLogInteraction(), tracker("log call", "log_interaction"))
    assert said == [{"response": "utter_ask_lead",
                     "example": "log a call with lead 412: left a voicemail"}]
    _, said = run(leads.ActionLogInteraction(), tracker("log call with customer abc",
                                                        "log_interaction", customer_id="abc"))
    assert said == [{"response": "utter_invalid_customer_id", "customer_id": "abc",
                     "example": "log a call with customer 12347"}]
    with session_scope(crm) as s:
        assert s.scalars(select(m.Interaction)).all() == []


def test_log_by_a_bare_number_finds_the_reps_lead(crm: str) -> None:
    _, said = run(leads.ActionLogInteraction(),
                  tracker("log call w/ 412 - no answer", "log_interaction"))
    assert said == ["Logged a call with lead 412, Ben Carter, with your words as the note. "
                    'Say "undo" to take it back.']
    _, said = run(leads.ActionLogInteraction(),
                  tracker("log call w/ 411 - no answer", "log_interaction"))
    assert said[0].startswith("I can't find 411 among your leads or accounts")


def test_a_question_is_never_a_write(crm: str) -> None:
    _, said = run(leads.ActionLogInteraction(),
                  tracker("did I call lead 412 already?", "log_interaction", lead_id="412"))
    assert said == [{"response": "utter_question_not_logged"}]
    _, said = run(leads.ActionUpdateLeadStatus(),
                  tracker("is lead 412 won?", "update_lead_status", lead_id="412",
                          lead_status="won"))
    assert said == [{"response": "utter_question_not_changed"}]
    _, said = run(leads.ActionLogInteraction(),
                  tracker("can you log a call with lead 412: no answer?", "log_interaction",
                          lead_id="412"))
    assert said[0].startswith("Logged a call with lead 412")
    assert len(_audit(crm)) == 1


def test_log_refused_to_a_customer(crm: str) -> None:
    _, said = run(leads.ActionLogInteraction(),
                  tracker("log a call with lead 412", "log_interaction", "customer:12347",
                          lead_id="412"))
    assert said == [NOT_ALLOWED]


# --------------------------------------------------------------------- pipeline


def test_pipeline_summary_of_a_rep(crm: str) -> None:
    events, said = run(leads.ActionPipelineSummary(), tracker("how's my pipeline",
                                                              "ask_pipeline_summary"))
    assert events == []
    assert said == [
        "Your pipeline has 6 leads: 2 new, 1 contacted, 1 qualified, 1 won and 1 lost. "
        "The open leads score 51% on average. Win rate so far: 50%, 1 won of 2 closed. "
        "On record, 2 of these leads converted, 33%."]


def test_pipeline_for_one_status_and_for_a_manager(crm: str) -> None:
    _, said = run(leads.ActionPipelineSummary(),
                  tracker("how many of my leads are qualified", "ask_pipeline_summary",
                          lead_status="qualified"))
    assert said == ["You have 1 qualified lead out of 6, with an average score of 60%."]
    _, said = run(leads.ActionPipelineSummary(),
                  tracker("team pipeline", "ask_pipeline_summary", "manager:1"))
    assert said[0].startswith("Your team's pipeline has 8 leads: 4 new, 1 contacted, ")
    _, said = run(leads.ActionPipelineSummary(),
                  tracker("how's my pipeline", "ask_pipeline_summary", "rep:7"))
    assert said == ["You have no leads yet."]


def test_pipeline_refused_and_down(crm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, said = run(leads.ActionPipelineSummary(), tracker("pipeline", "ask_pipeline_summary",
                                                         None))
    assert said == [NOT_ALLOWED]
    with crm_down(monkeypatch, actions_crm):
        _, said = run(leads.ActionPipelineSummary(), tracker("pipeline",
                                                             "ask_pipeline_summary"))
    assert said == [UNAVAILABLE]
