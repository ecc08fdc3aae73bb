"""The Twilio Voice channel (bot env): speech cleanup, TwiML, form and signature
checks, and one call's turns with a stand-in for Rasa."""

import asyncio
import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from types import SimpleNamespace
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException

from bot import voice
from bot.voice import (
    CRMTwilioVoiceInput,
    VoiceOutput,
    build_twiml,
    parse_call,
    speakable,
    split_for_say,
    spoken_options,
    turn_names,
    twilio_signature,
)

CALL = "CA" + "0123456789abcdef" * 2

# -- speech cleanup ------------------------------------------------------------


@pytest.mark.parametrize("text, spoken", [
    ("Hello! I'm the shop's assistant.", "Hello! I'm the shop's assistant."),
    ("**Great** news 🎉, your order *shipped* 📦", "Great news, your order shipped."),
    ("Track it at https://www.shop.example.com/track?id=1.", "Track it at shop.example.com."),
    ("See [our policy](https://shop.example.com/returns) for details",
     "See our policy for details."),
    ("# Hot leads\n- Acme, 91%\n- Globex, 80%\n", "Hot leads. Acme, 91%. Globex, 80%."),
    ("1. first\n2) second", "first. second."),
    ("Pay by card, e.g. Visa, i.e. a credit card, etc.",
     "Pay by card, for example Visa, that is a credit card, and so on."),
    ("Refunds & returns -> 14 days", "Refunds and returns to 14 days."),
    ("Use `ORDER123` now", "Use ORDER123 now."),
    ("Line one\n\nLine two!", "Line one. Line two!"),
    ("snake_case and 2*3*4 stay", "snake_case and 2*3*4 stay."),
    ("👍", ""),
    ("", ""),
    (None, ""),
])
def test_speakable(text: str | None, spoken: str) -> None:
    assert speakable(text) == spoken


def test_flags_and_joined_emoji_vanish() -> None:
    assert speakable("Shipped to 🇬🇧 by 👩\u200d💻 today ✅") == "Shipped to by today."


def test_buttons_become_spoken_options() -> None:
    assert spoken_options([{"title": "Yes", "payload": "/affirm"},
                           {"title": "No 👎", "payload": "/deny"},
                           {"title": "**Later**", "payload": "/later"}]) \
        == "Say one of: Yes, No or Later."
    assert spoken_options([{"title": "Talk to a person"}]) == "You can say: Talk to a person."
    assert spoken_options([{"title": "Yes"}, {"title": "yes"}]) == "You can say: Yes."
    assert spoken_options([]) == ""


def test_long_text_is_split_at_sentences() -> None:
    text = "This sentence is about your delivery. " * 200
    pieces = split_for_say(text, limit=500)
    assert all(len(p) <= 500 for p in pieces)
    assert all(p.endswith(".") for p in pieces)
    assert " ".join(pieces).split() == text.split()


# -- TwiML ---------------------------------------------------------------------


def parse(twiml: str) -> ET.Element:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return root


def test_turn_is_spoken_inside_a_speech_gather() -> None:
    root = parse(build_twiml(["Hello & welcome.", "How can I help?"], voice="Polly.Amy-Neural",
                             language="en-GB", speech_timeout="auto",
                             speech_model="numbers_and_commands"))
    (gather,) = list(root)
    assert gather.tag == "Gather"
    assert gather.get("input") == "speech"
    assert gather.get("action") == "/webhooks/twilio_voice/webhook"
    assert gather.get("actionOnEmptyResult") == "true"
    assert gather.get("language") == "en-GB"
    assert gather.get("speechTimeout") == "auto"
    says = gather.findall("Say")
    assert [s.text for s in says] == ["Hello & welcome.", "How can I help?"]
    assert {s.get("voice") for s in says} == {"Polly.Amy-Neural"}
    assert [c.tag for c in gather] == ["Say", "Pause", "Say"]


