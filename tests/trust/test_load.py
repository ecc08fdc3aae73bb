"""Load: 100 conversations of 20 turns at once, on loopback, through the real servers.

Must-show 1 of issue 7. Every conversation talks over the REST channel with
CRM actions in its turns (customer FAQ, "how many customers do we have", order
status for signed customers, the hottest leads for signed reps and the
manager). Afterwards:

* every request answered 200 (no 5xx, no timeout);
* every reply is addressed to its own sender (``recipient_id``), and what is
  sender-specific is the sender's own: a signed customer hears about their own
  latest order and no other's, a rep hears only their own leads;
* every user message is in Rasa's tracker store (``events``, type ``user``) and
  in the CRM's ``interactions`` (direction ``in``) exactly once, in order.

Sizes can be lowered for a quick run: ``TRUST_LOAD_CONVERSATIONS``,
``TRUST_LOAD_TURNS``, ``TRUST_LOAD_INFLIGHT`` (requests in flight at once).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.servers import Stack, assistant, eventually
from tests.trust.stack import LATEST_ORDER, owner_of, seed_crm, signed, sqlite_rows

pytestmark = pytest.mark.e2e

SECRET = "trust-load-secret"
CONVERSATIONS = int(os.environ.get("TRUST_LOAD_CONVERSATIONS", "100"))
TURNS = int(os.environ.get("TRUST_LOAD_TURNS", "20"))
INFLIGHT = int(os.environ.get("TRUST_LOAD_INFLIGHT", "32"))
CUSTOMERS = (12347, 12348, 12350)

FAQ = ["hi", "what payment methods do you accept", "how long does delivery take",
       "how many customers do we have", "do you have a refund policy",
       "what are the delivery options", "can you recommend something",
       "how do I create an account", "thanks"]
CUSTOMER = ["hello", "where is my order", "how many customers do we have",
            "what payment methods do you accept", "what's the status of my order", "thanks"]
REP = ["hi", "who are my hottest leads", "how many customers do we have",
       "how is my pipeline looking", "show me my hot leads", "thanks"]
MANAGER = ["who are the hottest leads", "how many customers do we have", "pipeline summary"]


@dataclass
class Conversation:
    """One simulated user: who they are and what they say."""

    sender: str
    user: str | None  # the signed identity, or None for an anonymous visitor
    script: list[str]
    replies: list[list[dict]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def conversations() -> list[Conversation]:
    out = []
    for i in range(CONVERSATIONS):
        kind = i % 4
        if kind == 0:
            user, lines = None, FAQ
        elif kind == 1:
            user, lines = f"customer:{CUSTOMERS[i % len(CUSTOMERS)]}", CUSTOMER
        elif kind == 2:
            user, lines = f"rep:{i % 8 + 1}", REP
        else:
            user, lines = ("manager:1", MANAGER) if i % 8 == 3 else (f"rep:{i % 8 + 1}", REP)
        script = [lines[(t + i) % len(lines)] for t in range(TURNS)]
        out.append(Conversation(f"load:{i:03d}", user, script))
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("trust-load")
    url = f"sqlite:///{workdir / 'crm.db'}"
    seed_crm(url)
    env = {"CRM_IDENTITY_SECRET": SECRET, "CRM_SUPPORT_HOURS": "always"}
    with assistant(workdir, url, extra_env=env) as running:
        yield running


async def _talk(client: httpx.AsyncClient, url: str, conv: Conversation,
                gate: asyncio.Semaphore) -> None:
    metadata = signed(conv.user, SECRET) if conv.user else None
    for text in conv.script:
        body = {"sender": conv.sender, "message": text}
        if metadata is not None:
            body["metadata"] = metadata
        async with gate:
            started = time.monotonic()
            r = await client.post(url, json=body)
            conv.seconds.append(time.monotonic() - started)
        conv.statuses.append(r.status_code)
        conv.replies.append(r.json() if r.status_code == 200 else [])


async def _run_all(rasa_url: str, convs: list[Conversation]) -> float:
    gate = asyncio.Semaphore(INFLIGHT)
    limits = httpx.Limits(max_connections=INFLIGHT, max_keepalive_connections=INFLIGHT)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=httpx.Timeout(120), limits=limits) as client:
        await asyncio.gather(*(_talk(client, f"{rasa_url}/webhooks/rest/webhook", c, gate)
                               for c in convs))
    return time.monotonic() - started


def _lead_ids(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"Lead (\d+),", text)]


def test_100_conversations_of_20_turns(stack: Stack) -> None:
    convs = conversations()
    elapsed = asyncio.run(_run_all(stack.rasa_url, convs))
    sent = sum(len(c.script) for c in convs)
    latencies = sorted(s for c in convs for s in c.seconds)
    print(f"\nload: {len(convs)} conversations x {TURNS} turns = {sent} messages in "
          f"{elapsed:.1f} s ({sent / elapsed:.1f} msg/s); p50 "
          f"{latencies[len(latencies) // 2] * 1000:.0f} ms, p95 "
          f"{latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms, max "
          f"{latencies[-1] * 1000:.0f} ms")

    # 1. Every request answered 200.
    statuses = Counter(s for c in convs for s in c.statuses)
    assert statuses == {200: sent}, statuses

    # 2. Every reply to its own sender; sender-specific content is the sender's own.
    problems: list[str] = []
    for c in convs:
        for text, replies in zip(c.script, c.replies, strict=True):
            if not replies:
                problems.append(f"{c.sender}: no reply to {text!r}")
            wrong = {r.get("recipient_id") for r in replies} - {c.sender}
            if wrong:
                problems.append(f"{c.sender}: replies addressed to {wrong}")
            said = " ".join(r.get("text") or "" for r in replies)
            if "went wrong" in said or "Traceback" in said:
                problems.append(f"{c.sender}: {text!r} -> {said[:120]!r}")
            asks_order = text in {"where is my order", "what's the status of my order"}
            if c.user and c.user.startswith("customer:") and asks_order:
                own = LATEST_ORDER[int(c.user.split(":")[1])]
                others = set(LATEST_ORDER.values()) - {own}
                if own not in said or any(o in said for o in others):
                    problems.append(f"{c.sender} ({c.user}): {text!r} -> {said[:160]!r}")
            if c.user and c.user.startswith("rep:") and "hot" in text:
                rep = int(c.user.split(":")[1])
                leads = _lead_ids(said)
                if not leads or any(owner_of(lead) != rep for lead in leads):
                    problems.append(f"{c.sender} ({c.user}): leads {leads} in {said[:120]!r}")
            if c.user == "manager:1" and "hot" in text and len(_lead_ids(said)) != 5:
                problems.append(f"{c.sender} (manager): {said[:120]!r}")
    assert not problems, "\n".join(problems[:20])

    # 3. Every user message stored exactly once, in order, in both stores (the CRM
    # event broker writes from a queue: wait until it has written what it owes).
    eventually(lambda: sqlite_rows(
        stack.workdir / "crm.db", "SELECT COUNT(*) FROM interactions WHERE direction = 'in' "
        "AND sender_id LIKE 'load:%'") >= [(sent,)], timeout=30)
    tracker_rows = sqlite_rows(
        stack.workdir / "tracker.db",
        "SELECT sender_id, data FROM events WHERE type_name = 'user' AND sender_id LIKE "
        "'load:%' ORDER BY id")
    crm_rows = sqlite_rows(
        stack.workdir / "crm.db",
        "SELECT sender_id, text, event_id FROM interactions WHERE direction = 'in' "
        "AND sender_id LIKE 'load:%' ORDER BY created_at, id")
    in_tracker: dict[str, list[str]] = defaultdict(list)
    tracker_ids: dict[str, list[str]] = defaultdict(list)
    for sender, data in tracker_rows:
        event = json.loads(data)
        in_tracker[sender].append(event.get("text"))
        tracker_ids[sender].append(event.get("message_id"))
    in_crm: dict[str, list[str]] = defaultdict(list)
    crm_ids: dict[str, list[str]] = defaultdict(list)
    for sender, text, event_id in crm_rows:
        in_crm[sender].append(text)
        crm_ids[sender].append(event_id)
    for c in convs:
        assert in_tracker[c.sender] == c.script, f"tracker store of {c.sender}"
        assert in_crm[c.sender] == c.script, f"interactions of {c.sender}"
        # The same messages: the CRM row of each turn carries the tracker event's id.
        assert crm_ids[c.sender] == tracker_ids[c.sender], c.sender
    assert len(tracker_rows) == len(crm_rows) == sent
    every_id = [i for ids in crm_ids.values() for i in ids]
    assert len(set(every_id)) == len(every_id) == sent
