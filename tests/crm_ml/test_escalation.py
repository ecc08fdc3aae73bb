"""Cues of anger and of asking for a person (crm_ml.escalation)."""

from __future__ import annotations

import pytest

from crm_ml.escalation import anger_cue, asks_for_person


@pytest.mark.parametrize("text", [
    "your support is a joke",
    "this shop is a scam",
    "I'm doing a chargeback if this isn't fixed today",
    "sort it out or I go to the ombudsman",
    "are you kidding me? wrong item again",
    "this is the last straw, I'm switching to a competitor",
    "WHERE IS MY PARCEL",
    "I want it NOW!!",
    "thanks for nothing",
    "great service 🙄",
])
def test_anger_cues(text: str) -> None:
    assert anger_cue(text)


@pytest.mark.parametrize("text", [
    "the mug arrived cracked, can I get a new one",
    "how many customers do we have",
    "please send the invoice as a PDF ASAP",
    "hello, where is my order 536365?",
    "I want to complain about the courier",
    "which of my accounts may churn",
    "",
])
def test_calm_messages_have_no_anger_cue(text: str) -> None:
    assert not anger_cue(text)


@pytest.mark.parametrize("text", [
    "the payment went through twice. I want a human, not a bot",
    "can someone from support call me back",
    "let me speak to a manager",
    "is there a real person I can talk to",
    "put me through to customer service",
])
def test_asking_for_a_person_in_words(text: str) -> None:
    assert asks_for_person(text)


@pytest.mark.parametrize("text", [
    "how do I contact customer service by email",
    "who is my sales rep",
    "what are your opening hours",
    "is this a human-readable invoice",
    "r u a real person or a bot",
    "are you a real human?",
])
def test_no_request_for_a_person(text: str) -> None:
    assert not asks_for_person(text)
