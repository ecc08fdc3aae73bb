"""The thread in the bot (bot env): notes to a waiting ticket, the rating, agent-marked replies."""

import asyncio
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered

from bot.channels import agent_label, deliver, deliver_prompt
from bot.policy import NOTE_ACTION, RATE_ACTION, thread_action


def said(text: str, intent: str, confidence: float = 0.95, entities=None) -> UserUttered:
    return UserUttered(text, intent={"name": intent, "confidence": confidence},
                       entities=entities or [])


class _Tracker:
    def __init__(self, slots: Dict[str, Any], channel: str = "rest") -> None:
        self.slots = dict(slots)
        self.sender_id = "web:abc"
        self.events: List[Any] = []
        self.channel = channel

    def get_slot(self, name: str) -> Any:
        return self.slots.get(name)

    def get_latest_input_channel(self) -> str:
        return self.channel

    def update(self, event: Any) -> None:
        self.events.append(event)
        if isinstance(event, SlotSet):
            self.slots[event.key] = event.value


@pytest.mark.parametrize("message,expected", [
    (said("ok thanks Sam. when will it arrive then?", "thank"), NOTE_ACTION),
    (said("asdfgh", "nlu_fallback", 0.3), NOTE_ACTION),
    (said("where is my order", "track_order"), NOTE_ACTION),  # no number: for the agent
    (said("where is order 536365", "track_order",
          entities=[{"entity": "order_id", "value": "536365"}]), None),
    (said("do you sell gift cards", "ask_gift_card"), None),
    (said("do you sell gift cards", "ask_gift_card", 0.5), NOTE_ACTION),  # not sure
])
def test_a_waiting_ticket_takes_what_the_bot_cannot_answer_for_sure(message, expected):
    assert thread_action(_Tracker({"thread_ticket": 12}), message) == expected


def test_without_a_ticket_the_bot_answers_as_usual():
    assert thread_action(_Tracker({}), said("hello there", "greet")) is None
    assert thread_action(_Tracker({}), said("4", "inform")) is None  # no rating asked


@pytest.mark.parametrize("text", ["4", " 5 ", "3/5", "2 out of 5", "five", "1."])
def test_a_rating_after_the_resolve_goes_to_the_rating_action(text):
    assert thread_action(_Tracker({"rating_pending": True}), said(text, "inform")) == RATE_ACTION


@pytest.mark.parametrize("text", ["6", "0", "45", "four stars please"])
def test_other_answers_are_not_a_rating(text):
    assert thread_action(_Tracker({"rating_pending": True}), said(text, "inform")) is None


class _Output:
    def __init__(self) -> None:
        self.sent: List[Any] = []

    async def send_text_message(self, recipient: str, text: str) -> None:
        self.sent.append(("text", text))

    async def send_custom_json(self, recipient: str, message: Dict[str, Any]) -> None:
        self.sent.append(("json", message))

    async def send_text_with_buttons(self, recipient: str, text: str, buttons: list) -> None:
        self.sent.append(("buttons", text, [b["payload"] for b in buttons]))


def _app(name: str, output: _Output) -> Any:
    channel = SimpleNamespace(name=lambda: name, get_output_channel=lambda: output)
    domain = SimpleNamespace(responses={"utter_rating_ask": [
        {"text": "Rate us 1-5", "buttons": [{"title": str(i), "payload": str(i)}
                                             for i in range(1, 6)]},
        {"channel": "twilio_voice", "text": "Press a digit from 1 to 5."}]})
    return SimpleNamespace(ctx=SimpleNamespace(input_channels=[channel],
                                               agent=SimpleNamespace(domain=domain)))


def test_the_web_chat_gets_the_agents_name_for_its_own_bubble():
    output = _Output()
    tracker = _Tracker({}, channel="socketio")
    meta = {"agent": "agent:3", "agent_name": "Sam Carter"}
    assert asyncio.run(deliver(_app("socketio", output), tracker, "On its way", meta)) == "pushed"
    assert output.sent == [("json", {"text": "On its way", "agent": "Sam Carter"})]
    assert isinstance(tracker.events[0], BotUttered)
    assert tracker.events[0].metadata["agent_name"] == "Sam Carter"


def test_telegram_and_rest_get_the_name_before_the_text():
    output = _Output()
    meta = {"agent": "agent:3", "agent_name": "Sam Carter"}
    asyncio.run(deliver(_app("telegram", output), _Tracker({}, "telegram"), "Hi", meta))
    assert output.sent == [("text", "Sam Carter (support team): Hi")]
    rest = _Tracker({}, channel="rest")  # REST cannot push: the outbox, marked
    assert asyncio.run(deliver(_app("rest", _Output()), rest, "Hi", meta)) == "queued"
    assert rest.slots["handoff_outbox"][0]["text"] == "Sam Carter (support team): Hi"
    assert rest.slots["handoff_outbox"][0]["agent_name"] == "Sam Carter"
    assert agent_label("  ") == "Support team"


def test_the_rating_prompt_has_buttons_on_web_and_asks_for_a_digit_by_voice():
    web = _Output()
    asyncio.run(deliver_prompt(_app("socketio", web), _Tracker({}, "socketio"),
                               "utter_rating_ask", {}))
    assert web.sent == [("buttons", "Rate us 1-5", ["1", "2", "3", "4", "5"])]
    voice = _Output()
    asyncio.run(deliver_prompt(_app("twilio_voice", voice), _Tracker({}, "twilio_voice"),
                               "utter_rating_ask", {}))
    assert voice.sent == [("text", "Press a digit from 1 to 5.")]
    rest = _Tracker({}, channel="rest")
    asyncio.run(deliver_prompt(_app("rest", _Output()), rest, "utter_rating_ask", {}))
    assert [b["payload"] for b in rest.slots["handoff_outbox"][0]["buttons"]] == list("12345")


def test_the_answer_to_the_email_question_goes_to_the_contact_action():
    from bot.policy import CONTACT_ACTION

    pending = _Tracker({"contact_pending": {"reason": "asked for a human", "tries": 0}})
    assert thread_action(pending, said("me@example.com", "inform")) == CONTACT_ACTION
    assert thread_action(pending, said("no", "deny")) == CONTACT_ACTION
