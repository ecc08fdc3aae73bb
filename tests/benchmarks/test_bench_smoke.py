"""The load generator through HAProxy (as make bench and make run configure it), against
two fake Rasa backends on loopback (~3 s)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.conversations import Conversation, Turn
from bench.loadgen import order_check, run_phase, summarize
from bench.stack import free_port
from scripts.haproxy_config import render
from tests.support.fake_rasa import fake_rasa, port

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").is_file()
                                      else None)
pytestmark = [pytest.mark.bench,
              pytest.mark.skipif(HAPROXY is None, reason="HAProxy is not installed (make haproxy)")]


def script(n: int) -> Conversation:
    texts = [f"turn {i} of conversation {n}" for i in range(4)]
    return Conversation("fake", [Turn(t, re.escape(t) + "$", i % 2 == 1)
                                 for i, t in enumerate(texts)])


def test_load_through_haproxy_reaches_both_replicas_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        counts: dict[str, int] = {}
        backends = [await fake_rasa("A", counts), await fake_rasa("B", counts)]
        front = free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(render([port(b) for b in backends], [],
                                 rasa_bind=f"127.0.0.1:{front}"))
        haproxy = subprocess.Popen([HAPROXY, "-db", "-f", str(config)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(1.5)  # two health checks a second apart
            phase = await run_phase(f"http://127.0.0.1:{front}", script, name="smoke",
                                    concurrency=8, warmup=0.2, duration=1.0)
        finally:
            haproxy.terminate()
            haproxy.wait(10)
            for b in backends:
                b.close()
        summary = summarize([phase])
        assert summary["errors"] == 0
        assert summary["replies_as_scripted"] == 1.0
        assert summary["throughput_msgs_per_s"] > 0
        assert summary["latency_ms_action"]["n"] > 0
        check = order_check([phase])
        assert check["turns_out_of_order"] == 0 and check["senders_with_a_bad_turn"] == 0
        assert counts.get("A", 0) > 0 and counts.get("B", 0) > 0  # no stickiness needed

    asyncio.run(scenario())
