"""Conversation events through RabbitMQ with the real Rasa server (CRM_EVENT_BROKER_URL).

Rasa publishes every user and bot message to a durable queue instead of writing the
CRM; nothing reaches ``interactions`` until ``crm-ml events consume`` runs, which then
stores every message once, and a second consumer run adds nothing.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crm_ml import events
from crm_ml.config import PROJECT_ROOT
from tests.support.servers import Stack, answers, assistant, crm_snapshot, eventually

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
CRM_ML = PROJECT_ROOT / ".venv" / "bin" / "crm-ml"



pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not answers(5672),
                                 reason="RabbitMQ does not answer on 127.0.0.1:5672"),
              pytest.mark.skipif(not (PROJECT_ROOT / "var" / "crm.db").is_file(),
                                 reason="var/crm.db not loaded (make load)")]


@pytest.fixture(scope="module")
def queue_url() -> Iterator[str]:
    name = f"crm.e2e.{uuid.uuid4().hex[:10]}"
    yield f"{AMQP}#{name}"
    connection, channel, _ = events._connect(f"{AMQP}#{name}")
    channel.queue_delete(queue=name)
    connection.close()


@pytest.fixture(scope="module")
def crm_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crm_snapshot(tmp_path_factory.mktemp("events"))


@pytest.fixture(scope="module")
def stack(crm_copy: Path, queue_url: str) -> Iterator[Stack]:
    with assistant(crm_copy.parent, f"sqlite:///{crm_copy}",
                   extra_env={"CRM_EVENT_BROKER_URL": queue_url}) as running:
        yield running


def _count(db: Path, sender: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM interactions WHERE sender_id = ?",
                                (sender,)).fetchone()[0])


def test_messages_wait_in_the_queue_until_the_consumer_stores_them_once(
        stack: Stack, crm_copy: Path, queue_url: str) -> None:
    sender = f"web:q-{uuid.uuid4().hex[:8]}"
    for text in ("hello", "what are your opening hours?", "thanks"):
        assert stack.say(sender, text)
    # three user messages and at least three bot messages, published and confirmed
    assert eventually(lambda: events.queue_depth(queue_url) >= 6, timeout=20)
    assert _count(crm_copy, sender) == 0  # Rasa wrote nothing to the CRM itself
    env = {**os.environ, "CRM_EVENT_BROKER_URL": queue_url,
           "CRM_DATABASE_URL": f"sqlite:///{crm_copy}"}
    run = subprocess.run([str(CRM_ML), "events", "consume", "--drain"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    stored = _count(crm_copy, sender)
    assert stored >= 6
    with sqlite3.connect(crm_copy) as conn:
        texts = [t for (t,) in conn.execute(
            "SELECT text FROM interactions WHERE sender_id = ? AND direction = 'in' "
            "ORDER BY id", (sender,))]
    assert texts == ["hello", "what are your opening hours?", "thanks"]
    again = subprocess.run([str(CRM_ML), "events", "consume", "--drain"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and _count(crm_copy, sender) == stored


def test_a_rasa_process_killed_with_1000_undelivered_interactions_loses_none(
        stack: Stack, crm_copy: Path, queue_url: str) -> None:
    """The CRM is down (no consumer runs): 500 turns make 1,000+ interactions nobody has
    written; ``kill -9`` of the Rasa process; then the consumer stores every one."""
    import asyncio
    import signal

    senders = [f"web:k9-{uuid.uuid4().hex[:6]}-{i}" for i in range(50)]

    async def talk(client: httpx.AsyncClient, sender: str) -> None:
        for turn in range(10):
            r = await client.post(f"{stack.rasa_url}/webhooks/rest/webhook",
                                  json={"sender": sender, "message": "what are your opening "
                                        f"hours? ({turn})", "message_id": f"{sender}:{turn}"})
            r.raise_for_status()

    async def load() -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            await asyncio.gather(*(talk(client, s) for s in senders))

    before = events.queue_depth(queue_url)
    asyncio.run(load())
    waiting = events.queue_depth(queue_url) - before
    assert waiting >= 1000  # every reply left only once its turn was confirmed
    stack.rasa.send_signal(signal.SIGKILL)
    stack.rasa.wait(10)
    assert all(_count(crm_copy, s) == 0 for s in senders)
    env = {**os.environ, "CRM_EVENT_BROKER_URL": queue_url,
           "CRM_DATABASE_URL": f"sqlite:///{crm_copy}"}
    run = subprocess.run([str(CRM_ML), "events", "consume", "--drain"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(crm_copy) as conn:
        rows = conn.execute("SELECT sender_id, event_id FROM interactions WHERE direction = "
                            "'in' AND sender_id LIKE 'web:k9-%' ORDER BY id").fetchall()
        total = conn.execute("SELECT count(*) FROM interactions WHERE sender_id LIKE "
                             "'web:k9-%'").fetchone()[0]
    assert total >= 1000
    for sender in senders:
        assert [e for s, e in rows if s == sender] == [f"{sender}:{t}" for t in range(10)]
