"""The Telegram channel (bot env): splitting, callback data, retries, the output
channel against a fake Bot API server, and the input channel's polling and
webhook modes with a stand-in for Rasa."""

import asyncio
import json
import time

import pytest
from rasa.core.channels.channel import UserMessage

from bot import telegram as tg
from bot.telegram import _sender
from bot.telegram import (
    CallbackRegistry,
    RecentIds,
    TelegramConfig,
    TelegramDeliveryError,
    TelegramInput,
    TelegramOutput,
    chat_id_of,
    command_to_text,
    is_public_url,
    make_bot,
    split_text,
    utf16_len,
)
from crm_ml.config import get_settings
from tests.support.fake_telegram import PNG_1PX, FakeTelegram

# -- pure helpers -------------------------------------------------------------


def test_short_text_is_one_message():
    assert split_text("Hello there.") == ["Hello there."]
    assert split_text("   ") == []
    assert split_text("") == []


def test_long_text_splits_at_paragraphs_first():
    para = "word " * 150  # 750 characters
    text = "\n\n".join([para.strip()] * 8)  # about 6000 characters
    chunks = split_text(text)
    assert len(chunks) == 2
    assert all(utf16_len(c) <= 4096 for c in chunks)
    assert all(c.endswith("word") for c in chunks)  # cut between paragraphs, not inside
    assert " ".join(chunks).split() == text.split()


def test_long_paragraph_splits_at_sentences():
    sentence = "This is a sentence about your order and its delivery. "
    text = sentence * 120  # one paragraph, about 6600 characters
    chunks = split_text(text)
    assert len(chunks) == 2
    assert chunks[0].endswith("delivery.")
    assert " ".join(chunks).split() == text.split()


def test_a_word_longer_than_the_limit_is_cut():
    chunks = split_text("x" * 10000)
    assert [len(c) for c in chunks] == [4096, 4096, 1808]


def test_emoji_count_double_and_are_not_cut_in_half():
    text = "\U0001F600" * 3000  # 6000 UTF-16 code units
    chunks = split_text(text)
    assert all(utf16_len(c) <= 4096 for c in chunks)
    assert "".join(chunks) == text


def test_small_limits_keep_every_word():
    text = "One. Two three four! Five six?\nSeven eight nine ten.\n\nEleven twelve."
    for limit in (8, 12, 20, 40):  # the longest word has 7 characters
        chunks = split_text(text, limit)
        assert all(utf16_len(c) <= limit for c in chunks)
        assert " ".join(chunks).split() == text.split()


def test_sender_ids():
    assert chat_id_of("tg:12345") == 12345
    assert chat_id_of("tg:-1001234") == -1001234
    for bad in ("web:1", "12345", "tg:abc"):
        with pytest.raises(ValueError):
            chat_id_of(bad)


@pytest.mark.parametrize("typed,expected", [
    ("/start", "/greet"),
    ("/start@crm_test_bot", "/greet"),
    ("/start some-deep-link", "/greet"),
    ('/contact_human_agent{"sentiment": "positive"}',
     'contact human agent{"sentiment": "positive"}'),
    ("/help me", "help me"),
    ("hello", "hello"),
])
def test_typed_commands_cannot_inject_intents(typed, expected):
    assert command_to_text(typed) == expected


@pytest.mark.parametrize("url,public", [
    ("https://example.com/a.png", True),
    ("http://cdn.shop.example.org/x/y.jpg?v=2", True),
    ("http://127.0.0.1:8000/static/a.png", False),
    ("http://localhost/a.png", False),
    ("http://10.1.2.3/a.png", False),
    ("http://192.168.0.7/a.png", False),
    ("http://[::1]/a.png", False),
    ("http://console:8000/a.png", False),
    ("http://printer.local/a.png", False),
    ("ftp://example.com/a.png", False),
    ("file:///etc/passwd", False),
])
def test_public_urls(url, public):
    assert is_public_url(url) is public


def test_callback_data_fits_telegram_limit():
    reg = CallbackRegistry(capacity=3)
    assert reg.encode("/greet") == "/greet"  # short payloads go as they are
    long_payload = '/inform{"product": "' + "x" * 100 + '"}'
    data = reg.encode(long_payload)
    assert len(data.encode()) <= 64 and data.startswith("~")
    assert reg.encode(long_payload) == data  # stable
    assert reg.decode(data) == long_payload
    assert reg.decode("/greet") == "/greet"
    tilde = reg.encode("~looks like a key")
    assert tilde != "~looks like a key" and reg.decode(tilde) == "~looks like a key"
    multibyte = "ü" * 40  # 80 bytes in UTF-8
    assert len(reg.encode(multibyte).encode()) <= 64
    for i in range(3):
        reg.encode(f"{i}" * 70)
    assert len(reg) == 3
    assert reg.decode(data) is None  # evicted: the least recently used went first
    assert reg.decode("~unknown") is None


