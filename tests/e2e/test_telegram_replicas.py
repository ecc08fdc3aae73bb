"""Telegram with two Rasa replicas: every update answered once, every reply sent once.

Both replicas get the bot's token, as ``make run`` gives it with ``CRM_RASA_REPLICAS=2``;
they share the tracker store (PostgreSQL) and the Redis lock store, behind HAProxy.
The Bot API server on loopback (tests/support/fake_telegram.py) ends a waiting
``getUpdates`` with "409 Conflict" when another one arrives, as Telegram does. The
replica holding the lease (bot/telegram/_leader.py) polls and sends the outbox; the
other answers what reaches it through the load balancer (an agent's push). Then the
holder is killed (SIGKILL) in the middle of a conversation burst: the other takes
over, and no update is lost or handled twice. What cannot be helped: a reply the
killed replica had sent in the turn it never saved is sent again when the turn runs
again (the Bot API has no idempotency key); replies recorded as sent
(bot/telegram/_sent.py) are not.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import PG_ADMIN_URL
from tests.e2e.test_replicas import _haproxy, _missing
from tests.e2e.test_telegram import credentials_with_telegram
from tests.support.fake_telegram import FakeTelegram
from tests.support.servers import (
    API_TOKEN,
    RASA_MODEL,
    crm_snapshot,
    free_port,
    launch,
    rasa_command,
    start_actions,
    stop,
    wait_backends_up,
    wait_http,
)

TOKEN = "456:DEF"
CHATS = 24
LEASE_S = 4.0


pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900),
              pytest.mark.skipif(_missing(rabbitmq=False) is not None,
                                 reason=str(_missing(rabbitmq=False)))]


@dataclass
class Pair:
    workdir: Path
    env: dict[str, str]
    cmds: list[list[str]]
    ports: list[int]
    front: str
    tracker_url: str
    rasa: list = field(default_factory=list)
    others: list = field(default_factory=list)

    def leader(self, timeout: float = 30.0) -> int:
        """The replica holding the Telegram lease (its pid is in the holder's name)."""
        engine = sa.create_engine(self.tracker_url.replace("postgresql://",
                                                           "postgresql+psycopg://"))
        deadline = time.monotonic() + timeout
        try:
            while True:
                with engine.connect() as conn:
                    row = conn.execute(sa.text(
                        "SELECT holder FROM telegram_leases WHERE bot_id = :bot "
                        "AND expires_at > :now"),
                        {"bot": TOKEN.split(":")[0], "now": time.time()}).first()
                pids = {str(proc.pid): i for i, proc in enumerate(self.rasa)
                        if proc.poll() is None}
                holder = row[0].split(":")[1] if row else None
                if holder in pids:
                    return pids[holder]
                assert time.monotonic() < deadline, f"no live replica holds the lease: {row}"
                time.sleep(0.5)
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, fake: FakeTelegram) -> Iterator[Pair]:
    import psycopg

    from scripts.haproxy_config import render as haproxy_config
    from scripts.replica_endpoints import render as replica_endpoints

    workdir = tmp_path_factory.mktemp("telegram-replicas")
    crm = crm_snapshot(workdir)
    name = f"crmtg{uuid.uuid4().hex[:8]}"  # alphanumeric: also the Redis key prefix
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    tracker_url = admin.rsplit("/", 1)[0] + "/" + name
    front, actions_port = free_port(), free_port()
    ports = [free_port(), free_port()]
    env = {**os.environ, "CRM_DATABASE_URL": f"sqlite:///{crm}", "RASA_TELEMETRY_ENABLED":
           "false", "CRM_TRACKER_DB_URL": tracker_url, "TELEGRAM_TOKEN": TOKEN,
           "TELEGRAM_BASE_URL": fake.base_url, "CRM_SUPPORT_HOURS": "always",
           "CRM_RATE_LIMIT": "off", "CRM_RATE_LIMIT_IP": "off"}
    env.pop("CRM_EVENT_BROKER_URL", None)
    endpoints = workdir / "endpoints.yml"
    endpoints.write_text(replica_endpoints(tracker_url, "redis://127.0.0.1:6379/0",
                                           f"http://127.0.0.1:{actions_port}/webhook",
                                           key_prefix=name))
    credentials = credentials_with_telegram(workdir)
    credentials.write_text(credentials.read_text().replace(
        "bot.telegram.TelegramInput:\n",
        f"bot.telegram.TelegramInput:\n  lease_seconds: {LEASE_S}\n", 1))
    config = workdir / "haproxy.cfg"
    stats = f"127.0.0.1:{free_port()}"
    config.write_text(haproxy_config(ports, [actions_port], rasa_bind=f"127.0.0.1:{front}",
                                     actions_bind=f"127.0.0.1:{free_port()}",
                                     stats_bind=stats))
    cmds = [rasa_command(RASA_MODEL, endpoints, credentials, port, auth_token=API_TOKEN)
            for port in ports]
    p = Pair(workdir, env, cmds, ports, f"http://127.0.0.1:{front}", tracker_url)
    try:
        p.others.append(start_actions(actions_port, env, workdir / "actions.log"))
        p.others.append(launch([_haproxy(), "-db", "-f", str(config)],
                               workdir / "haproxy.log", env))
        p.rasa = [launch(cmd, workdir / f"rasa{i}.log", env) for i, cmd in enumerate(cmds)]
        for i, proc in enumerate(p.rasa):
            wait_http(f"http://127.0.0.1:{ports[i]}/", proc, workdir / f"rasa{i}.log",
                      timeout=300)
        # HAProxy answers 503 until its checks have seen the replicas up
        wait_backends_up(f"http://{stats}/", p.others[-1], workdir / "haproxy.log")
        fake.wait_for("deleteWebhook", timeout=60)  # one of them polls
        yield p
    finally:
        for proc in [*p.rasa, *p.others]:
            stop(proc)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _trackers(p: Pair, senders: list[str]) -> dict[str, list[dict]]:
    out = {}
    for sender in senders:
        r = httpx.get(f"{p.front}/conversations/{sender}/tracker",
                      params={"token": API_TOKEN}, timeout=30)
        r.raise_for_status()
        out[sender] = r.json()["events"]
    return out


