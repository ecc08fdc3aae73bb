"""Reading what the user said: entities, the request behind a message, e-mail addresses.

Each reader checks what it reads; the ones that take a dispatcher ask for a
missing detail or complain about an invalid one, and say so in their result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.speech import say_list
from crm_ml import sales, support

__all__ = [
    "LeadRef",
    "ask_for_lead",
    "ask_which",
    "count_in",
    "customer_ref",
    "email_in",
    "entity",
    "is_generic",
    "is_question",
    "last_user_text",
    "latest_intent",
    "lead_ref",
    "lead_source_in",
    "target_ref",
]

_WORD_RE = re.compile(r"[a-z']+")
# Words that only say "I want to complain / review / change my account":
# a message made of these alone carries no details worth a ticket.
_REQUEST_WORDS = frozenset("""
    i i'm im i'd id me my mine we our you your a an the to of for about with on in at and or
    want wanna would like need needs have has had make made file lodge raise submit register
    send leave write give post do does did can could how where what please pls plz just some
    something it this that is am are be been so very really not happy unhappy
    complaint complaints complain complaining formal official feedback review reviews rate
    rating ratings star stars opinion experience service shop store company website site
    account profile details detail info information settings personal edit change changes
    update modify amend correct email e-mail mail address data
""".split())
_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,24}")


# ------------------------------------------------------------------ the latest message


def entity(tracker: Tracker, name: str) -> str | None:
    """The first value of entity ``name`` in the latest message, as text, else None."""
    for value in tracker.get_latest_entity_values(name):
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def latest_intent(tracker: Tracker) -> str | None:
    """The intent of the latest message."""
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


def last_user_text(tracker: Tracker, intents: Iterable[str]) -> str:
    """The latest customer message with one of ``intents`` (the request, not the answer
    to a verification question); the latest message when none has."""
    wanted = set(intents)
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent in wanted:
            return event.get("text") or ""
    return (tracker.latest_message or {}).get("text") or ""


# ------------------------------------------------------------------ free text


def is_generic(text: str) -> bool:
    """Whether a message only asks to complain/review/change, without any details."""
    words = _WORD_RE.findall(text.lower().replace("’", "'"))
    return all(word in _REQUEST_WORDS for word in words)


def email_in(text: str) -> str | None:
    """The first e-mail address written in ``text``, checked."""
    match = _EMAIL_IN_TEXT.search(text or "")
    return support.clean_email(match.group(0)) if match else None


# ------------------------------------------------------------------ leads and customers


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


def customer_ref(dispatcher: CollectingDispatcher, tracker: Tracker, example: str,
                 *, required: bool = True) -> tuple[bool, int | None]:
    """The customer number of the latest message.

    Asks for it (``required``) or reports an invalid one.

    Returns:
        ``(ok, customer_id)``: ``ok`` is False after a question or complaint was sent.
    """
    raw = entity(tracker, "customer_id")
    if raw is None:
        if required:
            dispatcher.utter_message(response="utter_ask_customer_id", example=example)
            return False, None
        return True, None
    customer_id = sales.parse_id(raw)
    if customer_id is None:
        dispatcher.utter_message(response="utter_invalid_customer_id", customer_id=raw,
                                 example=example)
        return False, None
    return True, customer_id


# ------------------------------------------------------------------ shorthand and lists

_CUSTOMER_WORD = re.compile(r"\b(?:customer|customers|client|account|acct|cust)\b\W*(?:no\.?\s*|"
                            r"number\s*|#\s*|id\s*)?\d", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"(?<![\d.:£$€])\b(\d{3,8})\b(?![:.]\d)(?!\s*(?:am|pm|a\.m|p\.m)\b)",
                         re.IGNORECASE)
_COUNT_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "twenty": 20, "a dozen": 12, "dozen": 12}
_COUNT_RE = re.compile(
    r"\b(?:top|best|first|hottest|show(?: me)?|list|give me|my)\s+(\d{1,2}|"
    + "|".join(_COUNT_WORDS) + r")\b|\b(\d{1,2}|" + "|".join(_COUNT_WORDS)
    + r")\s+(?:hot(?:test)?|best|top|warmest|most likely|leads?)\b", re.IGNORECASE)


def target_ref(tracker: Tracker) -> tuple[int | None, str | None, str | None]:
    """The lead or customer number of a write request, and what the user called it.

    Returns:
        ``(number, kind, invalid)``: ``kind`` is ``"lead"`` after the word lead,
        ``"customer"`` after customer/account/client, None for a bare number;
        ``invalid`` is the text of a number that is not a usable id.
    """
    ref = lead_ref(tracker)
    if ref.invalid is not None:
        return None, None, ref.invalid
    if ref.lead_id is not None:
        return ref.lead_id, "lead", None
    text = str((tracker.latest_message or {}).get("text") or "")
    raw = entity(tracker, "customer_id")
    if raw is None:
        match = _ANY_NUMBER.search(text)
        raw = match.group(1) if match else None
    if raw is None:
        return None, None, None
    number = sales.parse_id(raw)
    said_customer = bool(_CUSTOMER_WORD.search(text))
    if number is None:
        return None, "customer" if entity(tracker, "customer_id") else None, raw
    return number, "customer" if said_customer else None, None


def count_in(text: str, default: int, most: int = 20) -> int:
    """How many items a list request asks for ("top 3 leads", "ten hottest"), else default."""
    match = _COUNT_RE.search(text or "")
    if not match:
        return default
    said = (match.group(1) or match.group(2) or "").lower()
    n = int(said) if said.isdigit() else _COUNT_WORDS.get(said, default)
    return max(1, min(n, most))


def lead_source_in(text: str) -> str | None:
    """``bank_marketing`` / ``x_education`` when the message names a lead source."""
    words = (text or "").lower()
    if re.search(r"\bbank(?:ing)?\b|\bmarketing campaign|\btelemarketing\b", words):
        return "bank_marketing"
    if re.search(r"\bx[ -]?ed(?:ucation)?\b|\beducation\b|\bcourses?\b|\bonline course", words):
        return "x_education"
    return None


def ask_which(dispatcher: CollectingDispatcher, choice: sales.NeedsChoice, example: str) -> None:
    """Nothing written: the number is none of the caller's, or both a lead and a customer."""
    if not choice.targets:
        dispatcher.utter_message(response="utter_target_not_found", number=choice.number,
                                 example=example)
        return
    options = say_list([f"{t.kind} {t.id}, {t.name}" for t in choice.targets])
    dispatcher.utter_message(response="utter_ask_lead_or_customer", number=choice.number,
                             options=options)


_QUESTION_START = re.compile(
    r"^\s*(?:did|do|does|have|has|had|was|were|is|are|when|what|whats|what's|who|whom|why|"
    r"how|which|should|shall)\b", re.IGNORECASE)
_REQUEST_START = re.compile(r"^\s*(?:(?:can|could|would|will)\s+you|please|pls)\b",
                            re.IGNORECASE)


def is_question(text: str) -> bool:
    """Whether a message asks something ("did I call lead 412 already?") rather than asks
    for a write ("can you log a call with lead 412?" is a request)."""
    if _REQUEST_START.search(text or ""):
        return False
    return bool(_QUESTION_START.search(text or "")) or (text or "").strip().endswith("?")
