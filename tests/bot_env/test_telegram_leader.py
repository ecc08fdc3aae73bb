"""Which replica talks to Telegram (bot env): the lease in the shared database, two
channels on one database taking turns, and updates confirmed only once handled.

Against the fake Bot API server, which ends a waiting ``getUpdates`` with 409
Conflict when another arrives, as Telegram does.
"""

import asyncio
import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from bot.telegram import TelegramConfig, TelegramInput
from bot.telegram._leader import Lease
from tests.support.fake_telegram import FakeTelegram


@pytest.fixture
def fake():
    with FakeTelegram() as server:
        yield server


def app_on(engine: sa.engine.Engine) -> SimpleNamespace:
    """What the channel reads of Rasa's app: the SQL tracker store's engine."""
    return SimpleNamespace(ctx=SimpleNamespace(agent=SimpleNamespace(
        tracker_store=SimpleNamespace(engine=engine))))


class Echo:
    """Stands in for Rasa: one reply per message, after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.messages: list[str] = []
        self.delay = delay

    async def __call__(self, message) -> None:
        await asyncio.sleep(self.delay)
        self.messages.append(message.text)
        await message.output_channel.send_text_message(message.sender_id,
                                                       f"echo: {message.text}")


def test_the_lease_is_held_by_one_holder_until_released_or_expired(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    a, b = Lease("123", ttl=1.0, holder="a"), Lease("123", ttl=1.0, holder="b")
    other_bot = Lease("999", ttl=1.0, holder="b")
    for lease in (a, b, other_bot):
        lease.bind(engine)
    assert a.acquire() and a.held()
    assert not b.acquire() and not b.held()
    assert other_bot.acquire()  # another bot's lease is its own row
    assert a.acquire()  # renewed
    a.release()
    assert not a.held()
    assert b.acquire() and not a.acquire()
    time.sleep(1.1)  # b stops renewing: its lease expires
    assert not b.held()
    assert a.acquire() and not b.acquire()


def test_held_stops_before_the_lease_can_expire(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    lease = Lease("123", ttl=1.5, holder="a")
    lease.bind(engine)
    assert lease.acquire()
    time.sleep(1.1)  # no renewal (the database did not answer): past two thirds of the ttl
    assert not lease.held()


def test_alone_the_lease_is_always_held():
    lease = Lease("123")
    lease.bind(None)
    assert not lease.shared and lease.acquire() and lease.held()


def test_two_replicas_on_one_database_poll_one_at_a_time(fake, tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    echoes = [Echo(), Echo()]

    async def scenario():
        config = TelegramConfig(token=fake.token, base_url=fake.base_url, poll_timeout=1,
                                lease_seconds=1.0)
        channels = [TelegramInput(config), TelegramInput(config)]
        for channel, echo in zip(channels, echoes, strict=True):
            channel.start(app_on(engine), on_new_message=echo)
        loop = asyncio.get_running_loop()

        def wait(*a, **k):
            return loop.run_in_executor(None, lambda: fake.wait_for(*a, **k))

        for i in range(6):
            fake.send_text(600 + i, f"hello {i}")
        for i in range(6):
            await wait("sendMessage", 600 + i)
        leaders = [c for c in channels if c.leading]
        assert len(leaders) == 1
        first = leaders[0]
        await asyncio.sleep(2.5)  # a few renewals: still one poller, no conflict
        assert [c.leading for c in channels].count(True) == 1 and first.leading
        assert fake.conflicts == 0

        await first.stop()  # a clean stop gives the lease up: the other takes over
        second = next(c for c in channels if c is not first)
        for _ in range(40):
            if second.leading:
                break
            await asyncio.sleep(0.1)
        assert second.leading
        fake.send_text(610, "after the handover")
        await wait("sendMessage", 610, timeout=15)
        await second.stop()

    run = asyncio.run
    run(scenario())
    assert sorted(echoes[0].messages + echoes[1].messages) == sorted(
        [f"hello {i}" for i in range(6)] + ["after the handover"])
    for chat in [*range(600, 606), 610]:
        assert len(fake.texts(chat)) == 1, chat
    assert fake.conflicts == 0
    assert fake.pending() == 0


def test_an_update_is_confirmed_only_once_handled(fake):
    """A process that dies while handling an update has not confirmed it: Telegram
    sends it again to the next poller."""
    echo = Echo(delay=2.0)

    async def scenario():
        config = TelegramConfig(token=fake.token, base_url=fake.base_url, poll_timeout=1)
        channel = TelegramInput(config)
        channel.start(on_new_message=echo)
        fake.send_text(700, "slow one")
        for _ in range(50):
            if channel.updater._in_flight:
                break
            await asyncio.sleep(0.05)
        assert channel.updater._in_flight
        await asyncio.sleep(1.2)  # the poller went on meanwhile, without confirming it
        assert fake.pending() == 1
        while not fake.texts(700):
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # the next poll confirms it
        assert fake.pending() == 0
        await channel.stop()

    asyncio.run(scenario())
    assert echo.messages == ["slow one"]
    assert fake.texts(700) == ["echo: slow one"]


def test_a_turn_run_again_does_not_repeat_what_was_sent(fake, tmp_path):
    """A replica sent the first reply of a turn and died; the turn runs again on
    another: the first reply is not sent twice, the second is sent."""
    from bot.telegram import TelegramOutput, make_bot
    from bot.telegram._sent import OnceOutput, SentLedger

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    ledger = SentLedger("123")
    ledger.bind(engine)
    config = TelegramConfig(token=fake.token, base_url=fake.base_url)

    async def scenario():
        out = TelegramOutput(make_bot(config), config=config)
        first_run = OnceOutput(out, ledger, "tg:42:7")
        await first_run.send_response("tg:42", {"text": "one"})  # ...and the replica dies
        again = OnceOutput(out, ledger, "tg:42:7", ledger.sent("tg:42:7"))
        await again.send_response("tg:42", {"text": "one"})
        await again.send_response("tg:42", {"text": "two"})
        assert again.name() == "telegram"

    asyncio.run(scenario())
    assert fake.texts(42) == ["one", "two"]
    assert ledger.sent("tg:42:7") == {0, 1} and ledger.sent("tg:42:8") == set()
    ledger.prune(older_than=-1)
    assert ledger.sent("tg:42:7") == set()
