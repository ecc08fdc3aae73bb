"""crm_ml.events against the RabbitMQ on loopback: rows published with confirms wait in a
durable queue while the CRM is down, survive a consumer killed mid-run, and are stored in
the CRM exactly once, in order per conversation."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from crm_ml import events
from crm_ml.db import migrate
from crm_ml.db.session import get_engine
from tests.support.servers import answers

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"



pytestmark = pytest.mark.skipif(not answers(5672),
                                reason="RabbitMQ does not answer on 127.0.0.1:5672")


@pytest.fixture
def url() -> str:
    """A queue of this test's own (deleted afterwards)."""
    name = f"crm.test.{uuid.uuid4().hex[:10]}"
    yield f"{AMQP}#{name}"
    connection, channel, _ = events._connect(f"{AMQP}#{name}")
    channel.queue_delete(queue=name)
    connection.close()


@pytest.fixture
def crm(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    migrate.upgrade(db)
    yield db
    get_engine(db).dispose()


def _rows(conversations: int, turns: int) -> list[dict]:
    start = dt.datetime(2026, 12, 5, 9, 0)
    rows = []
    for turn in range(turns):
        for c in range(conversations):
            rows.append({
                "event_id": f"c{c}-t{turn}", "sender_id": f"web:c{c}", "text": f"message {turn}",
                "kind": "message", "direction": "in", "channel": "web",
                "created_at": start + dt.timedelta(seconds=turn, milliseconds=c),
                "intent": "greet", "sentiment": "neutral", "sentiment_confidence": 0.9,
                "customer_id": None, "rep_id": None, "lead_id": None})
    return rows


def _stored(db: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        return conn.execute("SELECT sender_id, event_id, created_at FROM interactions "
                            "ORDER BY id").fetchall()


def test_rows_round_trip_through_json() -> None:
    row = _rows(1, 1)[0]
    assert events.decode(events.encode(row)) == row
    with pytest.raises(ValueError):
        events.decode(b'{"text": "no id"}')


def test_a_crm_outage_leaves_the_rows_in_the_queue_then_all_are_stored_once(
        url: str, crm: str, tmp_path: Path) -> None:
    rows = _rows(5, 8)
    publisher = events.Publisher(url)
    publisher.publish(rows)
    publisher.publish(rows[:10])  # published twice (a retry after a lost confirm)
    publisher.close()
    assert events.queue_depth(url) == 50
    down = f"sqlite:///{tmp_path / 'no-such-dir' / 'crm.db'}"  # the CRM unreachable
    done = threading.Event()
    worker = threading.Thread(target=events.consume, args=(url, down),
                              kwargs={"stop": done.is_set, "wait": 0.1}, daemon=True)
    worker.start()
    time.sleep(1.5)
    done.set()
    worker.join(30)
    assert not worker.is_alive()
    assert events.queue_depth(url) == 50  # nothing acknowledged, nothing lost
    stored = events.consume(url, crm, stop=lambda: events.queue_depth(url) == 0, wait=0.1)
    assert stored == 50
    got = _stored(crm)
    assert sorted(e for _, e, _ in got) == sorted(r["event_id"] for r in rows)  # once each
    for sender in {s for s, _, _ in got}:
        times = [t for s, _, t in got if s == sender]
        assert times == sorted(times)  # in order per conversation


def test_a_consumer_killed_mid_run_loses_nothing(url: str, crm: str) -> None:
    rows = _rows(10, 30)
    events.Publisher(url).publish(rows)
    env = {**os.environ, "CRM_EVENT_BROKER_URL": url, "CRM_DATABASE_URL": crm}
    cmd = [sys.executable, "-m", "crm_ml.cli", "events", "consume", "--batch", "7"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(_stored(crm)) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert 40 <= len(_stored(crm)) < len(rows)  # killed mid-run
    second = subprocess.run([*cmd, "--drain"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 0, second.stderr
    got = _stored(crm)
    assert sorted(e for _, e, _ in got) == sorted(r["event_id"] for r in rows)
    assert events.queue_depth(url) == 0