def test_hangup_says_then_hangs_up() -> None:
    root = parse(build_twiml(["Your ticket number is 7.", "Goodbye."], hangup=True))
    assert [c.tag for c in root] == ["Say", "Pause", "Say", "Hangup"]
    assert root.find("Gather") is None


def test_text_is_xml_escaped() -> None:
    root = parse(build_twiml(["<Hangup/> & </Say>"]))
    assert root.find("Gather/Say").text == "<Hangup/> & </Say>"
    assert root.find("Hangup") is None


# -- form and signature --------------------------------------------------------


def test_form_is_checked() -> None:
    call = parse_call({"CallSid": CALL, "SpeechResult": "  track my order\x00 ",
                       "Confidence": "0.91", "CallStatus": "in-progress",
                       "From": "+447700900123"}, {"silence": "1"})
    assert call.sender_id == f"voice:{CALL}"
    assert call.speech == "track my order"
    assert call.confidence == pytest.approx(0.91)
    assert call.silences == 1 and call.status == "in-progress"
    assert "447700900123" not in repr(call)
    assert parse_call({"CallSid": CALL, "SpeechResult": "  "}, {}).speech is None
    assert parse_call({"CallSid": CALL}, {"silence": "lots"}).silences == 0
    for bad in ({}, {"CallSid": ""}, {"CallSid": "CA../../x"}, {"From": "+1555"}):
        with pytest.raises(ValueError, match="CallSid"):
            parse_call(bad, {})