def _burst(fake: FakeTelegram, chats: list[int], text: str) -> dict[int, int]:
    """One message from every chat; returns each chat's update id."""
    return {chat: fake.inject(fake.text_update(chat, text))["update_id"] for chat in chats}


def _replies(events: list[dict]) -> list[tuple[str, str]]:
    """Each bot text of a conversation with the user message it answered."""
    out, last = [], ""
    for e in events:
        if e["event"] == "user":
            last = e.get("text") or ""
        elif e["event"] == "bot" and e.get("text"):
            out.append((last, e["text"]))
    return out


def _check(pair: Pair, fake: FakeTelegram, chats: list[int], sent_texts: dict[int, list[str]],
           extra: dict[int, int], repeat_allowed: str | None = None) -> int:
    """Every customer message is in its conversation once, in order; every bot reply
    reached the chat once (``repeat_allowed``: the answers to that message may have
    reached it twice, sent by a replica killed before it could save the turn).
    ``extra``: messages each chat got outside a turn (reminders). Returns how many
    replies arrived twice."""
    events = _trackers(pair, [f"tg:{chat}" for chat in chats])
    repeated = 0
    for chat in chats:
        sender = f"tg:{chat}"
        users = [e["text"] for e in events[sender] if e["event"] == "user"]
        assert users == sent_texts[chat], (sender, users)
        replies = _replies(events[sender])
        said = [text for _, text in replies]
        got = fake.texts(chat)
        for text in set(said):
            twice = got.count(text) - said.count(text)
            assert twice >= 0, (sender, "a reply never arrived", text[:40])
            if twice:
                assert twice == 1 and repeat_allowed is not None and all(
                    asked == repeat_allowed for asked, t in replies if t == text), (
                    sender, "a reply arrived twice", text[:40], got)
                repeated += 1
        assert len(got) == len(said) + extra.get(chat, 0) + repeated_in(got, said), (
            sender, said, got)
    return repeated


def repeated_in(got: list[str], said: list[str]) -> int:
    """How many of ``got`` are repeats beyond what ``said`` holds."""
    return sum(max(0, got.count(t) - said.count(t)) for t in set(said))


