"""The sticky proxy and the load generator, against two fake backends on loopback (~2 s)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from bench.conversations import Conversation, Turn
from bench.loadgen import order_check, run_phase, summarize
from bench.proxy import StickyProxy, pick_backend, read_message

pytestmark = pytest.mark.bench


async def fake_rasa(name: str) -> asyncio.Server:
    """Answers each REST message with ``<name>:<message>`` to its sender, keep-alive."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                _head, _headers, body = await read_message(reader)
                payload = json.loads(body)
                await asyncio.sleep(0.002)
                reply = json.dumps([{"recipient_id": payload["sender"],
                                     "text": f"{name}:{payload['message']}"}]).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(reply), reply))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def port(server: asyncio.Server) -> int:
    return server.sockets[0].getsockname()[1]


def script(n: int) -> Conversation:
    texts = [f"turn {i} of conversation {n}" for i in range(4)]
    return Conversation("fake", [Turn(t, re.escape(t) + "$", i % 2 == 1)
                                 for i, t in enumerate(texts)])


def test_pick_backend_is_stable() -> None:
    assert pick_backend("web:abc", 2) == pick_backend("web:abc", 2)
    assert {pick_backend(f"s{i}", 2) for i in range(20)} == {0, 1}


def test_sticky_proxy_keeps_each_sender_on_one_backend_and_in_order() -> None:
    async def scenario() -> None:
        backends = [await fake_rasa("A"), await fake_rasa("B")]
        proxy = StickyProxy([f"127.0.0.1:{port(b)}" for b in backends])
        front = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        try:
            phase = await run_phase(f"http://127.0.0.1:{port(front)}", script, name="smoke",
                                    concurrency=8, warmup=0.2, duration=1.0)
        finally:
            front.close()
            for b in backends:
                b.close()
        summary = summarize([phase])
        assert summary["errors"] == 0
        assert summary["replies_as_scripted"] == 1.0
        assert summary["throughput_msgs_per_s"] > 0
        assert summary["latency_ms_action"]["n"] > 0
        check = order_check([phase])
        assert check["turns_out_of_order"] == 0 and check["senders_with_a_bad_turn"] == 0
        seen: dict[str, set[str]] = {}
        for t in phase.turns:
            seen.setdefault(t.sender, set()).add(t.reply.split(":", 1)[0])
        for sender, names in seen.items():
            assert names == {"AB"[pick_backend(sender, 2)]}
        assert all(b.requests > 0 for b in proxy.backends)

    asyncio.run(scenario())
