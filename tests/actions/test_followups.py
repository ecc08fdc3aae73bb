"""actions.followups: reminders as tasks (never logged calls), their list and completion,
undo, and the refusal to customers; on the seeded CRM of tests/crm_ml/test_sales.py."""

from __future__ import annotations

from sqlalchemy import func, select

from actions import followups
from crm_ml.db import models as m
from crm_ml.db.models_sales import Task
from crm_ml.db.session import session_scope
from tests.actions.test_leads import crm, run, tracker  # noqa: F401 - fixture
from tests.crm_ml.test_sales import template_db  # noqa: F401 - fixture

NOT_ALLOWED = {"response": "utter_not_allowed"}


def test_a_reminder_creates_a_task_not_a_call(crm: str) -> None:  # noqa: F811
    _, said = run(followups.ActionCreateFollowup(),
                  tracker("remind me to call lead 412 tomorrow at 10", "create_followup",
                          lead_id="412"))
    assert said[0]["response"] == "utter_followup_created"
    assert (said[0]["kind"], said[0]["about"]) == ("call", "lead 412")
    assert said[0]["when"].endswith("at 10:00")
    with session_scope(crm) as s:
        assert s.scalar(select(func.count()).select_from(m.Interaction)) == 0
        assert s.scalar(select(Task.lead_id)) == 412


def test_a_reminder_without_a_target_asks_first(crm: str) -> None:  # noqa: F811
    _, said = run(followups.ActionCreateFollowup(),
                  tracker("remind me to call tomorrow", "create_followup"))
    assert said == [{"response": "utter_ask_followup_target"}]
    _, said = run(followups.ActionCreateFollowup(),
                  tracker("remind me to call 411 tomorrow", "create_followup"))
    assert said[0].startswith("I can't find 411 among your leads or accounts, so I haven't "
                              "written anything.")
    with session_scope(crm) as s:
        assert s.scalar(select(func.count()).select_from(Task)) == 0


def test_list_complete_and_undo(crm: str) -> None:  # noqa: F811
    run(followups.ActionCreateFollowup(),
        tracker("remind me to call customer 12347 today at 5pm", "create_followup",
                customer_id="12347"))
    _, said = run(followups.ActionListFollowups(),
                  tracker("what follow-ups do I have this week", "list_followups"))
    assert said[0].startswith("Your follow-ups (this week):\n1. ") and "customer 12347" in said[0]
    _, said = run(followups.ActionListFollowups(), tracker("show my tasks", "list_followups"))
    assert said[0].startswith("Your follow-ups (open):\n1. ")
    _, said = run(followups.ActionCompleteFollowup(),
                  tracker("done with the call to 12347", "complete_followup",
                          customer_id="12347"))
    assert said == [{"response": "utter_followup_done", "kind": "call",
                     "about": "customer 12347"}]
    _, said = run(followups.ActionUndo(), tracker("undo", "undo"))
    assert said[0]["response"] == "utter_undone"
    with session_scope(crm) as s:
        assert s.scalar(select(Task.status)) == "open"
        assert "undo" in s.scalars(select(m.AuditLog.action)).all()


def test_customers_are_refused(crm: str) -> None:  # noqa: F811
    for action, text, intent in [
            (followups.ActionCreateFollowup(), "remind me to call lead 412", "create_followup"),
            (followups.ActionListFollowups(), "my follow-ups", "list_followups"),
            (followups.ActionUndo(), "undo", "undo")]:
        _, said = run(action, tracker(text, intent, "customer:12347"))
        assert said == [NOT_ALLOWED], text