def test_recent_update_ids_are_bounded():
    seen = RecentIds(capacity=2)
    assert seen.first_time(1) and seen.first_time(2)
    assert not seen.first_time(1)
    assert seen.first_time(3)  # evicts 2, the least recently seen
    assert seen.first_time(2)


def test_config_and_inert_channel(monkeypatch):
    monkeypatch.delenv("TELEGRAM_TOKEN", raising=False)
    get_settings.cache_clear()
    try:
        channel = TelegramInput.from_credentials(None)
    finally:
        get_settings.cache_clear()
    assert channel.config.mode == "off"
    assert channel.get_output_channel() is None
    hook = channel.blueprint(lambda message: None)
    assert not hook._future_listeners  # nothing starts with the server
    channel.start()
    assert channel.updater._runner is None
    assert asyncio.run(channel.receive_webhook({}, b"{}")) == 404

    config = TelegramConfig.resolve({"token": "1:X", "base_url": "http://127.0.0.1:9/bot",
                                     "webhook_url": "https://bot.example.com/webhooks/"
                                     "telegram/webhook", "secret_token": None})
    assert config.mode == "webhook"
    assert config.base_file_url == "http://127.0.0.1:9/file/bot"
    assert len(config.webhook_secret) >= 32 and config.webhook_secret.isalnum()
    assert TelegramConfig(token="1:X").mode == "polling"


def test_token_is_redacted_from_http_logs(caplog):
    make_bot(TelegramConfig(token="999:SECRET"))
    import logging

    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info("HTTP Request: POST %s", "https://x/bot999:SECRET/getMe")
    assert "999:SECRET" not in caplog.text and "<token>" in caplog.text


# -- the output channel against the fake Bot API --------------------------------


@pytest.fixture
def fake():
    with FakeTelegram() as server:
        yield server


def output(fake, **kwargs) -> TelegramOutput:
    config = TelegramConfig(token=fake.token, base_url=fake.base_url, max_attempts=3)
    return TelegramOutput(make_bot(config), CallbackRegistry(), config, **kwargs)


def run(coro):
    return asyncio.run(coro)


def test_text_is_sent_verbatim_without_parse_mode(fake):
    text = "Your <b>order</b> *#12_345* costs 5 < 7 & more [link](x)"
    run(output(fake).send_text_message("tg:77", text))
    (call,) = fake.sent("sendMessage", 77)
    assert call.params["text"] == text
    assert "parse_mode" not in call.params


def test_long_replies_arrive_in_order(fake):
    text = "\n\n".join(f"Paragraph {i}. " + "blah " * 300 for i in range(4))
    run(output(fake).send_text_message("tg:77", text))
    texts = fake.texts(77)
    assert len(texts) >= 2 and all(len(t) <= 4096 for t in texts)
    assert all(t.startswith("Paragraph") for t in texts)  # split between paragraphs
    assert " ".join(texts).split() == text.split()  # all of it, in order


def test_buttons_become_an_inline_keyboard(fake):
    long_payload = '/choose{"option": "' + "a-very-long-product-name-" * 4 + '"}'
    out = output(fake)
    run(out.send_text_with_buttons("tg:5", "Pick one", [
        {"title": "Yes", "payload": "/affirm"},
        {"title": "That product", "payload": long_payload},
        {"title": "Our site", "url": "https://example.com"},
    ]))
    (call,) = fake.sent("sendMessage", 5)
    rows = call.params["reply_markup"]["inline_keyboard"]
    assert [r[0]["text"] for r in rows] == ["Yes", "That product", "Our site"]
    assert rows[0][0]["callback_data"] == "/affirm"
    short = rows[1][0]["callback_data"]
    assert len(short.encode()) <= 64 and out.callbacks.decode(short) == long_payload
    assert rows[2][0]["url"] == "https://example.com"


def test_loopback_image_is_downloaded_and_uploaded(fake):
    run(output(fake).send_image_url("tg:9", fake.file_url("pic.png")))
    (call,) = fake.sent("sendPhoto", 9)
    assert list(call.files.values()) == [("pic.png", PNG_1PX)]


def test_public_image_is_sent_by_url(fake):
    run(output(fake).send_image_url("tg:9", "https://cdn.example.com/p.png"))
    (call,) = fake.sent("sendPhoto", 9)
    assert call.params["photo"] == "https://cdn.example.com/p.png" and not call.files


