"""The Telegram outbox (bot env): while Telegram cannot be reached, messages wait in a
table and arrive afterwards, in order per chat, once each; also across a restart.

Against the fake Bot API server, made to fail with 502s (JSON or a proxy's HTML
page) or to refuse connections.
"""

import asyncio
import logging

import pytest
import sqlalchemy as sa
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.telegram import (
    TelegramConfig,
    TelegramDeliveryError,
    TelegramInput,
    TelegramOutbox,
    TelegramOutput,
    decode_params,
    encode_params,
    is_transient,
    make_bot,
    tracker_store_engine,
)
from tests.support.fake_telegram import PNG_1PX, FakeTelegram


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def fake():
    with FakeTelegram() as server:
        yield server


def output(fake: FakeTelegram, outbox: TelegramOutbox, **kwargs) -> TelegramOutput:
    config = TelegramConfig(token=fake.token, base_url=fake.base_url, max_attempts=2)
    return TelegramOutput(make_bot(config), config=config, outbox=outbox, **kwargs)


def new_outbox(engine=None, **kwargs) -> TelegramOutbox:
    box = TelegramOutbox("123", base_delay=0.1, **kwargs)
    box.bind(engine)
    return box


def attempts(fake: FakeTelegram, chat_id: int) -> list[tuple[str, int]]:
    return [(c.params.get("text"), c.status)
            for c in fake.sent("sendMessage", chat_id, ok_only=False)]


def test_transient_and_permanent_errors():
    for exc in (NetworkError("Bad Gateway"), TimedOut(), RetryAfter(3),
                TelegramError("Invalid server response")):
        assert is_transient(exc), exc
    for exc in (BadRequest("chat not found"), Forbidden("bot was blocked by the user")):
        assert not is_transient(exc), exc


def test_parameters_survive_the_table():
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="/affirm")],
                                   [InlineKeyboardButton("Site", url="https://example.com")]])
    params = {"text": "Pick één 😀", "reply_markup": markup, "photo": PNG_1PX,
              "filename": "pic.png", "latitude": 51.5, "extra": {"a": [1, None]}}
    back = decode_params(encode_params(params))
    assert back == params
    assert isinstance(back["reply_markup"], InlineKeyboardMarkup)
    with pytest.raises(ValueError):
        decode_params('{"__tg__": "Bot", "data": {}}')  # only Telegram objects come back


def test_during_an_outage_messages_wait_then_arrive_in_order_once(fake):
    async def scenario():
        box = new_outbox()
        out = output(fake, box)
        fake.outage(502)
        await out.send_text_message("tg:5", "one")
        await out.send_text_message("tg:5", "two")
        await out.send_text_with_buttons("tg:5", "three", [{"title": "OK", "payload": "/affirm"}])
        await out.send_text_message("tg:6", "other chat")
        assert box.waiting() == 4 and box.waiting(5) == 3
        assert fake.texts(5) == []
        # still down: the outbox tries once, keeps everything, asks to wait
        assert await box.flush(out.send_queued) is not None
        assert box.waiting() == 4
        fake.outage(None)
        assert await box.flush(out.send_queued) is None
        return box

    box = run(scenario())
    assert box.waiting() == 0
    assert fake.texts(5) == ["one", "two", "three"]
    assert fake.texts(6) == ["other chat"]
    (three,) = fake.sent("sendMessage", 5, ok_only=True)[2:]
    assert three.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "/affirm"
    # "two" and "three" were never tried while "one" waited: no reordering
    assert attempts(fake, 5) == [("one", 502), ("one", 502), ("one", 502),
                                 ("one", 200), ("two", 200), ("three", 200)]


def test_a_proxys_html_error_page_is_an_outage_too(fake):
    async def scenario():
        box = new_outbox()
        out = output(fake, box)
        fake.outage(502, html=True)
        await out.send_text_message("tg:7", "through the proxy")
        assert box.waiting(7) == 1
        fake.outage(None)
        await box.flush(out.send_queued)

    run(scenario())
    assert fake.texts(7) == ["through the proxy"]


def test_pushes_are_queued_not_raised_but_refusals_still_raise(fake):
    async def scenario():
        box = new_outbox()
        push = output(fake, box, raise_errors=True)
        fake.outage(502)
        await push.send_text_message("tg:8", "agent: on it")  # no exception: it is kept
        fake.outage(None)
        await box.flush(push.send_queued)
        fake.fail_next("sendMessage", 403, retry_after=None,
                       description="Forbidden: bot was blocked by the user")
        with pytest.raises(TelegramDeliveryError):
            await push.send_text_message("tg:8", "blocked")
        return box

    box = run(scenario())
    assert fake.texts(8) == ["agent: on it"] and box.waiting() == 0


def test_a_queued_message_telegram_refuses_is_dropped_and_the_rest_go_on(fake, caplog):
    async def scenario():
        box = new_outbox()
        out = output(fake, box)
        fake.outage(502)
        for text in ("first", "second", "third"):
            await out.send_text_message("tg:9", text)
        fake.outage(None)
        fake.fail_next("sendMessage", 400, retry_after=None, description="Bad Request: no")
        with caplog.at_level(logging.ERROR, logger="bot.telegram"):
            await box.flush(out.send_queued)
        return box

    box = run(scenario())
    assert fake.texts(9) == ["second", "third"] and box.waiting() == 0
    assert "refused by Telegram (BadRequest); dropped" in caplog.text
    assert "first" not in caplog.text  # no message text in logs


