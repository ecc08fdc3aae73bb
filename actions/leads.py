"""Sales-rep actions about leads: hot leads, score reasons, status, calls and notes, pipeline.

Each action reads the entities of the latest message (:mod:`actions.parsing`),
checks them, makes one call into :mod:`crm_ml.sales` (:func:`actions.crm.crm_call`)
and answers in sentences that read well aloud (:mod:`actions.speech`): numbers
in words a speech engine says right, no meaning carried by emoji or buttons.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import crm_call
from actions.gate import permitted
from actions.identity import identify
from actions.parsing import (
    LeadRef,
    ask_for_lead,
    ask_which,
    count_in,
    entity,
    is_question,
    lead_ref,
    lead_source_in,
    target_ref,
)
from actions.speech import (
    a_or_an,
    cap,
    reason_phrase,
    say_count,
    say_list,
    say_percent,
    scope_of,
    whose,
)
from crm_ml import sales
from crm_ml.contract import channel_of

logger = logging.getLogger(__name__)

__all__ = [
    "ActionExplainLeadScore",
    "ActionLogInteraction",
    "ActionPipelineSummary",
    "ActionShowHotLeads",
    "ActionUpdateLeadStatus",
]

HOT_LEADS = 5
_SOURCES = {"bank_marketing": "Bank Marketing", "x_education": "X Education"}


def lead_title(lead: sales.LeadInfo) -> str:
    """"lead 412, Olivia Smith"."""
    return f"lead {lead.id}, {lead.name}"


# ------------------------------------------------------------------------- actions


class ActionShowHotLeads(Action):
    """"Who are my hottest leads": the caller's (team's) top open leads by score."""

    def name(self) -> str:
        return "action_show_hot_leads"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "leads.read"):
            return []
        text = str((tracker.latest_message or {}).get("text") or "")
        wanted = count_in(text, HOT_LEADS)
        source = lead_source_in(text)
        status = sales.parse_status(entity(tracker, "lead_status"))
        leads = await crm_call(dispatcher, sales.hot_leads, identity=identity, limit=wanted,
                               source=source, status=status)
        if leads is None:
            return []
        scope = scope_of(identity)
        if not leads:
            kind = f"{status} leads" if status else "open leads"
            source_words = f" from {_SOURCES[source]}" if source else ""
            dispatcher.utter_message(response="utter_no_hot_leads",
                                     whose=whose(scope, kind) + source_words)
            return []
        lines = []
        for rank, lead in enumerate(leads, start=1):
            owner = f" ({lead.rep_name}'s)" if scope == "team" and lead.rep_name else ""
            why = reason_phrase(lead.reasons, effect="raises")
            because = f", because: {why}" if why else ""
            lines.append(f"{rank}. Lead {lead.id}, {lead.name}{owner}: "
                         f"{say_percent(lead.score or 0)}{because}.")
        kind = f"{status} leads" if status else "open leads"
        source_words = f" from {_SOURCES[source]}" if source else ""
        head = (f"{cap(whose(scope, 'hottest ' + kind))}{source_words}, "
                f"with their chance to convert:")
        if len(leads) < wanted:
            head = (f"{cap(whose(scope, 'open leads'))} with a score, "
                    f"best first:")
        # Built here: one line per lead, as many as asked for and found.
        dispatcher.utter_message(text="\n".join([head, *lines]))
        return []


class ActionExplainLeadScore(Action):
    """"Why is lead 412 hot": the score of one of the caller's leads and its reasons."""

    def name(self) -> str:
        return "action_explain_lead_score"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "leads.read"):
            return []
        ref = lead_ref(tracker)
        if ask_for_lead(dispatcher, ref, "why is lead 412 hot"):
            return []
        lead = await crm_call(dispatcher, sales.explain_lead, identity=identity,
                              lead_id=ref.lead_id, lead_name=ref.lead_name)
        if lead is None:
            return []
        title = cap(lead_title(lead))
        source = _SOURCES.get(lead.source, lead.source)
        if lead.score is None:
            dispatcher.utter_message(response="utter_lead_not_scored", lead=title,
                                     status=lead.status, source=source)
            return []
        text = (f"{title} ({lead.status}, from {source}), has "
                f"{a_or_an(say_percent(lead.score))} chance to convert.")
        ups = [r.text for r in lead.reasons if r.effect == "raises"]
        downs = [r.text for r in lead.reasons if r.effect == "lowers"]
        plain = [r.text for r in lead.reasons if r.effect is None]
        if ups:
            text += f" What raises it: {'; '.join(ups)}."
        if downs:
            text += f" What lowers it: {'; '.join(downs)}."
        if plain:
            text += f" The main reasons: {'; '.join(plain)}."
        if not lead.reasons:
            text += " The model gave no particular reasons for this lead."
        # Built here: a sentence per kind of reason the model gave, each a list of any length.
        dispatcher.utter_message(text=text)
        return []


