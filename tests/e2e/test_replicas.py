"""Two Rasa replicas and two action servers behind HAProxy, under load, with a failover.

The deployment ``make run`` makes with ``CRM_RASA_REPLICAS=2``: HAProxy from Debian
with the configuration of scripts/haproxy_config.py, the tracker store on PostgreSQL,
Redis locks, conversation events through RabbitMQ to ``crm-ml events consume``.
100 conversations of 20 turns each run concurrently through the load balancer; a
third of the way in one Rasa replica is killed (SIGKILL) and started again, and the
event consumer is killed and started again with its CRM database unreachable for 30 s,
then with the CRM. Afterwards:

- every turn was answered, to its own sender (no reply went to another conversation);
- every user message is in the tracker store exactly once, in the order sent;
- every user message is in the CRM's interactions exactly once, in order.

The client does what a chat client does on a dropped connection: it sends the same
message again with the same ``message_id``; HAProxy itself retries a request whose
replica refused or dropped the connection. The CRM here is a SQLite file that the
actions keep using; its outage is the consumer's (the writer of every conversation
event), whose database does not answer for 30 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from crm_ml import events
from crm_ml.config import PROJECT_ROOT
from tests.conftest import PG_ADMIN_URL, _pg_available
from tests.support.servers import (
    RASA_MODEL,
    answers,
    crm_snapshot,
    free_port,
    launch,
    rasa_command,
    start_actions,
    stop,
    wait_backends_up,
    wait_http,
)

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
CONVERSATIONS = int(os.environ.get("CRM_FAILOVER_CONVERSATIONS", "100"))
TURNS = int(os.environ.get("CRM_FAILOVER_TURNS", "20"))
CRM_DOWN_S = float(os.environ.get("CRM_FAILOVER_CRM_DOWN_S", "30"))
TEXTS = ["hi", "what are your opening hours?", "how long does delivery take?",
         "do you ship abroad?", "thanks", "what is your returns policy?"]
CRM_ML = PROJECT_ROOT / ".venv" / "bin" / "crm-ml"


def _haproxy() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy",) if Path(p).is_file()), None)


def _missing(rabbitmq: bool = True) -> str | None:
    """Why a replicas test cannot run here (None: it can)."""
    if not _haproxy():
        return "HAProxy is not installed (make haproxy)"
    if not answers(6379):
        return "Redis does not answer on 127.0.0.1:6379"
    if rabbitmq and not answers(5672):
        return "RabbitMQ does not answer on 127.0.0.1:5672"
    if not (PROJECT_ROOT / "var" / "crm.db").is_file():
        return "var/crm.db not loaded (make load)"
    return _pg_available()


pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200),
              pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


@dataclass
class Cluster:
    workdir: Path
    env: dict[str, str]
    endpoints: Path
    url: str
    rasa_ports: list[int]
    rasa: list[subprocess.Popen] = field(default_factory=list)
    others: list[subprocess.Popen] = field(default_factory=list)
    consumer: subprocess.Popen | None = None
    tracker_db: str = ""
    queue: str = ""

    def start_rasa(self, i: int) -> subprocess.Popen:
        log = self.workdir / f"rasa{i}-{int(time.time() * 1000)}.log"
        cmd = rasa_command(RASA_MODEL, self.endpoints, PROJECT_ROOT / "credentials.yml",
                           self.rasa_ports[i])
        proc = launch(cmd, log, {**self.env, "TICKET_LOCK_LIFETIME": "10"})
        return proc

    def wait_rasa(self, i: int, proc: subprocess.Popen) -> None:
        logs = sorted(self.workdir.glob(f"rasa{i}-*.log"))
        wait_http(f"http://127.0.0.1:{self.rasa_ports[i]}/", proc, logs[-1], timeout=300)

    def start_consumer(self, crm_down: bool = False) -> subprocess.Popen:
        """The event consumer; ``crm_down``: its CRM database does not answer."""
        log = (self.workdir / f"consumer-{int(time.time() * 1000)}.log").open("w")
        env = dict(self.env)
        if crm_down:
            env["CRM_DATABASE_URL"] = (f"sqlite:///{self.workdir / 'down' / 'nowhere' / 'crm.db'}"
                                       "?mode=ro")
        return subprocess.Popen([str(CRM_ML), "events", "consume", "--batch", "50"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    import psycopg

    from scripts.haproxy_config import render as haproxy_config
    from scripts.replica_endpoints import render as replica_endpoints

    workdir = tmp_path_factory.mktemp("replicas")
    crm = crm_snapshot(workdir)
    name = f"crm_replicas_{uuid.uuid4().hex[:8]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    queue = f"crm.replicas.{uuid.uuid4().hex[:8]}"
    front, actions_front = free_port(), free_port()
    rasa_ports, action_ports = [free_port(), free_port()], [free_port(), free_port()]
    tracker_url = admin.rsplit("/", 1)[0] + "/" + name
    env = {**os.environ, "CRM_DATABASE_URL": f"sqlite:///{crm}", "RASA_TELEMETRY_ENABLED":
           "false", "CRM_TRACKER_DB_URL": tracker_url, "CRM_EVENT_BROKER_URL":
           f"{AMQP}#{queue}", "TELEGRAM_TOKEN": "", "CRM_RATE_LIMIT": "off",
           "CRM_RATE_LIMIT_IP": "off"}
    endpoints = workdir / "endpoints.yml"
    endpoints.write_text(replica_endpoints(tracker_url, "redis://127.0.0.1:6379/0",
                                           f"http://127.0.0.1:{actions_front}/webhook",
                                           key_prefix=name))
    config = workdir / "haproxy.cfg"
    stats = f"127.0.0.1:{free_port()}"
    config.write_text(haproxy_config(rasa_ports, action_ports,
                                     rasa_bind=f"127.0.0.1:{front}",
                                     actions_bind=f"127.0.0.1:{actions_front}",
                                     stats_bind=stats))
    c = Cluster(workdir, env, endpoints, f"http://127.0.0.1:{front}", rasa_ports,
                tracker_db=name, queue=queue)
    try:
        for i, port in enumerate(action_ports):
            c.others.append(start_actions(port, env, workdir / f"actions{i}.log"))
        c.others.append(launch([_haproxy(), "-db", "-f", str(config)],
                               workdir / "haproxy.log", env))
        c.rasa = [c.start_rasa(0), c.start_rasa(1)]
        for i, proc in enumerate(c.rasa):
            c.wait_rasa(i, proc)
        wait_backends_up(f"http://{stats}/", c.others[-1], workdir / "haproxy.log")
        c.consumer = c.start_consumer()
        yield c
    finally:
        for proc in [*c.rasa, *c.others, c.consumer]:
            stop(proc)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection, channel, _ = events._connect(f"{AMQP}#{queue}")
        channel.queue_delete(queue=queue)
        connection.close()


@dataclass
class Outcome:
    replies: dict[str, list[list[dict]]] = field(default_factory=dict)
    retries: int = 0
    done: int = 0


async def _conversation(client: httpx.AsyncClient, url: str, sender: str,
                        outcome: Outcome) -> None:
    outcome.replies[sender] = []
    for turn in range(TURNS):
        body = {"sender": sender, "message": TEXTS[turn % len(TEXTS)],
                "message_id": f"{sender}:{turn}"}
        for attempt in range(8):
            try:
                r = await client.post(f"{url}/webhooks/rest/webhook", json=body)
                if r.status_code == 200:
                    outcome.replies[sender].append(r.json())
                    break
            except httpx.TransportError:
                pass
            outcome.retries += 1
            await asyncio.sleep(0.5 * (attempt + 1))
        else:
            raise AssertionError(f"{sender} turn {turn} never answered")
        outcome.done += 1


async def _load(cluster: Cluster, outcome: Outcome, senders: list[str]) -> None:
    limits = httpx.Limits(max_connections=CONVERSATIONS)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(_conversation(client, cluster.url, s, outcome)
                               for s in senders))


def _failover(cluster: Cluster, outcome: Outcome) -> None:
    """A third of the way: kill replica 0 and the consumer; the consumer comes back with
    its CRM down for CRM_DOWN_S seconds, then with the CRM; replica 0 is started again."""
    total = CONVERSATIONS * TURNS
    while outcome.done < total // 3:
        time.sleep(0.05)
    cluster.rasa[0].send_signal(signal.SIGKILL)
    cluster.rasa[0].wait(10)
    cluster.consumer.send_signal(signal.SIGKILL)
    cluster.consumer.wait(10)
    cluster.consumer = cluster.start_consumer(crm_down=True)
    down_until = time.monotonic() + CRM_DOWN_S
    cluster.rasa[0] = cluster.start_rasa(0)
    cluster.wait_rasa(0, cluster.rasa[0])
    time.sleep(max(0.0, down_until - time.monotonic()))
    cluster.consumer.terminate()
    cluster.consumer.wait(30)
    cluster.consumer = cluster.start_consumer()


def test_a_replica_killed_under_load_loses_and_repeats_nothing(cluster: Cluster) -> None:
    import threading

    import psycopg

    senders = [f"web:fo-{uuid.uuid4().hex[:6]}-{i}" for i in range(CONVERSATIONS)]
    outcome = Outcome()
    chaos = threading.Thread(target=_failover, args=(cluster, outcome), daemon=True)
    chaos.start()
    asyncio.run(_load(cluster, outcome, senders))
    chaos.join(300)
    assert not chaos.is_alive()
    # every turn answered, to its own sender
    for sender in senders:
        assert len(outcome.replies[sender]) == TURNS
        for replies in outcome.replies[sender]:
            assert replies, f"{sender}: a turn without a reply"
            assert {r["recipient_id"] for r in replies} == {sender}
    # every user message once, in order, in the tracker store
    with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", "").rsplit("/", 1)[0] + "/"
                         + cluster.tracker_db) as conn:
        rows = conn.execute("SELECT sender_id, data FROM events WHERE type_name = 'user' "
                            "ORDER BY id").fetchall()
    stored: dict[str, list[str]] = {}
    for sender, data in rows:
        stored.setdefault(sender, []).append(json.loads(data).get("message_id"))
    for sender in senders:
        assert stored.get(sender) == [f"{sender}:{t}" for t in range(TURNS)], sender
    # every user message once, in order, in the CRM (after the consumer drained the queue)
    url = cluster.env["CRM_EVENT_BROKER_URL"]
    deadline = time.monotonic() + 120
    while events.queue_depth(url) and time.monotonic() < deadline:
        time.sleep(0.5)
    crm = Path(cluster.env["CRM_DATABASE_URL"].removeprefix("sqlite:///"))
    import sqlite3

    time.sleep(2)  # the consumer's last batch
    with sqlite3.connect(crm) as conn:
        got = conn.execute("SELECT sender_id, event_id FROM interactions WHERE direction = 'in' "
                           "AND sender_id LIKE 'web:fo-%' ORDER BY id").fetchall()
    crm_rows: dict[str, list[str]] = {}
    for sender, event_id in got:
        crm_rows.setdefault(sender, []).append(event_id)
    for sender in senders:
        assert crm_rows.get(sender) == [f"{sender}:{t}" for t in range(TURNS)], sender
    print(f"\nfailover: {CONVERSATIONS} x {TURNS} turns, {outcome.retries} client retries")
