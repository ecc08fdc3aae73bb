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
