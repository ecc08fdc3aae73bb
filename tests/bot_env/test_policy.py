"""EscalationPolicy's decisions (bot env)."""

import hashlib
import hmac

import pytest
from rasa.shared.core.events import ActionExecuted, ConversationResumed, UserUttered

from bot.policy import escalation_reason, recent_user_turns, sentiment_of


def said(text, intent="greet", sentiment="neutral", confidence=0.9, metadata=None):
    return UserUttered(text, intent={"name": intent, "confidence": 1.0},
                       entities=[{"entity": "sentiment", "value": sentiment,
                                  "confidence": confidence, "start": 0, "end": len(text)}],
                       metadata=metadata or {})


class _Tracker:
    def __init__(self, events):
        self.events = events


def test_sentiment_of_reads_the_entity():
    assert sentiment_of(said("hi", sentiment="positive", confidence=0.7)) == ("positive", 0.7)
    assert sentiment_of(UserUttered("x", intent={"name": "greet"})) == (None, 0.0)


@pytest.mark.parametrize("turns,expected", [
    ([said("get me a human", intent="contact_human_agent")], "asked for a human"),
    ([said("this is a disgrace", sentiment="negative", confidence=0.95)],
     "very negative message"),
    ([said("meh", sentiment="negative", confidence=0.6),
      said("not good", sentiment="negative", confidence=0.6)],
     "two negative messages in a row"),
    ([said("asdf", intent="nlu_fallback"), said("qwer", intent="nlu_fallback")],
     "two misunderstandings in a row"),
    ([said("meh", sentiment="negative", confidence=0.6)], None),
    ([said("fine", sentiment="neutral"), said("bad", sentiment="negative", confidence=0.6)],
     None),
    ([], None),
])
def test_escalation_reason(turns, expected):
    assert escalation_reason(turns, threshold=0.85) == expected


def test_turns_before_a_resume_do_not_count():
    events = [said("bad", sentiment="negative", confidence=0.6), ActionExecuted("action_listen"),
              ConversationResumed(), said("still bad", sentiment="negative", confidence=0.6)]
    turns = recent_user_turns(_Tracker(events))
    assert [t.text for t in turns] == ["still bad"]
    assert escalation_reason(turns, threshold=0.85) is None


def test_staff_identity_parses_from_signed_metadata(monkeypatch):
    from crm_ml.identity import from_metadata

    sig = hmac.new(b"s3cret", b"rep:2", hashlib.sha256).hexdigest()
    assert from_metadata({"auth": {"user": "rep:2", "sig": sig}}, "s3cret").is_staff
    assert not from_metadata({"auth": {"user": "rep:2", "sig": "0" * 64}}, "s3cret").is_staff
