"""Telegram end to end: the real Rasa server with bot.telegram's channel and the
real python-telegram-bot client, polling a fake Bot API server on loopback.

The fake server (tests/support/fake_telegram.py) runs in this process; Rasa
reaches it through ``TELEGRAM_BASE_URL``. A customer writes, presses buttons,
gets flood-limited, is re-sent an update, and is handed to a human agent whose
reply arrives as a Telegram message; and Telegram goes away (502s, then no
server at all) while the customer writes and the agent answers, and every
message arrives once it is back, in order, once each.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from crm_ml import loader
from crm_ml.db import migrate
from crm_ml.db import models as m
from crm_ml.db.session import get_engine
from tests.support.fake_telegram import PNG_1PX, FakeTelegram
from tests.support.retail import retail_frame
from tests.support.servers import API_TOKEN, ROOT, Stack, assistant

pytestmark = pytest.mark.e2e

SECRET = "e2e-telegram-secret"
TOKEN = "123:ABC"


def credentials_with_telegram(workdir: Path) -> Path:
    """The project's credentials.yml, with the Telegram channel added if it is not there.

    The outbox tries again at least every 2 s (30 s by default), so that the
    outage test is quick.
    """
    text = (ROOT / "credentials.yml").read_text()
    if "bot.telegram.TelegramInput:" not in text:
        text += "\n# Telegram (token and Bot API URL from the environment)\n" \
                "bot.telegram.TelegramInput:\n"
    text = text.replace("bot.telegram.TelegramInput:\n",
                        "bot.telegram.TelegramInput:\n  outbox_max_delay: 2\n", 1)
    path = workdir / "credentials.yml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake: FakeTelegram) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("telegram")
    url = f"sqlite:///{workdir / 'crm.db'}"
    migrate.upgrade(url)
    with get_engine(url).begin() as conn:
        loader.load_retail(conn, loader.prepare_retail(retail_frame()), data_hash="e2e")
    env = {"TELEGRAM_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.base_url,
           "CRM_IDENTITY_SECRET": SECRET, "CRM_SUPPORT_HOURS": "always"}
    with assistant(workdir, url, extra_env=env, console=True,
                   credentials=credentials_with_telegram(workdir)) as running:
        fake.wait_for("deleteWebhook", timeout=60)  # polling has begun
        yield running
    # Rasa stopped: polling ended cleanly and confirmed every update it handled.
    assert fake.pending() == 0
    log = (workdir / "rasa.log").read_text()
    assert TOKEN not in log, "the bot token leaked into Rasa's log"
    assert not [line for line in log.splitlines() if "ERROR" in line and "bot.telegram" in line]


def tracker(stack: Stack, sender: str, user_messages: int = 1, timeout: float = 20) -> dict:
    """The conversation once it holds ``user_messages`` user messages.

    Rasa sends the replies before it saves the tracker, so a reply can arrive
    before the tracker shows the message it answers.
    """
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{stack.rasa_url}/conversations/{sender}/tracker", timeout=30,
                      params={"token": API_TOKEN})
        r.raise_for_status()
        state = r.json()
        users = [e for e in state["events"] if e["event"] == "user"]
        if len(users) >= user_messages or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def push(stack: Stack, sender: str, message: dict) -> None:
    """Make Rasa send a bot message to ``sender`` on Telegram (Rasa's HTTP API)."""
    r = httpx.post(f"{stack.rasa_url}/conversations/{sender}/tracker/events",
                   params={"output_channel": "telegram", "execute_side_effects": "true",
                           "token": API_TOKEN},
                   json=[{"event": "bot", **message}], timeout=30)
    r.raise_for_status()


def test_a_message_gets_the_bots_answer(stack: Stack, fake: FakeTelegram) -> None:
    fake.send_text(1001, "hi", user_id=777, username="ann_shopper")
    (reply,) = fake.wait_for("sendMessage", 1001)
    assert reply.params["text"].startswith("Hello")
    assert "parse_mode" not in reply.params  # plain text: nothing to escape, nothing to break

    events = tracker(stack, "tg:1001")
    assert events["latest_input_channel"] == "telegram"
    said = events["latest_message"]
    assert said["text"] == "hi"
    assert said["metadata"]["telegram"]["user_id"] == 777
    assert said["metadata"]["telegram"]["username"] == "ann_shopper"


def test_start_command_greets(stack: Stack, fake: FakeTelegram) -> None:
    fake.send_text(1006, "/start")
    (reply,) = fake.wait_for("sendMessage", 1006)
    assert reply.params["text"].startswith("Hello")


def test_a_redelivered_update_is_answered_once(stack: Stack, fake: FakeTelegram) -> None:
    update = fake.text_update(1002, "hello")
    fake.inject(update)
    fake.inject(update)  # Telegram sends it again (same update_id)
    fake.wait_for("sendMessage", 1002)
    fake.inject(update)  # and once more, after it was confirmed
    time.sleep(2)
    assert len(fake.texts(1002)) == 1
    users = [e for e in tracker(stack, "tg:1002")["events"] if e["event"] == "user"]
    assert [e["text"] for e in users] == ["hello"]


def test_a_flood_wait_is_waited_out(stack: Stack, fake: FakeTelegram) -> None:
    fake.fail_next("sendMessage", 429, retry_after=1)
    fake.send_text(1003, "hello")
    fake.wait_for("sendMessage", 1003)
    attempts = fake.sent("sendMessage", 1003, ok_only=False)
    assert [a.status for a in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0
    assert fake.texts(1003)[0].startswith("Hello")


def test_buttons_and_a_button_press(stack: Stack, fake: FakeTelegram) -> None:
    long_payload = '/ask_recommendation{"sentiment": "neutral", "source": "telegram-menu-button"}'
    assert len(long_payload.encode()) > 64
    push(stack, "tg:1004", {"text": "What would you like to know?", "data": {"buttons": [
        {"title": "Say hello", "payload": "/greet"},
        {"title": "Ideas for me", "payload": long_payload},
    ]}})
    (menu,) = fake.wait_for("sendMessage", 1004)
    rows = menu.params["reply_markup"]["inline_keyboard"]
    data = [row[0]["callback_data"] for row in rows]
    assert data[0] == "/greet"
    assert len(data[1].encode()) <= 64 and data[1] != long_payload

    fake.press(menu, data[1])
    (answered,) = fake.wait_for("answerCallbackQuery")
    assert answered.params.get("text") is None  # the spinner stops, no warning
    replies = fake.wait_for("sendMessage", 1004, count=2)
    # the action answered from the CRM (the fixture's best seller; anonymous: no personal ideas)
    assert "REGENCY CAKESTAND" in replies[1].params["text"].upper(), replies[1].params["text"]


def test_an_image_is_sent_as_a_photo(stack: Stack, fake: FakeTelegram) -> None:
    push(stack, "tg:1007", {"text": "Here it is", "data": {"image": fake.file_url("pic.png")}})
    (photo,) = fake.wait_for("sendPhoto", 1007)
    assert list(photo.files.values()) == [("pic.png", PNG_1PX)]  # loopback: uploaded


def test_escalation_reply_arrives_on_telegram(stack: Stack, fake: FakeTelegram) -> None:
    assert stack.agent("POST", "/api/agents/heartbeat").json()["online"] >= 1
    fake.send_text(1005, "i want to talk to a human")
    (handed,) = fake.wait_for("sendMessage", 1005)
    assert "colleague" in handed.params["text"]

    inbox = stack.agent("GET", "/api/escalations").json()
    mine = next(e for e in inbox if e["sender_id"] == "tg:1005")
    assert mine["channel"] == "telegram"

    fake.send_text(1005, "are you there?")  # paused: reaches the agent, not the bot
    sent = stack.agent("POST", f"/api/escalations/{mine['id']}/reply",
                       json={"text": "Hi, I'm Sam from support <3. Looking at it now."})
    assert sent.json() == {"delivered": "pushed", "agent_name": "Agent 1"}
    got = fake.wait_for("sendMessage", 1005, count=2)
    # Marked as a person's: the agent's name before the text.
    assert got[1].params["text"] == (
        "Agent 1 (support team): Hi, I'm Sam from support <3. Looking at it now.")

    assert stack.agent("POST", f"/api/escalations/{mine['id']}/resolve").json()[
        "status"] == "resolved"
    back = fake.wait_for("sendMessage", 1005, count=4)
    assert back[2].params["text"].startswith("I'm back")
    assert back[3].params["text"].startswith("How did we do?")  # the rating, with buttons
    assert "reply_markup" in back[3].params
    assert len(fake.texts(1005)) == 4  # the bot said nothing while the agent had it

    with get_engine(f"sqlite:///{stack.workdir / 'crm.db'}").connect() as conn:
        rows = conn.execute(select(m.Interaction.direction, m.Interaction.channel,
                                   m.Interaction.text)
                            .where(m.Interaction.sender_id == "tg:1005")).all()
    assert {r.channel for r in rows} == {"telegram"}
    assert any(r.direction == "in" and r.text == "are you there?" for r in rows)


def test_webhook_route_is_closed_in_polling_mode(stack: Stack) -> None:
    base = f"{stack.rasa_url}/webhooks/telegram"
    assert httpx.get(f"{base}/", timeout=10).json() == {"status": "ok", "mode": "polling"}
    assert httpx.post(f"{base}/webhook", json={"update_id": 1}, timeout=10).status_code == 404


def test_nothing_is_lost_while_telegram_is_unreachable(stack: Stack, fake: FakeTelegram) -> None:
    """Telegram's API fails (502) while the customer asks for a human, and is gone
    altogether (connection refused) while the agent answers and hands back; once it
    is back, every message reaches the chat, in order, once each."""
    chat, sender = 1009, "tg:1009"
    assert stack.agent("POST", "/api/agents/heartbeat").json()["online"] >= 1
    fake.send_text(chat, "hi")
    (hello,) = fake.wait_for("sendMessage", chat)
    try:
        fake.outage(502)  # every Bot API call fails; updates still come in
        fake.send_text(chat, "i want to talk to a human")
        deadline = time.monotonic() + 60
        mine = None
        while mine is None and time.monotonic() < deadline:
            inbox = stack.agent("GET", "/api/escalations").json()
            mine = next((e for e in inbox if e["sender_id"] == sender), None)
            time.sleep(0.5)
        assert mine is not None, "no escalation while Telegram failed"
        tracker(stack, sender, user_messages=2)  # the turn is over and saved
        tried = fake.sent("sendMessage", chat, ok_only=False)[1:]
        assert tried and all(c.status == 502 for c in tried)  # tried, and kept

        fake.down()  # no server: connections refused
        sent = stack.agent("POST", f"/api/escalations/{mine['id']}/reply",
                           json={"text": "Hi, I'm Sam from support. Looking at it now."})
        assert sent.status_code == 200, sent.text  # accepted: waiting in the outbox
        assert stack.agent("POST", f"/api/escalations/{mine['id']}/resolve").json()[
            "status"] == "resolved"
        time.sleep(3)  # the outbox tries, and fails, meanwhile
        assert fake.texts(chat) == [hello.params["text"]]
        with get_engine(f"sqlite:///{stack.workdir / 'tracker.db'}").connect() as conn:
            waiting = conn.execute(text("SELECT count(*) FROM telegram_outbox")).scalar()
        assert waiting >= 4  # the handoff notice, the agent's reply, the return, the rating
    finally:
        fake.outage(None)
        fake.up()

    got = fake.wait_for("sendMessage", chat, count=5, timeout=90)
    texts = [c.params["text"] for c in got]
    assert "colleague" in texts[1]
    assert texts[2] == "Agent 1 (support team): Hi, I'm Sam from support. Looking at it now."
    assert texts[3].startswith("I'm back")
    assert texts[4].startswith("How did we do?")
    time.sleep(3)
    assert fake.texts(chat) == texts  # once each: nothing sent twice

    fake.send_text(chat, "hello")  # the conversation goes on, with the bot
    replies = fake.wait_for("sendMessage", chat, count=6, timeout=90)
    assert replies[5].params["text"].startswith("Hello")
    with get_engine(f"sqlite:///{stack.workdir / 'tracker.db'}").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM telegram_outbox")).scalar() == 0
