"""Sales-rep actions about leads: hot leads, score reasons, status, calls and notes, pipeline.

Each action reads the entities of the latest message, checks them, makes one call
into :mod:`crm_ml.sales` and answers in sentences that read well aloud: numbers
in words a speech engine says right, no meaning carried by emoji or buttons.

The helpers at the top (entity reading, speech-friendly formatting, the CRM call
that turns "not among your leads" into a polite sentence) are shared with
:mod:`actions.analytics`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.base import call_crm
from actions.identity import channel_of, identify
from crm_ml import authz, sales
from crm_ml.db import session_scope
from crm_ml.identity import Identity

logger = logging.getLogger(__name__)

T = TypeVar("T")

HOT_LEADS = 5
REASONS_SHOWN = 2
_SOURCES = {"bank_marketing": "Bank Marketing", "x_education": "X Education"}


# ------------------------------------------------------------------ shared helpers


def entity(tracker: Tracker, name: str) -> str | None:
    """The first value of entity ``name`` in the latest message, as text, else None."""
    for value in tracker.get_latest_entity_values(name):
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def permitted(dispatcher: CollectingDispatcher, identity: Identity, permission: str) -> bool:
    """Whether the caller's role may do this at all; if not, refuse politely."""
    if authz.allowed(identity, permission):
        return True
    dispatcher.utter_message(response="utter_not_allowed")
    return False


def say_percent(p: float) -> str:
    """0.873 -> "87%", with "under 1%" and "over 99%" at the ends."""
    pct = p * 100
    if 0 < pct < 1:
        return "under 1%"
    if 99 < pct < 100:
        return "over 99%"
    return f"{round(pct)}%"


def a_or_an(word: str) -> str:
    """"a 35% chance", "an 87% chance", "an 11% chance": the article of the spoken word."""
    number = word.split("%")[0]
    vowel = number.startswith("8") or number in {"11", "18"} or word[:1].lower() in "aeiou"
    return f"{'an' if vowel else 'a'} {word}"


def say_money(amount: float) -> str:
    """Pounds, rounded the way people say them: "£2.15 million", "£845 thousand", "£1,234"."""
    sign = "minus " if amount < 0 else ""
    x = abs(amount)
    if x >= 1_000_000:
        text = f"{x / 1_000_000:.2f}".rstrip("0").rstrip(".")
        return f"{sign}£{text} million"
    if x >= 100_000:
        return f"{sign}£{round(x / 1000):,} thousand"
    if x >= 100:
        return f"{sign}£{round(x):,}"
    return f"{sign}£{x:,.2f}"


def say_count(n: int, singular: str, plural: str | None = None) -> str:
    """1 -> "1 lead", 6300 -> "6,300 leads"."""
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"


def say_date(day: dt.date) -> str:
    """"12 December 2011"."""
    return f"{day.day} {day:%B %Y}"


def cap(text: str) -> str:
    """First letter upper-cased, the rest untouched (unlike ``str.capitalize``)."""
    return text[:1].upper() + text[1:]


