"""Phone calls end to end: Twilio's Voice webhook -> Rasa 3.6.21 with bot.voice's
``twilio_voice`` channel -> action server -> CRM -> TwiML.

The test plays Twilio: it posts the signed webhook form Twilio posts during a
call and reads the TwiML that comes back. A call is greeted, answered from the
CRM, reprompted on silence, and escalated to a ticket (a human cannot join the
call), after which an agent's reply is kept for the callback, not pushed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from crm_ml.db import models as m
from crm_ml.db.session import get_engine
from tests.support.retail import retail_crm
from tests.support.servers import API_TOKEN, Stack, assistant, eventually

pytestmark = pytest.mark.e2e

AUTH_TOKEN = "e2e-twilio-token"
SECRET = "e2e-voice-secret"
CALLER = "+447700900123"
PATH = "/webhooks/twilio_voice/webhook"
# Callers are anonymous, so a question they may ask that the CRM answers: the best
# sellers of the fixture's last 90 days of sales (net of its cancellation note).
ASK = "can you recommend something"
BEST_SELLERS = ("Our best sellers right now are: White hanging heart t-light holder at £2.55, "
                "White metal lantern at £3.39 and Regency cakestand 3 tier at £12.75.")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("voice")
    url = retail_crm(workdir)
    # Support "always" open, nobody at the console: an escalation becomes a ticket.
    env = {"CRM_IDENTITY_SECRET": SECRET, "CRM_SUPPORT_HOURS": "always",
           "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    with assistant(workdir, url, extra_env=env) as running:
        yield running
    for log in ("rasa.log", "actions.log"):
        text = (workdir / log).read_text()
        assert CALLER not in text and CALLER[1:] not in text, f"caller's number in {log}"


def sign(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the URL and the sorted form fields."""
    data = url + "".join(k + form[k] for k in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def new_call() -> str:
    return "CA" + uuid.uuid4().hex


def post(stack: Stack, call_sid: str | None, speech: str | None = None, *,
         status: str = "in-progress", query: str = "", signed: bool = True) -> httpx.Response:
    """What Twilio posts during a call (speech recognised, or nothing heard)."""
    form = {"AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "Direction": "inbound",
            "From": CALLER, "Caller": CALLER, "To": "+442071838750", "CallStatus": status}
    if call_sid is not None:
        form["CallSid"] = call_sid
    if speech is not None:
        form.update(SpeechResult=speech, Confidence="0.93")
    url = f"{stack.rasa_url}{PATH}{query}"
    headers = {"X-Twilio-Signature": sign(url, form)} if signed else {}
    return httpx.post(url, data=form, headers=headers, timeout=60)


def twiml(r: httpx.Response) -> ET.Element:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(r.text)
    assert root.tag == "Response"
    return root


def said(root: ET.Element) -> str:
    return " ".join(s.text or "" for s in root.iter("Say"))


def listens(root: ET.Element) -> ET.Element:
    gather = root.find("Gather")
    assert gather is not None, ET.tostring(root)
    assert gather.get("input") == "speech"
    assert gather.get("language") == "en-GB"
    assert gather.get("action", "").startswith(PATH)
    assert root.find("Hangup") is None
    assert all(s.get("voice") == "Polly.Amy-Neural" for s in root.iter("Say"))
    return gather


def test_a_call_is_greeted_and_answered_from_the_crm(stack: Stack) -> None:
    sid = new_call()
    first = twiml(post(stack, sid, status="ringing"))  # the call was just answered
    listens(first)
    assert "Hello" in said(first) and "assistant" in said(first)

    answer = twiml(post(stack, sid, ASK))
    listens(answer)
    assert said(answer) == BEST_SELLERS, said(answer)

    hi = twiml(post(stack, sid, "hi"))
    listens(hi)
    assert said(hi).startswith("Hello")

    state = httpx.get(f"{stack.rasa_url}/conversations/voice:{sid}/tracker", timeout=30,
                      params={"token": API_TOKEN}).json()
    assert state["latest_input_channel"] == "twilio_voice"
    assert CALLER not in json.dumps(state)  # the caller's number is kept nowhere
    def stored() -> list:
        with get_engine(f"sqlite:///{stack.workdir / 'crm.db'}").connect() as conn:
            rows = conn.execute(select(m.Interaction.channel, m.Interaction.direction)
                                .where(m.Interaction.sender_id == f"voice:{sid}")).all()
        return rows if {r.direction for r in rows} == {"in", "out"} else []

    rows = eventually(stored)  # the event broker writes from a queue
    assert {r.channel for r in rows} == {"voice"}
    assert {r.direction for r in rows} == {"in", "out"}


def test_silence_is_reprompted_then_the_call_ends(stack: Stack) -> None:
    sid = new_call()
    assert said(twiml(post(stack, sid, ASK))) == BEST_SELLERS
    again = twiml(post(stack, sid))  # the Gather heard nothing
    gather = listens(again)
    assert gather.get("action") == f"{PATH}?silence=1"
    assert "didn't catch that" in said(again) and BEST_SELLERS in said(again)
    gone = twiml(post(stack, sid, query="?silence=1"))
    assert gone.find("Hangup") is not None and gone.find("Gather") is None
    assert "Goodbye" in said(gone)


def test_an_escalation_by_phone_becomes_a_ticket(stack: Stack) -> None:
    sid = new_call()
    sender = f"voice:{sid}"
    twiml(post(stack, sid, status="ringing"))
    root = twiml(post(stack, sid, "i want to talk to a human"))
    text = said(root)
    assert "ticket number" in text and "within 4 hours" in text, text
    assert text.rstrip().endswith("Goodbye.")
    assert root.find("Hangup") is not None and root.find("Gather") is None

    crm = get_engine(f"sqlite:///{stack.workdir / 'crm.db'}")
    with crm.connect() as conn:
        esc = conn.execute(select(m.Escalation).where(m.Escalation.sender_id == sender)).one()
        tickets = conn.execute(select(m.Ticket.kind).where(m.Ticket.sender_id == sender))
        assert list(tickets.scalars()) == ["handoff"]
    assert esc.channel == "voice" and esc.status == "ticket"

    # The agent answers from the console: a call cannot be pushed to, so the reply is
    # kept with the conversation for the callback.
    body = json.dumps({"sender_id": sender, "text": "We'll call you back at 3 pm.",
                       "agent": "agent:1"}).encode()
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = httpx.post(f"{stack.rasa_url}/webhooks/handoff/reply", content=body,
                   headers={"X-CRM-Signature": sig, "Content-Type": "application/json"},
                   timeout=30)
    assert r.json() == {"status": "queued"}
    def kinds() -> list:
        with crm.connect() as conn:
            return list(conn.execute(select(m.Interaction.kind).where(
                m.Interaction.sender_id == sender, m.Interaction.direction == "out",
                m.Interaction.text == "We'll call you back at 3 pm.")).scalars())

    assert eventually(kinds) == ["agent"]  # the event broker writes from a queue


def test_bad_requests_are_refused(stack: Stack) -> None:
    missing = post(stack, None, "hello")
    assert missing.status_code == 400 and "CallSid" in missing.json()["reason"]
    assert post(stack, new_call(), "hello", signed=False).status_code == 403
    forged = httpx.post(f"{stack.rasa_url}{PATH}", data={"CallSid": new_call()},
                        headers={"X-Twilio-Signature": "AAAA"}, timeout=30)
    assert forged.status_code == 403
    ended = twiml(post(stack, new_call(), status="completed"))  # a status callback
    assert list(ended) == []
