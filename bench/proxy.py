"""A tiny sticky reverse proxy: each REST sender always reaches the same Rasa process.

Rasa keeps a conversation's lock and (with an in-memory lock store) its order in
one process, so every message of a sender must go to the same backend. This
proxy reads the JSON body of ``POST /webhooks/rest/webhook``, hashes its
``sender`` (CRC-32, stable across processes, unlike ``hash()``) and forwards the
request to ``backends[crc32(sender) % len(backends)]`` over a pool of
keep-alive connections. Any other request goes to the first backend.

HTTP/1.1 only, with ``Content-Length`` bodies (what Rasa's Sanic server and
httpx send); enough for the benchmark, not a general-purpose proxy.

Run::

    python -m bench.proxy --port 8080 --backend 127.0.0.1:5005 --backend 127.0.0.1:5006
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import zlib
from collections import deque

logger = logging.getLogger(__name__)

REST_PATH = b"/webhooks/rest/webhook"
MAX_HEADER = 64 * 1024


class BadRequest(Exception):
    """The client sent something this proxy does not understand."""


def pick_backend(sender: str, n_backends: int) -> int:
    """Index of the backend that owns ``sender`` (stable across runs and processes)."""
    return zlib.crc32(sender.encode("utf-8")) % n_backends


def sender_of(body: bytes) -> str | None:
    """The ``sender`` of a REST message body, or None."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    sender = payload.get("sender") if isinstance(payload, dict) else None
    return sender if isinstance(sender, str) else None


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Read one HTTP/1.1 message: (start line + headers as raw bytes, headers, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEADER:
        raise BadRequest("header too large")
    headers: dict[bytes, bytes] = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            key, value = line.split(b":", 1)
            headers[key.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        raise BadRequest("chunked bodies are not supported")
    length = int(headers.get(b"content-length", b"0") or 0)
    body = await reader.readexactly(length) if length else b""
    return head, headers, body


class Backend:
    """One upstream server and its idle keep-alive connections."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()
        self.requests = 0

    async def exchange(self, head: bytes, body: bytes) -> bytes:
        """Send one request and return the raw response (retrying once on a stale connection)."""
        for attempt in range(2):
            if self.idle:
                reader, writer = self.idle.pop()
                reused = True
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                reused = False
            try:
                writer.write(head + body)
                await writer.drain()
                rhead, rheaders, rbody = await read_message(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                if reused and attempt == 0:
                    continue  # the backend closed an idle connection: open a fresh one
                raise
            if rheaders.get(b"connection", b"").lower() == b"close":
                writer.close()
            else:
                self.idle.append((reader, writer))
            self.requests += 1
            return rhead + rbody
        raise ConnectionError("unreachable")


class StickyProxy:
    """Routes REST messages by sender over ``backends``."""

    def __init__(self, backends: list[str]) -> None:
        if not backends:
            raise ValueError("at least one backend")
        self.backends = [Backend(b) for b in backends]

    def route(self, path: bytes, body: bytes) -> Backend:
        if path.split(b"?", 1)[0] == REST_PATH:
            sender = sender_of(body)
            if sender is not None:
                return self.backends[pick_backend(sender, len(self.backends))]
        return self.backends[0]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head, headers, body = await read_message(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the client closed its connection
                parts = head.split(b" ", 2)
                path = parts[1] if len(parts) > 1 else b"/"
                if path == b"/proxy/stats":
                    stats = json.dumps([b.requests for b in self.backends]).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(stats), stats))
                    await writer.drain()
                    continue
                try:
                    response = await self.route(path, body).exchange(head, body)
                except (OSError, asyncio.IncompleteReadError, BadRequest) as exc:
                    logger.warning("backend failed: %s", exc)
                    msg = b'{"error": "bad_gateway"}'
                    response = (b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n"
                                b"Content-Length: %d\r\n\r\n%s" % (len(msg), msg))
                writer.write(response)
                await writer.drain()
                if headers.get(b"connection", b"").lower() == b"close":
                    return
        except BadRequest as exc:
            logger.warning("bad request: %s", exc)
        finally:
            writer.close()


async def serve(port: int, backends: list[str], host: str = "127.0.0.1") -> None:
    proxy = StickyProxy(backends)
    server = await asyncio.start_server(proxy.handle, host, port, backlog=1024)
    logger.info("sticky proxy on %s:%d -> %s", host, port, ", ".join(backends))
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", action="append", required=True,
                        help="host:port of a Rasa server (repeat for each)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        from uvloop import run
    except ImportError:  # plain asyncio works too, with more CPU per request
        run = asyncio.run
    run(serve(args.port, args.backend, args.host))


if __name__ == "__main__":
    main()
