"""A stand-in for Rasa's REST channel on loopback: answers each message with
``<name>:<message>`` to its sender (keep-alive) and the health check ``GET /`` with
200; for tests of the load balancer's routing."""

from __future__ import annotations

import asyncio
import json


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 request: (request line and headers, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, (await reader.readexactly(length) if length else b"")


async def fake_rasa(name: str, counts: dict[str, int]) -> asyncio.Server:
    """Answers each REST message with ``<name>:<message>`` to its sender (keep-alive), and
    the health check ``GET /`` with 200."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head, body = await read_message(reader)
                if head.startswith(b"GET"):
                    reply = b'{"status": "ok"}'
                else:
                    payload = json.loads(body)
                    counts[name] = counts.get(name, 0) + 1
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
