"""Cues in a customer's own words that call for a person (standard library only).

The sentiment model says how negative a message is, not how angry: a calm
complaint ("the mug arrived cracked") is as negative as a furious one. The
escalation policy (``bot/policy.py``, bot env) adds two kinds of cue written
here, our own lists:

* **anger and threats**: insults to the service ("a joke", "a scam", "useless"),
  threats to leave or to complain elsewhere ("chargeback", "ombudsman",
  "switching to", "never again"), exasperation ("are you kidding", "ffs",
  "last straw", "losing my patience"), sarcasm markers ("thanks for nothing",
  "🙄"), and shouting (two capitalised words, or one with "!!"/"??"). They
  count only on a message the sentiment model already reads as negative.
* **asking for a person** in words, inside another request ("I want a human,
  not a bot", "can someone call me back", "let me speak to a manager").

``tests/crm_ml/test_escalation.py`` checks the cues on examples of each kind
and on calm messages that must not match.
"""

from __future__ import annotations

import re

__all__ = ["anger_cue", "asks_for_person"]

_ANGER = re.compile(
    r"\b(?:"
    r"a joke|joke of a|scam|scammers?|rip[- ]?off|fraud|disgrace(?:ful)?|pathetic|useless|"
    r"ridiculous|outrageous|unacceptable|appalling|disgusting|shambles|disaster|"
    r"incompetent|clowns|worst (?:service|company|shop|experience)|"
    r"bs|ffs|wtf|bloody|damn|hell|crap|rubbish service|"
    r"kidding me|are you serious|you(?:'re| are) (?:wasting|having a laugh)|"
    r"last straw|fed up|sick of|sick and tired|had enough|losing my patience|"
    r"lost my patience|my patience|furious|livid|angry|fuming|"
    r"thanks? for nothing|well done,? (?:really|guys)|absolutely brilliant|"
    r"charge ?back|ombudsman|trading standards|lawyer|solicitor|legal action|sue you|"
    r"report(?:ing)? you|review(?:ing)? you|switch(?:ing)? to (?:a |your )?competitor|"
    r"going elsewhere|take my (?:money|business) elsewhere|never (?:again|shop(?:ping)? here)"
    r")\b",
    re.IGNORECASE,
)
_EMOJI = re.compile("[\U0001F620\U0001F621\U0001F624\U0001F92C\U0001F644\U0001F612]")
_CAPS = re.compile(r"\b[A-Z]{3,}\b")
_NOT_SHOUTING = frozenset({"ASAP", "PDF", "DHL", "UPS", "DPD", "USPS", "VAT", "GBP", "EUR",
                           "USD", "FAQ", "CEO", "SMS", "URL", "APP", "IBAN", "ETA", "RMA"})
_PERSON = re.compile(
    r"\b(?:"
    r"(?:a|an|real|actual|live) (?:human|person|people|agent|operator)(?!-)|"
    r"human being|not (?:a|this|your) (?:bot|robot|machine)|"
    r"(?:speak|talk|chat) (?:to|with) (?:someone|somebody|a manager|your manager|"
    r"a supervisor|customer service|support staff|staff)|"
    r"(?:someone|somebody) (?:from \w+ )?(?:call|ring|phone) me|call me back|"
    r"(?:get|put) me through to|transfer me to"
    r")\b",
    re.IGNORECASE,
)


def anger_cue(text: str) -> bool:
    """Whether the message shows anger, a threat or shouting (see the module docstring)."""
    if not text:
        return False
    if _ANGER.search(text) or _EMOJI.search(text):
        return True
    shouted = [w for w in _CAPS.findall(text) if w not in _NOT_SHOUTING]
    return len(shouted) >= 2 or (len(shouted) == 1 and ("!!" in text or "??" in text))


_ARE_YOU = re.compile(r"\b(?:are|r)\s+(?:you|u|ya)\b", re.IGNORECASE)


def asks_for_person(text: str) -> bool:
    """Whether the message asks, in words, for a person rather than the bot.

    "Are you a real person?" asks what the assistant is, not for someone else.
    """
    return bool(text) and _PERSON.search(text) is not None and not _ARE_YOU.search(text)
