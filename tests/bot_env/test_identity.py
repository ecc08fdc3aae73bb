"""The signed identity in the Rasa process: the same verdict as crm_ml's, one HMAC per signature."""

import pytest

import crm_ml.identity as crm_identity
from bot.identity import verified_identity
from crm_ml.identity import ANONYMOUS, Identity, from_metadata, sign

SECRET = "bot-env-identity-secret"


def signed(user, secret=SECRET):
    return {"auth": {"user": user, "sig": sign(user, secret)}}


@pytest.mark.parametrize("metadata", [
    signed("rep:2"),
    signed("customer:12347"),
    {"auth": {"user": "rep:2", "sig": sign("rep:2", "another secret")}},  # forged
    {"auth": {"user": "boss:1", "sig": sign("boss:1", SECRET)}},  # not an identity
    {"auth": {"user": "rep:2", "sig": 7}},
    {"auth": "rep:2"},
    {"telegram": {"chat_id": 5}},
    None,
    [],
])
def test_same_verdict_as_crm_ml(metadata):
    assert verified_identity(metadata, SECRET) == from_metadata(metadata, SECRET)
    assert verified_identity(metadata, "") == ANONYMOUS


def test_one_hmac_per_signature(monkeypatch):
    calls = []

    def counting_sign(user, secret):
        calls.append(user)
        return sign(user, secret)

    metadata = signed("manager:3")
    monkeypatch.setattr(crm_identity, "sign", counting_sign)
    # The policy (once per predicted action) and the broker ask about the same message.
    verdicts = {verified_identity(metadata, SECRET) for _ in range(5)}
    verdicts.add(verified_identity(dict(metadata), SECRET))
    assert verdicts == {Identity("manager", 3)}
    assert calls == ["manager:3"]
    # A new secret is a new verdict: the old one no longer holds.
    assert verified_identity(metadata, "rotated") == ANONYMOUS
    assert calls == ["manager:3", "manager:3"]
