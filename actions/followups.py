"""Rep actions for follow-ups and undo: "remind me to call lead 49498 tomorrow at 10",
"what follow-ups do I have this week", "done with the call to 49498", "undo"."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import NOT_FOUND, crm_call
from actions.gate import permitted
from actions.identity import identify
from actions.parsing import ask_which, target_ref
from crm_ml import followups, sales, undo

logger = logging.getLogger(__name__)

__all__ = ["ActionCompleteFollowup", "ActionCreateFollowup", "ActionListFollowups",
           "ActionUndo"]


def _when(task: followups.TaskInfo) -> str:
    due = task.due_local
    return f"{due:%A} {due.day} {due:%B %Y} at {due:%H:%M}"


class ActionCreateFollowup(Action):
    """A follow-up task (not a logged call): stated back with its due time, undoable."""

    def name(self) -> str:
        return "action_create_followup"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "leads.write"):
            return []
        number, kind, invalid = target_ref(tracker)
        if number is None:
            dispatcher.utter_message(response="utter_ask_followup_target")
            return []
        text = str((tracker.latest_message or {}).get("text") or "")
        task = await crm_call(dispatcher, followups.remind, identity=identity, number=number,
                              kind=kind, message=text, sender_id=tracker.sender_id)
        if task is None:
            return []
        if isinstance(task, sales.NeedsChoice):
            ask_which(dispatcher, task, "remind me to call lead 412 tomorrow at 10")
            return []
        dispatcher.utter_message(response="utter_followup_created", kind=task.kind,
                                 about=task.about, when=_when(task), timezone=task.timezone)
        return []


class ActionListFollowups(Action):
    """The rep's open follow-ups: today's, this week's, or (nothing said) all; overdue
    first."""

    def name(self) -> str:
        return "action_list_followups"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "leads.read"):
            return []
        text = str((tracker.latest_message or {}).get("text") or "").lower()
        span = "today" if "today" in text else "week" if "week" in text else "all"
        tasks = await crm_call(dispatcher, followups.my_followups, identity=identity, span=span)
        if tasks is None:
            return []
        period = {"today": "today", "week": "this week", "all": "open"}[span]
        if not tasks:
            dispatcher.utter_message(response="utter_no_followups", period=period)
            return []
        lines = [f"{n}. {_when(t)}: {t.kind} {t.about}" for n, t in enumerate(tasks, 1)]
        # Built here: one line per follow-up, as many as are due.
        dispatcher.utter_message(text=f"Your follow-ups ({period}):\n" + "\n".join(lines))
        return []


class ActionCompleteFollowup(Action):
    """"Done with the call to 49498": the task marked done (undoable)."""

    def name(self) -> str:
        return "action_complete_followup"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "leads.write"):
            return []
        number, kind, _ = target_ref(tracker)
        task = await crm_call(dispatcher, followups.complete, identity=identity, number=number,
                              kind=kind, sender_id=tracker.sender_id,
                              not_found="utter_no_such_followup")
        if task is None or task is NOT_FOUND:
            return []
        if isinstance(task, sales.NeedsChoice):
            ask_which(dispatcher, task, "done with the call to lead 412")
            return []
        dispatcher.utter_message(response="utter_followup_done", kind=task.kind,
                                 about=task.about)
        return []


class ActionUndo(Action):
    """"Undo": the last write of this conversation reverted (audited)."""

    def name(self) -> str:
        return "action_undo"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "leads.write"):
            return []
        done = await crm_call(dispatcher, undo.undo_last, identity=identity,
                              sender_id=tracker.sender_id, not_found="utter_nothing_to_undo")
        if done is None or done is NOT_FOUND:
            return []
        response = "utter_undone" if done.still_changed else "utter_undone_already_changed"
        dispatcher.utter_message(response=response, summary=done.summary)
        return []
