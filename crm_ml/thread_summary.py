"""A summary of a conversation for the agent who takes it over, built from the conversation only.

What the agent reads at the top of a thread, before the transcript:

* the intents the customer went through, in the order they first came up (with counts);
* the order numbers and the amounts the conversation mentions;
* the customer's sentiment trend (first half against second half of their messages);
* what the bot already answered: each customer question with the bot's reply to it;
* how many messages came from the customer, the bot and agents.

Pure functions over the messages as :func:`crm_ml.handoff.conversation` returns them
(``direction``, ``text``, ``sentiment``, ``intent``, ``kind``, ``at``), or an
escalation's saved transcript (``from``, ``text``, ``sentiment``); no external service.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

__all__ = [
    "AMOUNT_RE",
    "ORDER_RE",
    "ThreadSummary",
    "amounts_in",
    "normalise",
    "orders_in",
    "sentiment_trend",
    "summarise",
    "summarise_conversation",
]

logger = logging.getLogger(__name__)

# Online Retail invoices are six digits, a cancellation's with a leading C.
ORDER_RE = re.compile(
    r"(?<![\d.,£$€])(?:#\s*)?\b([CcAa]?\d{6})\b(?![.,]\d)(?!\s*(?:gbp|eur|usd|pounds?|euros?|dollars?)\b)",
    re.IGNORECASE,
)
AMOUNT_RE = re.compile(
    r"(?P<sign>[£$€])\s?(?P<a>\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?)"
    r"|\b(?P<b>\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?)\s?"
    r"(?P<unit>gbp|eur|usd|pounds?|quid|euros?|dollars?)\b",
    re.IGNORECASE,
)
_CURRENCY = {"£": "£", "$": "$", "€": "€", "gbp": "£", "pound": "£", "pounds": "£", "quid": "£",
             "eur": "€", "euro": "€", "euros": "€", "usd": "$", "dollar": "$", "dollars": "$"}
_SCORE = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}
_IGNORED_INTENTS = {None, "", "nlu_fallback"}
_REPLY_CHARS = 160


@dataclass(frozen=True)
class ThreadSummary:
    """What the agent should know before answering.

    ``trend`` is ``worsening``, ``improving``, ``steady`` or ``unknown`` (fewer
    than one customer message with a sentiment).
    """

    intents: list[tuple[str, int]]
    orders: list[str]
    amounts: list[str]
    sentiments: list[str]
    trend: str
    answered: list[dict[str, str]]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """One line: the intents, the orders and the mood."""
        parts = []
        if self.intents:
            parts.append(" → ".join(name for name, _ in self.intents))
        if self.orders:
            parts.append("orders " + ", ".join(self.orders))
        if self.amounts:
            parts.append("amounts " + ", ".join(self.amounts))
        parts.append(f"sentiment {self.trend}")
        return "; ".join(parts)


def normalise(message: dict[str, Any]) -> dict[str, Any]:
    """One message as ``{"who": customer|bot|agent, "text", "sentiment", "intent"}``."""
    if "direction" in message:
        who = ("customer" if message["direction"] == "in"
               else "agent" if message.get("kind") == "agent" else "bot")
    else:
        who = {"customer": "customer", "agent": "agent"}.get(str(message.get("from")), "bot")
    return {"who": who, "text": str(message.get("text") or ""),
            "sentiment": message.get("sentiment"), "intent": message.get("intent")}


def orders_in(text: str) -> list[str]:
    """Order numbers (six digits, C for a cancellation) in ``text``, upper-cased, in order."""
    return [m.group(1).upper() for m in ORDER_RE.finditer(text)]


def amounts_in(text: str) -> list[str]:
    """Money amounts in ``text`` written as ``£12.50`` (the currency as written)."""
    found = []
    for match in AMOUNT_RE.finditer(text):
        value = match.group("a") or match.group("b")
        sign = _CURRENCY[(match.group("sign") or match.group("unit")).lower()]
        number = float(value.replace(",", ""))
        found.append(f"{sign}{number:,.2f}")
    return found


def sentiment_trend(sentiments: list[str]) -> str:
    """``worsening``, ``improving`` or ``steady`` from the first half to the second half.

    One message is ``steady``; none is ``unknown``. The halves share the middle
    message of an odd count, so three messages compare the first two with the last two.
    """
    scores = [_SCORE[s] for s in sentiments if s in _SCORE]
    if not scores:
        return "unknown"
    if len(scores) == 1:
        return "steady"
    half = (len(scores) + 1) // 2
    first = sum(scores[:half]) / half
    second = sum(scores[-half:]) / half
    if second - first <= -0.25:
        return "worsening"
    if second - first >= 0.25:
        return "improving"
    return "steady"


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _cut(text: str) -> str:
    return text if len(text) <= _REPLY_CHARS else text[:_REPLY_CHARS - 1].rstrip() + "…"


def _answered(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Each customer message the bot replied to, with the bot's reply (several joined)."""
    answered: list[dict[str, str]] = []
    question: dict[str, Any] | None = None
    replies: list[str] = []
    for r in [*rows, {"who": "end", "text": ""}]:
        if r["who"] == "bot" and question is not None:
            replies.append(r["text"])
            continue
        if question is not None and replies:
            answered.append({"asked": question["text"], "intent": question["intent"] or "",
                             "answer": _cut(" ".join(replies))})
        question = r if r["who"] == "customer" else None
        replies = []
    return answered


def summarise(messages: list[dict[str, Any]]) -> ThreadSummary:
    """Summarise a conversation (oldest message first).

    Args:
        messages: The conversation's messages, in either stored shape (see the module).

    Returns:
        The summary; empty lists when the conversation is empty.
    """
    rows = [normalise(m) for m in messages]
    customer = [r for r in rows if r["who"] == "customer"]
    intents = Counter(r["intent"] for r in customer if r["intent"] not in _IGNORED_INTENTS)
    order_of = _unique([r["intent"] for r in customer if r["intent"] not in _IGNORED_INTENTS])
    texts = [r["text"] for r in rows]
    answered = _answered(rows)
    sentiments = [r["sentiment"] for r in customer if r["sentiment"]]
    return ThreadSummary(
        intents=[(name, intents[name]) for name in order_of],
        orders=_unique([o for t in texts for o in orders_in(t)]),
        amounts=_unique([a for t in texts for a in amounts_in(t)]),
        sentiments=sentiments,
        trend=sentiment_trend(sentiments),
        answered=answered,
        counts=dict(Counter(r["who"] for r in rows)),
    )


def summarise_conversation(*, session: Session, sender_id: str,
                           transcript: list[dict[str, Any]] | None = None) -> ThreadSummary:
    """The summary of a stored conversation (its interactions, else ``transcript``)."""
    from crm_ml import handoff

    live = handoff.conversation(session=session, sender_id=sender_id)
    return summarise(live or list(transcript or []))