def test_signature_is_twilios_scheme() -> None:
    """HMAC-SHA1 of the URL followed by each parameter's name and value, sorted by name."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"To": "+18005551212", "CallSid": "CA1234567890ABCDE", "Digits": "1234",
              "From": "+12349013030", "Caller": "+12349013030"}
    data = url + "".join(k + params[k] for k in sorted(params))
    expected = base64.b64encode(hmac.new(b"12345", data.encode(), hashlib.sha1).digest())
    assert twilio_signature("12345", url, params) == expected.decode()


class FakeRequest(SimpleNamespace):
    pass


def request(form: dict[str, str], signature: str | None = None,
            url: str = "http://127.0.0.1:5005/webhooks/twilio_voice/webhook",
            path: str = "/webhooks/twilio_voice/webhook", query: str = "") -> FakeRequest:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    return FakeRequest(form=form, headers=headers, url=url, path=path, query_string=query)


def test_signature_checked_only_with_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    form = {"CallSid": CALL, "SpeechResult": "hi"}
    url = "http://127.0.0.1:5005/webhooks/twilio_voice/webhook"
    channel = CRMTwilioVoiceInput.from_credentials({})
    monkeypatch.setattr(voice, "get_settings", lambda: SimpleNamespace())  # no setting yet
    assert channel.signature_ok(request(form))

    monkeypatch.setattr(voice, "get_settings",
                        lambda: SimpleNamespace(twilio_auth_token="tok"))
    good = twilio_signature("tok", url, form)
    assert channel.signature_ok(request(form, good))
    assert not channel.signature_ok(request(form))
    assert not channel.signature_ok(request(form, twilio_signature("other", url, form)))
    assert not channel.signature_ok(request({**form, "SpeechResult": "bye"}, good))


def test_public_url_is_what_twilio_signed() -> None:
    form = {"CallSid": CALL}
    public = "https://bot.example.com/webhooks/twilio_voice/webhook?silence=1"
    channel = CRMTwilioVoiceInput.from_credentials(
        {"auth_token": "tok", "public_url": "https://bot.example.com/"})
    req = request(form, twilio_signature("tok", public, form),
                  url="http://10.0.0.5:5005/webhooks/twilio_voice/webhook?silence=1",
                  query="silence=1")
    assert channel.signature_ok(req)


def test_credentials() -> None:
    channel = CRMTwilioVoiceInput.from_credentials({
        "assistant_voice": "Polly.Amy-Neural", "language": "en-GB", "speech_timeout": "auto",
        "speech_model": "numbers_and_commands", "max_silences": 3})
    assert channel.name() == "twilio_voice"
    assert channel.get_output_channel() is None  # a call cannot be pushed to later
    assert channel.max_silences == 3 and channel.language == "en-GB"
    with pytest.raises(InvalidConfigException):
        CRMTwilioVoiceInput.from_credentials({"assistant_voice": "robot"})


# -- output channel ------------------------------------------------------------


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_output_speaks_text_buttons_and_images() -> None:
    out = VoiceOutput()
    run(out.send_response("voice:1", {"text": "Revenue forecast: **£1,200**.",
                                      "utter_action": None}))
    run(out.send_response("voice:1", {"image": "http://127.0.0.1:8000/charts/forecast.png"}))
    run(out.send_response("voice:1", {"image": "http://127.0.0.1:8000/charts/forecast.png"}))
    run(out.send_response("voice:1", {"text": "Anything else?",
                                      "buttons": [{"title": "Yes"}, {"title": "No"}]}))
    run(out.send_response("voice:1", {"custom": {"blocks": []}}))
    assert out.spoken == ["Revenue forecast: £1,200.", "You can see the chart in the console.",
                          "Anything else? Say one of: Yes or No."]
    assert all("sent" not in s and "screen" not in s for s in out.spoken)


def test_output_uses_phone_wording_for_a_live_handoff() -> None:
    out = VoiceOutput()
    run(out.send_response("voice:1", {"text": "They'll answer here.",
                                      "utter_action": "utter_handoff_live"}))
    assert out.spoken == [voice.LIVE_HANDOFF_PHRASE]
    assert out.utter_actions == ["utter_handoff_live"]


# -- one call, with a stand-in for Rasa ------------------------------------------


class FakeRasa:
    """Keeps trackers and answers like a tiny bot."""

    def __init__(self, replies: dict[str, list[dict[str, Any]]],
                 pause_on: str | None = None) -> None:
        self.trackers: dict[str, DialogueStateTracker] = {}
        self.replies = replies
        self.pause_on = pause_on
        self.received: list[UserMessage] = []
        store = SimpleNamespace(retrieve=self.retrieve)
        self.app = SimpleNamespace(ctx=SimpleNamespace(agent=SimpleNamespace(tracker_store=store)))

    async def retrieve(self, sender: str) -> DialogueStateTracker | None:
        return self.trackers.get(sender)

    async def on_new_message(self, message: UserMessage) -> None:
        self.received.append(message)
        tracker = self.trackers.setdefault(
            message.sender_id, DialogueStateTracker(message.sender_id, []))
        tracker.update(UserUttered(message.text))
        for reply in self.replies.get(message.text, [{"text": "I don't know."}]):
            utter = reply.get("utter_action")
            if utter:
                tracker.update(ActionExecuted(utter))
            tracker.update(BotUttered(reply.get("text"), metadata=(
                {"utter_action": utter} if utter else {})))
            await message.output_channel.send_response(message.sender_id, dict(reply))
        if message.text == self.pause_on:
            tracker.update(ConversationPaused())
        tracker.update(ActionExecuted("action_listen"))


REPLIES = {
    "hello": [{"text": "Hello! I'm the shop's assistant 🙂", "utter_action": "utter_greet"}],
    "how many customers": [{"text": "We have **4 customers** in the CRM."}],
    "bye": [{"text": "Goodbye, and thank you for getting in touch.",
             "utter_action": "utter_goodbye"}],
    "human": [{"text": "I've asked a colleague to get back to you: your ticket number is 3.",
               "utter_action": "utter_handoff_ticket"}],
    "agent now": [{"text": "I'm passing you to a colleague now. They'll answer here.",
                   "utter_action": "utter_handoff_live"}],
}


def turn(channel: CRMTwilioVoiceInput, rasa: FakeRasa, speech: str | None = None,
         silences: int = 0, status: str = "in-progress") -> ET.Element:
    form = {"CallSid": CALL, "From": "+447700900123", "CallStatus": status}
    if speech is not None:
        form["SpeechResult"] = speech
    call = parse_call(form, {"silence": str(silences)})
    return parse(run(channel.handle_call(rasa.app, call, rasa.on_new_message)))


def says(root: ET.Element) -> list[str]:
    return [s.text for s in root.iter("Say")]


def test_a_call_from_greeting_to_goodbye() -> None:
    channel, rasa = CRMTwilioVoiceInput.from_credentials({}), FakeRasa(REPLIES)
    first = turn(channel, rasa, status="ringing")
    assert says(first) == ["Hello! I'm the shop's assistant."]
    assert first.find("Gather").get("input") == "speech"
    message = rasa.received[0]
    assert message.text == "hello" and message.sender_id == f"voice:{CALL}"
    assert message.input_channel == "twilio_voice"
    assert "447700900123" not in repr(message.metadata)

    answer = turn(channel, rasa, "how many customers")
    assert says(answer) == ["We have 4 customers in the CRM."]
    assert answer.find("Hangup") is None

    bye = turn(channel, rasa, "bye")
    assert says(bye) == ["Goodbye, and thank you for getting in touch."]  # no second goodbye
    assert bye.find("Hangup") is not None and bye.find("Gather") is None


def test_silence_reprompts_once_then_hangs_up() -> None:
    channel, rasa = CRMTwilioVoiceInput.from_credentials({}), FakeRasa(REPLIES)
    turn(channel, rasa, "how many customers")
    again = turn(channel, rasa)  # the Gather heard nothing
    assert says(again) == [voice.SILENCE_PHRASE, "We have 4 customers in the CRM."]
    assert again.find("Gather").get("action") == "/webhooks/twilio_voice/webhook?silence=1"
    assert len(rasa.received) == 1  # silence is not a message to the bot
    gone = turn(channel, rasa, silences=1)
    assert says(gone) == [voice.SILENCE_GOODBYE]
    assert gone.find("Hangup") is not None
    # Speaking again resets the count.
    assert turn(channel, rasa, "hello").find("Gather").get("action") \
        == "/webhooks/twilio_voice/webhook"


def test_an_escalation_ends_the_call_with_the_ticket() -> None:
    channel, rasa = CRMTwilioVoiceInput.from_credentials({}), FakeRasa(REPLIES)
    root = turn(channel, rasa, "human")
    assert says(root) == ["I've asked a colleague to get back to you: your ticket number is 3.",
                          voice.CLOSING_PHRASE]
    assert root.find("Hangup") is not None


def test_a_live_handoff_ends_the_call_with_a_callback_promise() -> None:
    channel, rasa = CRMTwilioVoiceInput.from_credentials({}), FakeRasa(REPLIES, "agent now")
    root = turn(channel, rasa, "agent now")
    assert says(root) == [voice.LIVE_HANDOFF_PHRASE, voice.CLOSING_PHRASE]
    assert all("answer here" not in s for s in says(root))
    assert root.find("Hangup") is not None
    assert turn_names(rasa.trackers[f"voice:{CALL}"]) == ["action_listen", "utter_handoff_live",
                                                          "utter_handoff_live"]


def test_a_failed_turn_is_answered_politely() -> None:
    channel, rasa = CRMTwilioVoiceInput.from_credentials({}), FakeRasa(REPLIES)

    async def broken(message: UserMessage) -> None:
        raise RuntimeError("boom")

    call = parse_call({"CallSid": CALL, "SpeechResult": "hi"}, {})
    root = parse(run(channel.handle_call(rasa.app, call, broken)))
    assert says(root) == [voice.ERROR_PHRASE]
    assert root.find("Gather") is not None