def test_image_telegram_cannot_fetch_is_uploaded(fake, monkeypatch):
    async def fake_download(url, limit=0):
        return PNG_1PX

    monkeypatch.setattr(_sender, "download", fake_download)
    fake.fail_next("sendPhoto", 400, description="Bad Request: failed to get HTTP URL content")
    run(output(fake).send_image_url("tg:9", "https://cdn.example.com/private.png"))
    (call,) = fake.sent("sendPhoto", 9)
    assert call.files["photo"][1] == PNG_1PX


def test_custom_json(fake):
    out = output(fake)
    run(out.send_custom_json("tg:3", {"method": "sendLocation", "latitude": 51.5,
                                      "longitude": -0.12, "chat_id": 999}))
    run(out.send_custom_json("tg:3", {"telegram": {"text": "plain"}}))
    run(out.send_custom_json("tg:3", {"whatever": 1}))  # nothing Telegram can show
    assert [c.method for c in fake.sent(chat_id=3)] == ["sendLocation", "sendMessage"]
    assert fake.sent(chat_id=999) == []


def test_flood_wait_is_retried(fake):
    fake.fail_next("sendMessage", 429, retry_after=1)
    started = time.monotonic()
    run(output(fake).send_text_message("tg:11", "after the wait"))
    assert time.monotonic() - started >= 1.0
    assert fake.texts(11) == ["after the wait"]
    assert [c.status for c in fake.sent("sendMessage", 11, ok_only=False)] == [429, 200]


def test_server_errors_are_retried_and_bad_requests_are_not(fake):
    fake.fail_next("sendMessage", 502, retry_after=None)
    run(output(fake).send_text_message("tg:12", "second time lucky"))
    assert fake.texts(12) == ["second time lucky"]
    fake.fail_next("sendMessage", 400, retry_after=None, description="Bad Request: chat not found")
    run(output(fake).send_text_message("tg:13", "never"))
    assert len(fake.sent("sendMessage", 13, ok_only=False)) == 1


def test_undeliverable_messages_are_logged_or_raised(caplog):
    config = TelegramConfig(token="1:A", base_url="http://127.0.0.1:9/bot", max_attempts=2)
    quiet = TelegramOutput(make_bot(config), config=config)
    run(quiet.send_text_message("tg:1", "lost?"))
    assert "send_message to chat" in caplog.text and "failed: NetworkError" in caplog.text
    assert "lost?" not in caplog.text  # no message text in logs
    loud = TelegramOutput(make_bot(config), config=config, raise_errors=True)
    with pytest.raises(TelegramDeliveryError):
        run(loud.send_text_message("tg:1", "lost?"))


# -- the input channel, with a stand-in for Rasa ----------------------------------


LONG_PAYLOAD = "i would like to hear about" + " the products you sell" * 4  # 114 bytes


class Echo:
    """Stands in for Rasa: records each message and answers on its output channel."""

    def __init__(self) -> None:
        self.messages = []

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        await message.output_channel.send_text_message(message.sender_id,
                                                       f"echo: {message.text}")


def test_polling_answers_messages_and_buttons_once(fake):
    echo = Echo()

    async def scenario():
        channel = TelegramInput(TelegramConfig(token=fake.token, base_url=fake.base_url,
                                               poll_timeout=2))
        channel.start(on_new_message=echo)
        loop = asyncio.get_running_loop()
        wait = lambda *a, **k: loop.run_in_executor(None, lambda: fake.wait_for(*a, **k))  # noqa: E731

        fake.send_text(501, "/start", user_id=9001, username="ann")
        await wait("sendMessage", 501)
        update = fake.send_text(501, "hello again")
        fake.inject(update)  # delivered twice in one batch
        await wait("sendMessage", 501, count=2)
        fake.inject(update)  # and once more after it was confirmed
        fake.inject({"update_id": 10_000, "message": {
            "message_id": 1, "date": 0, "chat": {"id": 501, "type": "private"},
            "sticker": {"file_id": "s", "file_unique_id": "s", "width": 1, "height": 1,
                        "is_animated": False, "is_video": False, "type": "regular"}}})
        await wait("sendMessage", 501, count=3)

        out = channel.get_output_channel()
        await out.send_text_with_buttons("tg:501", "Choose", [
            {"title": "Hi", "payload": "/greet"}, {"title": "Long", "payload": LONG_PAYLOAD}])
        (menu,) = await wait("sendMessage", 501, where=lambda c: c.params["text"] == "Choose")
        keys = [row[0]["callback_data"] for row in menu.params["reply_markup"]["inline_keyboard"]]
        fake.press(menu, keys[1])
        fake.press(menu, "/contact_human_agent")  # forged: not a button of that message
        await wait("answerCallbackQuery", count=2)
        await wait("sendMessage", 501, count=5)
        await asyncio.sleep(0.3)
        await channel.stop()
        return channel

    channel = run(scenario())
    assert [m.text for m in echo.messages] == ["/greet", "hello again", LONG_PAYLOAD]
    first = echo.messages[0]
    assert first.sender_id == "tg:501" and first.input_channel == "telegram"
    assert first.metadata["telegram"]["user_id"] == 9001
    assert first.metadata["telegram"]["username"] == "ann"
    assert echo.messages[2].metadata["telegram"]["button"] is True
    texts = fake.texts(501)
    assert texts.count("echo: hello again") == 1
    assert tg.NON_TEXT_REPLY in texts
    answers = fake.sent("answerCallbackQuery")
    assert [a.params.get("text") for a in answers] == [None, tg.EXPIRED_BUTTON]
    assert fake.sent("deleteWebhook") and fake.sent("getMe")
    assert channel.updater._confirmed == channel.updater._offset  # no re-send after a restart
    assert fake.pending() == 0