class ActionUpdateLeadStatus(Action):
    """"Mark lead 412 as qualified": a checked, audited status change."""

    def name(self) -> str:
        return "action_update_lead_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "leads.write"):
            return []
        raw_status = entity(tracker, "lead_status")
        status = sales.parse_status(raw_status)
        if is_question(str((tracker.latest_message or {}).get("text") or "")):
            dispatcher.utter_message(response="utter_question_not_changed")
            return []
        if raw_status is not None and status is None:
            dispatcher.utter_message(response="utter_invalid_lead_status",
                                     lead_status=raw_status)
            return []
        ref = lead_ref(tracker)
        if not ref.given and ref.invalid is None:
            number, kind, _ = target_ref(tracker)
            if number is not None and kind != "customer":
                ref = LeadRef(lead_id=number)  # "mark 48122 won": statuses are leads'
        if ask_for_lead(dispatcher, ref, f"mark lead 412 as {status or 'qualified'}"):
            return []
        if status is None:
            lead = f"lead {ref.lead_id}" if ref.lead_id is not None else ref.lead_name
            dispatcher.utter_message(response="utter_ask_lead_status", lead=lead)
            return []
        outcome = await crm_call(dispatcher, sales.update_lead_status, identity=identity,
                                 status=status, lead_id=ref.lead_id, lead_name=ref.lead_name,
                                 sender_id=tracker.sender_id)
        if outcome is None:
            return []
        if not outcome.changed:
            dispatcher.utter_message(response="utter_lead_status_unchanged",
                                     lead=cap(lead_title(outcome.lead)), status=outcome.new)
        else:
            dispatcher.utter_message(response="utter_lead_status_changed_undo",
                                     lead=lead_title(outcome.lead), status=outcome.new,
                                     old_status=outcome.old)
        return []


class ActionLogInteraction(Action):
    """"Log a call with lead 88": the message is stored as a call or note, audited."""

    def name(self) -> str:
        return "action_log_interaction"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "leads.write"):
            return []
        example = "log a call with lead 412: left a voicemail"
        latest_text = str((tracker.latest_message or {}).get("text") or "")
        if is_question(latest_text):  # "did I call lead 412 already?" writes nothing
            dispatcher.utter_message(response="utter_question_not_logged")
            return []
        ref = lead_ref(tracker)
        number, kind, invalid = target_ref(tracker)
        if invalid is not None and kind == "customer":
            dispatcher.utter_message(response="utter_invalid_customer_id", customer_id=invalid,
                                     example="log a call with customer 12347")
            return []
        if invalid is not None:
            dispatcher.utter_message(response="utter_invalid_lead_id", lead_id=invalid,
                                     example=example)
            return []
        if number is None and ask_for_lead(dispatcher, ref, example):
            return []
        latest = tracker.latest_message or {}
        text = str(latest.get("text") or "").strip()
        message_id = latest.get("message_id")
        event_id = f"rep-log:{message_id}"[:64] if message_id else None
        channel = channel_of(tracker.sender_id, tracker.get_latest_input_channel())
        common = {"identity": identity, "text": text, "sender_id": tracker.sender_id,
                  "channel": channel, "event_id": event_id}
        if number is not None:
            logged = await crm_call(dispatcher, sales.log_by_number, number=number, kind=kind,
                                    **common)
        else:
            logged = await crm_call(dispatcher, sales.log_interaction,
                                    lead_name=ref.lead_name, **common)
        if logged is None:
            return []
        if isinstance(logged, sales.NeedsChoice):
            ask_which(dispatcher, logged, "log a call with lead 412: no answer")
            return []
        subject = (lead_title(logged.lead) if logged.lead is not None
                   else f"customer {logged.customer_id}, {logged.customer_name}")
        if logged.kind == "call":
            response = ("utter_call_already_logged" if logged.duplicate
                        else "utter_call_logged_undo")
        else:
            response = ("utter_note_already_logged" if logged.duplicate
                        else "utter_note_logged_undo")
        dispatcher.utter_message(response=response, subject=subject)
        return []


class ActionPipelineSummary(Action):
    """"How's my pipeline": leads per status, average scores, wins and conversions."""

    def name(self) -> str:
        return "action_pipeline_summary"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        identity = identify(tracker)
        if not permitted(dispatcher, identity, "leads.read"):
            return []
        raw_status = entity(tracker, "lead_status")
        status = sales.parse_status(raw_status)
        pipeline = await crm_call(dispatcher, sales.pipeline_summary, identity=identity)
        if pipeline is None:
            return []
        you_have = "Your team has" if pipeline.scope == "team" else "You have"
        if pipeline.total == 0:
            dispatcher.utter_message(response="utter_no_leads", you_have=you_have)
            return []
        if status is not None:
            entry = pipeline.count(status)
            figures = {"you_have": you_have, "leads": say_count(entry.leads, status + " lead"),
                       "total": f"{pipeline.total:,}"}
            if entry.avg_score is not None and entry.leads:
                dispatcher.utter_message(response="utter_pipeline_status_scored",
                                         score=say_percent(entry.avg_score), **figures)
            else:
                dispatcher.utter_message(response="utter_pipeline_status", **figures)
            return []
        parts = say_list([f"{s.leads:,} {s.status}" for s in pipeline.statuses])
        lines = [f"{cap(whose(pipeline.scope, 'pipeline'))} has "
                 f"{say_count(pipeline.total, 'lead')}: {parts}."]
        if pipeline.open_avg_score is not None:
            lines.append(f"The open leads score {say_percent(pipeline.open_avg_score)} "
                         "on average.")
        if pipeline.win_rate is not None:
            lines.append(f"Win rate so far: {say_percent(pipeline.win_rate)}, "
                         f"{pipeline.won:,} won of {pipeline.won + pipeline.lost:,} closed.")
        else:
            lines.append("None has been marked won or lost yet.")
        lines.append(f"On record, {pipeline.converted_on_record:,} of these leads converted, "
                     f"{say_percent(pipeline.converted_on_record / pipeline.total)}.")
        # Built here: one sentence per status the leads are in, plus the figures that exist.
        dispatcher.utter_message(text=" ".join(lines))
        return []