def test_a_flood_wait_in_the_outbox_waits_as_long_as_telegram_asks(fake):
    async def scenario():
        box = new_outbox()
        out = output(fake, box)
        fake.outage(502)
        await out.send_text_message("tg:10", "later")
        fake.outage(None)
        fake.fail_next("sendMessage", 429, retry_after=7)
        wait = await box.flush(out.send_queued)
        assert box.waiting(10) == 1
        return wait

    assert run(scenario()) == 7.0


def test_the_outbox_survives_a_restart(fake, tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'tracker.db'}")

    async def before():
        box = new_outbox(engine)
        out = output(fake, box)
        fake.outage(502)
        await out.send_text_message("tg:11", "kept on disk")
        await out.send_text_message("tg:11", "me too")

    async def after():
        box = new_outbox(engine)  # a new process: it finds them
        assert box.waiting(11) == 2
        other_bot = TelegramOutbox("999")
        other_bot.bind(engine)
        assert other_bot.waiting() == 0  # another bot's table rows are not its own
        fake.outage(None)
        await box.flush(output(fake, box).send_queued)
        return box

    run(before())
    box = run(after())
    assert fake.texts(11) == ["kept on disk", "me too"] and box.waiting() == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM telegram_outbox")).scalar() == 0


def test_tracker_store_engine_is_found_through_rasas_wrappers(tmp_path):
    from rasa.core.tracker_store import (
        AwaitableTrackerStore,
        FailSafeTrackerStore,
        InMemoryTrackerStore,
        SQLTrackerStore,
    )
    from rasa.shared.core.domain import Domain

    class App:
        class ctx:  # noqa: N801 - Sanic's attribute name
            agent = None

    sql = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "t.db"))
    App.ctx.agent = type("Agent", (), {"tracker_store": FailSafeTrackerStore(
        AwaitableTrackerStore(sql))})()
    assert tracker_store_engine(App) is sql.engine
    App.ctx.agent.tracker_store = FailSafeTrackerStore(InMemoryTrackerStore(Domain.empty()))
    assert tracker_store_engine(App) is None
    assert tracker_store_engine(None) is None


# -- the channel: polling, Telegram going away and coming back --------------------------


class Echo:
    """Stands in for Rasa: two replies to each message."""

    def __init__(self) -> None:
        self.messages = []

    async def __call__(self, message) -> None:
        self.messages.append(message.text)
        for part in ("first", "second"):
            await message.output_channel.send_text_message(
                message.sender_id, f"{part} reply to {message.text}")


def test_the_channel_delivers_everything_after_an_outage(fake):
    echo = Echo()

    async def scenario():
        channel = TelegramInput(TelegramConfig(token=fake.token, base_url=fake.base_url,
                                               poll_timeout=1, max_attempts=2,
                                               outbox_max_delay=1.0))
        channel.start(on_new_message=echo)
        loop = asyncio.get_running_loop()

        def wait(*a, **k):
            return loop.run_in_executor(None, lambda: fake.wait_for(*a, **k))

        fake.send_text(42, "hello")
        await wait("sendMessage", 42, count=2)

        fake.outage(502)  # sends fail, updates still arrive
        fake.send_text(42, "during the outage")
        for _ in range(100):
            if channel.outbox.waiting(42) == 2:
                break
            await asyncio.sleep(0.1)
        push = channel.get_output_channel()
        await push.send_text_message("tg:42", "an agent's reply")  # queued, not raised
        fake.down()  # and now Telegram is gone altogether
        await asyncio.sleep(1.5)
        fake.outage(None)
        fake.up()
        await wait("sendMessage", 42, count=5, timeout=30)
        fake.send_text(42, "after")
        await wait("sendMessage", 42, count=7, timeout=30)
        await channel.stop()
        return channel

    channel = run(scenario())
    assert fake.texts(42) == [
        "first reply to hello", "second reply to hello",
        "first reply to during the outage", "second reply to during the outage",
        "an agent's reply",
        "first reply to after", "second reply to after",
    ]
    assert echo.messages == ["hello", "during the outage", "after"]
    assert channel.outbox.waiting() == 0


def test_calls_queued_by_another_process_are_found_and_sent_once(fake, tmp_path):
    """`crm-ml reminders` (the app env) writes a rep's due follow-up into the table; the
    running bot finds it by its periodic scan and sends it once."""
    url = f"sqlite:///{tmp_path / 'tracker.db'}"

    async def scenario():
        box = new_outbox(sa.create_engine(url), scan_seconds=0.05)
        out = output(fake, box)
        task = asyncio.create_task(box.run(out.send_queued))
        other = sa.create_engine(url)  # another process's connection
        table = sa.Table(TelegramOutbox.TABLE, sa.MetaData(), autoload_with=other)
        with other.begin() as conn:
            conn.execute(table.insert().values(
                bot_id="123", chat_id=7, method="sendMessage",
                params=encode_params({"text": "Reminder: call lead 49498"}), created_at=0.0))
        for _ in range(200):
            if fake.texts(7):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # more scans: the row is gone, nothing is sent again
        task.cancel()
        return box

    box = run(scenario())
    assert fake.texts(7) == ["Reminder: call lead 49498"]
    assert box.waiting() == 0 and box.scan() == 0
