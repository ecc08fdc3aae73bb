"""Closed-loop load generator: N concurrent scripted conversations over the REST channel.

Each virtual user runs one scripted conversation after another (a new sender
id for each), sending a turn only after the reply to the previous one arrived,
as a person in a chat does. The phase lasts ``warmup + duration`` seconds;
turns that start during the warm-up are left out of the latency figures, and
throughput counts the turns completed inside the measured window only.
Every reply is checked against the script (see :mod:`bench.conversations`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from bench.conversations import Conversation

REST = "/webhooks/rest/webhook"


@dataclass
class TurnResult:
    sender: str
    index: int
    kind: str
    action: bool
    start: float
    end: float
    ok: bool
    matched: bool
    error: str | None = None
    reply: str = ""


@dataclass
class PhaseResult:
    """Turns of one phase and the window that counts."""

    name: str
    concurrency: int
    window: tuple[float, float]
    turns: list[TurnResult] = field(default_factory=list)
    scripts: dict[str, Conversation] = field(default_factory=dict)

    def measured(self) -> list[TurnResult]:
        lo, hi = self.window
        return [t for t in self.turns if t.start >= lo and t.end <= hi]

    def completed_in_window(self) -> int:
        lo, hi = self.window
        return sum(1 for t in self.turns if lo <= t.end <= hi and t.ok)


def percentiles(values_ms: list[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "n": 0}
    a = np.asarray(values_ms)
    return {"p50": round(float(np.percentile(a, 50)), 2),
            "p95": round(float(np.percentile(a, 95)), 2),
            "p99": round(float(np.percentile(a, 99)), 2),
            "mean": round(float(a.mean()), 2), "n": int(a.size)}


def summarize(phases: list[PhaseResult]) -> dict[str, Any]:
    """Latency percentiles, throughput and script checks over phases of one setting.

    Several phases (rounds) of the same setting are pooled: latencies together,
    throughput as turns completed in all windows over the windows' total length.
    """
    measured = [t for p in phases for t in p.measured()]
    window_s = sum(p.window[1] - p.window[0] for p in phases)
    completed = sum(p.completed_in_window() for p in phases)
    all_turns = [t for p in phases for t in p.turns]
    lat = [1000 * (t.end - t.start) for t in measured if t.ok]
    return {
        "concurrency": phases[0].concurrency if phases else None,
        "seconds_measured": round(window_s, 2),
        "turns_measured": len(measured),
        "throughput_msgs_per_s": round(completed / window_s, 2) if window_s else None,
        "latency_ms": percentiles(lat),
        "latency_ms_no_action": percentiles(
            [1000 * (t.end - t.start) for t in measured if t.ok and not t.action]),
        "latency_ms_action": percentiles(
            [1000 * (t.end - t.start) for t in measured if t.ok and t.action]),
        "errors": sum(1 for t in all_turns if not t.ok),
        "turns_sent": len(all_turns),
        "replies_as_scripted": round(sum(t.matched for t in all_turns) / len(all_turns), 4)
        if all_turns else None,
        "first_errors": sorted({t.error for t in all_turns if t.error})[:3],
    }


def order_check(phases: list[PhaseResult]) -> dict[str, Any]:
    """Were each sender's replies those of its own script, turn by turn, in order?

    A reply that does not match its own turn but matches another turn of the
    same script counts as *out of order* (a turn answered as if it were another).
    """
    senders = 0
    bad_senders = 0
    out_of_order = 0
    mismatched = 0
    for p in phases:
        by_sender: dict[str, list[TurnResult]] = {}
        for t in p.turns:
            by_sender.setdefault(t.sender, []).append(t)
        for sender, turns in by_sender.items():
            senders += 1
            script = p.scripts[sender]
            turns.sort(key=lambda t: t.start)
            bad = False
            for position, t in enumerate(turns):
                if t.index != position:
                    out_of_order += 1
                    bad = True
                elif not t.ok or not t.matched:
                    mismatched += 1
                    bad = True
                    if any(other.matches(t.reply) for j, other in enumerate(script.turns)
                           if j != t.index and other.expect != script.turns[t.index].expect):
                        out_of_order += 1
            bad_senders += bad
    return {"senders": senders, "senders_with_a_bad_turn": bad_senders,
            "turns_out_of_order": out_of_order, "turns_not_as_scripted": mismatched}


async def _user(client: httpx.AsyncClient, url: str, ids: itertools.count,
                make: Callable[[int], Conversation], prefix: str, deadline: float,
                out: PhaseResult) -> None:
    while time.perf_counter() < deadline:
        n = next(ids)
        conv = make(n)
        sender = f"{prefix}-{n}"
        out.scripts[sender] = conv
        for i, turn in enumerate(conv.turns):
            if time.perf_counter() >= deadline:
                return
            body: dict[str, Any] = {"sender": sender, "message": turn.text}
            if turn.metadata is not None:
                body["metadata"] = turn.metadata
            start = time.perf_counter()
            error = None
            reply = ""
            try:
                r = await client.post(url, json=body)
                if r.status_code != 200:
                    error = f"HTTP {r.status_code}"
                else:
                    items = r.json()
                    wrong = [m for m in items if m.get("recipient_id") != sender]
                    if wrong:
                        error = "reply addressed to another sender"
                    reply = "\n".join(m.get("text") or "" for m in items)
            except (httpx.HTTPError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:200]
            end = time.perf_counter()
            out.turns.append(TurnResult(sender, i, conv.kind, turn.action, start, end,
                                        error is None, error is None and turn.matches(reply),
                                        error, reply[:300]))


async def run_phase(base_url: str, make: Callable[[int], Conversation], *, name: str,
                    concurrency: int, warmup: float, duration: float,
                    first_id: int = 0) -> PhaseResult:
    """Drive ``base_url`` with ``concurrency`` users for ``warmup + duration`` seconds.

    Args:
        base_url: The Rasa server (or proxy) base URL.
        make: Conversation number -> script.
        name: Phase name, also the sender ids' prefix (must be unique per run).
        concurrency: Concurrent conversations.
        warmup: Seconds left out of the figures at the start.
        duration: Seconds measured.
        first_id: First conversation number (rotates the CRM data used).
    """
    limits = httpx.Limits(max_connections=concurrency + 4,
                          max_keepalive_connections=concurrency + 4)
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        start = time.perf_counter()
        out = PhaseResult(name, concurrency, (start + warmup, start + warmup + duration))
        ids = itertools.count(first_id)
        deadline = start + warmup + duration
        await asyncio.gather(*(
            _user(client, REST, ids, make, name, deadline, out) for _ in range(concurrency)))
    return out