def _wait_answers(fake: FakeTelegram, chats: list[int], count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(fake.texts(chat)) >= count for chat in chats):
            return
        time.sleep(0.25)
    short = {chat: len(fake.texts(chat)) for chat in chats if len(fake.texts(chat)) < count}
    raise AssertionError(f"chats without {count} replies after {timeout:.0f} s: {short}")


def test_two_replicas_answer_every_update_once_and_send_every_reply_once(
        pair: Pair, fake: FakeTelegram) -> None:
    chats = [7000 + i for i in range(CHATS)]
    senders = [f"tg:{chat}" for chat in chats]
    sent_texts: dict[int, list[str]] = {chat: [] for chat in chats}

    # 1. Both replicas run with the token; one polls, and there is no conflict.
    texts = ["hi", "what are your opening hours?"]
    for n, text in enumerate(texts, start=1):
        _burst(fake, chats, text)
        for chat in chats:
            sent_texts[chat].append(text)
        _wait_answers(fake, chats, n, timeout=120)
    first = pair.leader()
    assert fake.conflicts == 0, "two replicas polled at the same time"

    # 2. An agent-style push through the load balancer reaches either replica and is
    # sent once; a call queued in the shared outbox (as `crm-ml reminders` queues a
    # rep's follow-up) is sent once, by the lease holder only.
    before = {chat: len(fake.texts(chat)) for chat in chats}
    for chat in chats[:10]:
        r = httpx.post(f"{pair.front}/conversations/tg:{chat}/tracker/events",
                       params={"output_channel": "telegram", "execute_side_effects": "true",
                               "token": API_TOKEN},
                       json=[{"event": "bot", "text": f"A note from Sam for {chat}"}],
                       timeout=30)
        r.raise_for_status()
    engine = sa.create_engine(pair.tracker_url.replace("postgresql://",
                                                       "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO telegram_outbox (bot_id, chat_id, method, params, created_at) "
            "VALUES (:bot, :chat, 'sendMessage', :params, :at)"),
            [{"bot": TOKEN.split(":")[0], "chat": chat, "at": time.time(),
              "params": f'{{"text": "Reminder for {chat}"}}'}
             for chat in chats[10:14]])
    _wait_answers(fake, chats[:10], before[chats[0]] + 1, timeout=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(
            any(t == f"Reminder for {c}" for t in fake.texts(c)) for c in chats[10:14]):
        time.sleep(0.5)
    time.sleep(LEASE_S)  # a second sender would have sent by now
    for chat in chats[:10]:
        assert fake.texts(chat).count(f"A note from Sam for {chat}") == 1
    for chat in chats[10:14]:
        assert fake.texts(chat).count(f"Reminder for {chat}") == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM telegram_outbox")).scalar() == 0
    reminders = {chat: 1 for chat in chats[10:14]}
    assert _check(pair, fake, chats, sent_texts, reminders) == 0  # exactly once each

    # 3. The polling replica is killed while a burst is under way; the other takes
    # over within the lease and answers what is left.
    burst = ["how long does delivery take?", "do you ship abroad?", "thanks"]
    for k, text in enumerate(burst):
        _burst(fake, chats, text)
        for chat in chats:
            sent_texts[chat].append(text)
        if k == 0:
            time.sleep(0.3)  # some of this burst handled, some fetched and not confirmed
            pair.rasa[first].send_signal(signal.SIGKILL)
            pair.rasa[first].wait(timeout=30)
    other = 1 - first
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        events = _trackers(pair, senders)
        if all(len([e for e in events[s] if e["event"] == "user"]) >= len(sent_texts[c])
               for s, c in zip(senders, chats, strict=True)):
            break
        time.sleep(1)
    assert pair.leader() == other
    time.sleep(LEASE_S)

    # Every update is in its conversation exactly once, in the order sent; every reply
    # reached its chat, once, except that the answers to the message in progress when
    # the replica died may have reached it twice (sent, and killed before the turn was
    # saved: the Bot API has no idempotency key).
    repeated = _check(pair, fake, chats, sent_texts, reminders, repeat_allowed=burst[0])
    print(f"replies sent twice after the kill: {repeated} of {len(chats)} chats")
    # the killed replica may have been waiting in getUpdates when the other came: at
    # most that one poll ended in a conflict
    assert fake.conflicts <= 1