def test_webhook_mode_sets_the_webhook_and_checks_the_secret(fake):
    echo = Echo()
    url = "https://bot.example.com/webhooks/telegram/webhook"

    async def scenario():
        channel = TelegramInput(TelegramConfig(token=fake.token, base_url=fake.base_url,
                                               webhook_url=url, secret_token="s3cret"))
        channel.start(on_new_message=echo)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: fake.wait_for("setWebhook"))
        update = json.dumps(fake.text_update(600, "via webhook")).encode()
        statuses = [
            await channel.receive_webhook({}, update),
            await channel.receive_webhook({"X-Telegram-Bot-Api-Secret-Token": "nope"}, update),
            await channel.receive_webhook({"X-Telegram-Bot-Api-Secret-Token": "s3cret"},
                                          b"not json"),
            await channel.receive_webhook({"X-Telegram-Bot-Api-Secret-Token": "s3cret"}, update),
            await channel.receive_webhook({"X-Telegram-Bot-Api-Secret-Token": "s3cret"}, update),
        ]
        await loop.run_in_executor(None, lambda: fake.wait_for("sendMessage", 600))
        await channel.stop()
        return statuses

    assert run(scenario()) == [403, 403, 400, 200, 200]
    (hook,) = fake.sent("setWebhook")
    assert hook.params["url"] == url and hook.params["secret_token"] == "s3cret"
    assert hook.params["allowed_updates"] == ["message", "callback_query"]
    assert [m.text for m in echo.messages] == ["via webhook"]  # the re-delivery is ignored
    assert fake.sent("getUpdates") == [] and fake.sent("deleteWebhook") == []


def test_webhook_mode_in_a_real_sanic_server(fake):
    """The blueprint as Rasa mounts it: listeners set the webhook, the route takes updates."""
    import socket

    import httpx
    from sanic import Sanic

    Sanic.test_mode = True
    echo = Echo()
    url = "https://bot.example.com/webhooks/telegram/webhook"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def scenario():
        app = Sanic("telegram_webhook_test")
        channel = TelegramInput(TelegramConfig(token=fake.token, base_url=fake.base_url,
                                               webhook_url=url))
        app.blueprint(channel.blueprint(echo), url_prefix="/webhooks/telegram")
        server = await app.create_server(host="127.0.0.1", port=port,
                                         return_asyncio_server=True)
        await server.startup()
        await server.before_start()
        await server.after_start()
        loop = asyncio.get_running_loop()
        try:
            (hook,) = await loop.run_in_executor(None, lambda: fake.wait_for("setWebhook"))
            update = fake.text_update(700, "hello over https")
            endpoint = f"http://127.0.0.1:{port}/webhooks/telegram/webhook"
            async with httpx.AsyncClient() as client:
                good = {"X-Telegram-Bot-Api-Secret-Token": hook.params["secret_token"]}
                statuses = [
                    (await client.post(endpoint, json=update)).status_code,
                    (await client.post(endpoint, json=update, headers=good)).status_code,
                ]
            await loop.run_in_executor(None, lambda: fake.wait_for("sendMessage", 700))
        finally:
            await server.before_stop()
            server.close()
            await server.wait_closed()
            await server.after_stop()
        return hook, statuses

    hook, statuses = run(scenario())
    assert statuses == [403, 200]
    assert hook.params["url"] == url
    assert hook.params["secret_token"] == TelegramConfig(token=fake.token).webhook_secret
    assert fake.texts(700) == ["echo: hello over https"]