def say_list(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def whose(scope: str, thing: str) -> str:
    """"your leads", "your team's leads", "our leads" for scope own/team/all."""
    return {"own": f"your {thing}", "team": f"your team's {thing}"}.get(scope, f"our {thing}")


def scope_of(identity: Identity) -> str:
    """``own`` for a rep, ``team`` for a manager, ``all`` otherwise."""
    return {"rep": "own", "manager": "team"}.get(identity.role, "all")


@dataclass(frozen=True)
class _Problem:
    error: Exception


_PROBLEMS = (sales.LeadNotFound, sales.CustomerNotFound, sales.AmbiguousLead, sales.NoData)


async def ask_crm(dispatcher: CollectingDispatcher, action: str, fn: Callable[[], T]) -> T | None:
    """:func:`actions.base.call_crm`, and "not among yours" answered specifically.

    A lead or customer out of reach, an ambiguous lead name or a model output not
    computed yet get their own polite answer here; every other failure is answered
    by ``call_crm``.

    Returns:
        The call's result, or None after an answer was sent.
    """

    def guarded() -> T | _Problem:
        try:
            return fn()
        except _PROBLEMS as exc:
            return _Problem(exc)

    result = await call_crm(dispatcher, action, guarded)
    if isinstance(result, _Problem):
        explain_problem(dispatcher, result.error)
        return None
    return result


def explain_problem(dispatcher: CollectingDispatcher, error: Exception) -> None:
    """Answer a lookup that found nothing the caller may see, without telling why."""
    if isinstance(error, sales.LeadNotFound):
        lead = (f"lead {error.lead_id}" if error.lead_id is not None
                else f"a lead called {error.lead_name}")
        dispatcher.utter_message(response="utter_lead_not_found", lead=lead,
                                 whose=whose(error.scope, "leads"))
    elif isinstance(error, sales.CustomerNotFound):
        dispatcher.utter_message(response="utter_customer_not_found",
                                 customer_id=error.customer_id,
                                 whose=whose(error.scope, "accounts")
                                 if error.scope != "all" else "our customers")
    elif isinstance(error, sales.AmbiguousLead):
        options = say_list([f"lead {i} ({status})" for i, status in error.candidates])
        listed = (f": {options}" if error.count <= len(error.candidates)
                  else f"; the best scored are {options}")
        first = error.candidates[0][0]
        dispatcher.utter_message(text=(
            f"There are {error.count:,} leads called {error.lead_name}{listed}. Which one do "
            f"you mean? Please say its number, like 'lead {first}'."))
    elif isinstance(error, sales.NoData):
        response = {"forecast": "utter_no_forecast", "segments": "utter_no_segments"}
        dispatcher.utter_message(response=response.get(error.what, "utter_crm_unavailable"))


@dataclass(frozen=True)
class LeadRef:
    """Which lead the user meant: a number, a name, or nothing usable."""

    lead_id: int | None = None
    lead_name: str | None = None
    invalid: str | None = None  # a lead_id entity that is not a valid number

    @property
    def given(self) -> bool:
        """A usable number or name."""
        return self.lead_id is not None or bool(self.lead_name)


def lead_ref(tracker: Tracker) -> LeadRef:
    """The lead of the latest message: its number wins over its name."""
    raw_id = entity(tracker, "lead_id")
    if raw_id is not None:
        lead_id = sales.parse_id(raw_id)
        return LeadRef(lead_id=lead_id) if lead_id is not None else LeadRef(invalid=raw_id)
    name = entity(tracker, "lead_name")
    return LeadRef(lead_name=" ".join(name.split()).title()) if name else LeadRef()


def ask_for_lead(dispatcher: CollectingDispatcher, ref: LeadRef, example: str) -> bool:
    """When the message names no usable lead, ask for one; True if it did ask."""
    if ref.invalid is not None:
        dispatcher.utter_message(response="utter_invalid_lead_id", lead_id=ref.invalid,
                                 example=example)
        return True
    if not ref.given:
        dispatcher.utter_message(response="utter_ask_lead", example=example)
        return True
    return False


def lead_title(lead: sales.LeadInfo) -> str:
    """"lead 412, Olivia Smith"."""
    return f"lead {lead.id}, {lead.name}"


def reason_phrase(reasons: Sequence[sales.Reason], *, effect: str | None = None,
                  limit: int = REASONS_SHOWN) -> str:
    """The first ``limit`` reasons (of one effect, when given) joined as a phrase."""
    chosen = [r.text for r in reasons if effect is None or r.effect in {effect, None}]
    return say_list(chosen[:limit])


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

        def fetch() -> list[sales.LeadInfo]:
            with session_scope() as s:
                return sales.hot_leads(session=s, identity=identity, limit=HOT_LEADS)

        leads = await ask_crm(dispatcher, self.name(), fetch)
        if leads is None:
            return []
        scope = scope_of(identity)
        if not leads:
            dispatcher.utter_message(response="utter_no_hot_leads",
                                     whose=whose(scope, "open leads"))
            return []
        lines = []
        for rank, lead in enumerate(leads, start=1):
            owner = f" ({lead.rep_name}'s)" if scope == "team" and lead.rep_name else ""
            why = reason_phrase(lead.reasons, effect="raises")
            because = f", because: {why}" if why else ""
            lines.append(f"{rank}. Lead {lead.id}, {lead.name}{owner}: "
                         f"{say_percent(lead.score or 0)}{because}.")
        head = (f"{cap(whose(scope, 'hottest open leads'))}, "
                f"with their chance to convert:")
        if len(leads) < HOT_LEADS:
            head = (f"{cap(whose(scope, 'open leads'))} with a score, "
                    f"best first:")
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

        def fetch() -> sales.LeadInfo:
            with session_scope() as s:
                return sales.explain_lead(session=s, identity=identity, lead_id=ref.lead_id,
                                          lead_name=ref.lead_name)

        lead = await ask_crm(dispatcher, self.name(), fetch)
        if lead is None:
            return []
        title = cap(lead_title(lead))
        source = _SOURCES.get(lead.source, lead.source)
        if lead.score is None:
            dispatcher.utter_message(text=f"{title} ({lead.status}, from {source}), hasn't "
                                          "been scored yet, so I can't explain a score.")
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
        if raw_status is not None and status is None:
            dispatcher.utter_message(response="utter_invalid_lead_status",
                                     lead_status=raw_status)
            return []
        ref = lead_ref(tracker)
        if ask_for_lead(dispatcher, ref, f"mark lead 412 as {status or 'qualified'}"):
            return []
        if status is None:
            lead = f"lead {ref.lead_id}" if ref.lead_id is not None else ref.lead_name
            dispatcher.utter_message(response="utter_ask_lead_status", lead=lead)
            return []

        def change() -> sales.StatusChange:
            with session_scope() as s:
                return sales.update_lead_status(session=s, identity=identity, status=status,
                                                lead_id=ref.lead_id, lead_name=ref.lead_name)

        outcome = await ask_crm(dispatcher, self.name(), change)
        if outcome is None:
            return []
        title = cap(lead_title(outcome.lead))
        if not outcome.changed:
            dispatcher.utter_message(text=f"{title}, is already {outcome.new}, "
                                          "so I left it as it is.")
        else:
            dispatcher.utter_message(text=f"Done: {lead_title(outcome.lead)}, is now "
                                          f"{outcome.new}. It was {outcome.old}.")
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
        ref = lead_ref(tracker)
        customer_id: int | None = None
        if not ref.given and ref.invalid is None:
            raw_customer = entity(tracker, "customer_id")
            if raw_customer is not None:
                customer_id = sales.parse_id(raw_customer)
                if customer_id is None:
                    dispatcher.utter_message(response="utter_invalid_customer_id",
                                             customer_id=raw_customer,
                                             example="log a call with customer 12347")
                    return []
        if customer_id is None and ask_for_lead(dispatcher, ref, example):
            return []
        latest = tracker.latest_message or {}
        text = str(latest.get("text") or "").strip()
        message_id = latest.get("message_id")
        event_id = f"rep-log:{message_id}"[:64] if message_id else None
        sender_id, channel = tracker.sender_id, channel_of(tracker)

        def write() -> sales.LoggedInteraction:
            with session_scope() as s:
                return sales.log_interaction(
                    session=s, identity=identity, text=text, sender_id=sender_id,
                    channel=channel, lead_id=ref.lead_id, lead_name=ref.lead_name,
                    customer_id=customer_id, event_id=event_id)

        logged = await ask_crm(dispatcher, self.name(), write)
        if logged is None:
            return []
        what = "a call" if logged.kind == "call" else "a note"
        if logged.lead is not None:
            about = f"with {lead_title(logged.lead)}" if logged.kind == "call" \
                else f"on {lead_title(logged.lead)}"
        else:
            about = (f"with customer {logged.customer_id}, {logged.customer_name}"
                     if logged.kind == "call"
                     else f"on customer {logged.customer_id}, {logged.customer_name}")
        if logged.duplicate:
            dispatcher.utter_message(text=f"I had already logged that message as {what} "
                                          f"{about}; nothing new was added.")
        else:
            dispatcher.utter_message(text=f"Logged {what} {about}, with your words as the "
                                          "note.")
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

        def fetch() -> sales.Pipeline:
            with session_scope() as s:
                return sales.pipeline_summary(session=s, identity=identity)

        pipeline = await ask_crm(dispatcher, self.name(), fetch)
        if pipeline is None:
            return []
        you = "Your team has" if pipeline.scope == "team" else "You have"
        if pipeline.total == 0:
            dispatcher.utter_message(text=f"{you} no leads yet.")
            return []
        if status is not None:
            entry = pipeline.count(status)
            avg = (f", with an average score of {say_percent(entry.avg_score)}"
                   if entry.avg_score is not None and entry.leads else "")
            dispatcher.utter_message(text=(
                f"{you} {say_count(entry.leads, status + ' lead')} out of "
                f"{pipeline.total:,}{avg}."))
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
        dispatcher.utter_message(text=" ".join(lines))
        return []
