"""A fake Telegram Bot API server on loopback, for tests (standard library only).

It speaks enough of the Bot API's JSON for python-telegram-bot: ``getMe``,
``getUpdates`` (long poll with ``timeout`` and ``offset``), ``sendMessage``,
``sendPhoto`` and ``sendDocument`` (multipart uploads or URLs),
``sendLocation``, ``answerCallbackQuery``, ``setWebhook``, ``deleteWebhook``,
``getWebhookInfo``, ``sendChatAction`` and ``editMessageReplyMarkup``. It records
every call, lets a test inject updates (a text message, or a button press on a
message the bot sent), answers the next call of a method with an error such as
429 with ``retry_after``, serves test files (``/files/<name>``), and fails like
Telegram does: an outage of some methods (every call answered 502, say) with
``outage()``, or no server at all (connection refused) between ``down()`` and
``up()``.

Runs in a thread, so a test in either environment can use it::

    with FakeTelegram() as tg:
        env = {"TELEGRAM_TOKEN": tg.token, "TELEGRAM_BASE_URL": tg.base_url}
        tg.send_text(42, "hi")
        reply = tg.wait_for("sendMessage", chat_id=42)
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "CRM Test Bot",
            "username": "crm_test_bot", "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False}
# Form fields python-telegram-bot JSON-encodes (everything that is not a string).
JSON_FIELDS = {
    "chat_id", "message_id", "offset", "limit", "timeout", "allowed_updates",
    "reply_markup", "show_alert", "cache_time", "drop_pending_updates", "max_connections",
    "latitude", "longitude", "entities", "link_preview_options", "disable_notification",
    "protect_content", "reply_parameters", "caption_entities", "has_spoiler",
}
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@dataclass
class Call:
    """One request the bot made."""

    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    status: int = 200
    result: Any = None
    at: float = field(default_factory=time.monotonic)

    @property
    def chat_id(self) -> Any:
        return self.params.get("chat_id")


class FakeTelegram:
    """The fake server. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(self, token: str = "123:ABC") -> None:
        self.token = token
        self.calls: list[Call] = []
        self.files: dict[str, bytes] = {"pic.png": PNG_1PX}
        self.webhook_url = ""
        self._queue: list[tuple[int, dict[str, Any]]] = []  # not confirmed by an offset
        self._delivered: set[int] = set()  # queue entries already handed out
        self._seq = itertools.count()
        self._failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._messages: dict[int, dict[str, Any]] = {}  # what the bot sent, by message id
        self._ids = itertools.count(1000)
        self._update_ids = itertools.count(1)
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._outage: tuple[int, bool, frozenset[str]] | None = None
        self._connections: set[Any] = set()
        self._poll_gen = 0  # a new getUpdates ends the one waiting (409), as Telegram does
        self.conflicts = 0

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> FakeTelegram:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with fake._cond:
                    fake._connections.add(self.connection)

            def finish(self) -> None:
                with fake._cond:
                    fake._connections.discard(self.connection)
                super().finish()

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._port = self._server.server_address[1]
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="fake-telegram", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with self._cond:
                self._cond.notify_all()  # long polls return
            server.shutdown()
            server.server_close()
            with self._cond:
                connections = list(self._connections)
            for conn in connections:  # keep-alive connections die with the server
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def down(self) -> None:
        """Telegram is unreachable: connections are refused until ``up()``."""
        self.stop()

    def up(self) -> None:
        """Telegram is back, on the same port, with everything it had."""
        if self._server is None:
            self.start()

    def outage(self, status: int | None = 502, html: bool = False,
               keep: tuple[str, ...] = ("getUpdates",)) -> None:
        """Answer every call with ``status`` (an HTML page with ``html``), except the
        methods in ``keep``; ``outage(None)`` ends it. Failed calls are recorded."""
        with self._cond:
            self._outage = None if status is None else (status, html, frozenset(keep))

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._port, "not started"
        return self._port

    @property
    def base_url(self) -> str:
        """The Bot API URL in python-telegram-bot's ``base_url`` form."""
        return f"http://127.0.0.1:{self.port}/bot"

    def file_url(self, name: str) -> str:
        """A loopback URL of a test file (Telegram itself could not fetch it)."""
        return f"http://127.0.0.1:{self.port}/files/{name}"

    # -- what a test does ----------------------------------------------------

    def inject(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for ``getUpdates`` (the same dict twice = a re-delivery)."""
        with self._cond:
            self._queue.append((next(self._seq), update))
            self._cond.notify_all()
        return update

    def text_update(self, chat_id: int, text: str, user_id: int | None = None,
                    username: str = "customer") -> dict[str, Any]:
        """A private-chat text message update, not yet queued."""
        user = {"id": user_id or chat_id, "is_bot": False, "first_name": "Test",
                "username": username, "language_code": "en"}
        return {"update_id": next(self._update_ids), "message": {
            "message_id": next(self._ids), "date": int(time.time()), "text": text,
            "chat": {"id": chat_id, "type": "private", "first_name": "Test"}, "from": user}}

    def send_text(self, chat_id: int, text: str, **kwargs: Any) -> dict[str, Any]:
        """The customer writes ``text`` in chat ``chat_id``."""
        return self.inject(self.text_update(chat_id, text, **kwargs))

    def press(self, message: Call | dict[str, Any], data: str,
              user_id: int | None = None) -> dict[str, Any]:
        """The customer presses the button with ``data`` under a message the bot sent."""
        sent = self._message_of(message)
        chat_id = sent["chat"]["id"]
        user = {"id": user_id or chat_id, "is_bot": False, "first_name": "Test",
                "username": "customer"}
        return self.inject({"update_id": next(self._update_ids), "callback_query": {
            "id": str(next(self._ids) * 7919), "from": user, "chat_instance": "ci-1",
            "message": sent, "data": data}})

    def fail_next(self, method: str, status: int = 429, retry_after: int | None = 1,
                  description: str | None = None) -> None:
        """Answer the next call of ``method`` with an error (429 + retry_after by default)."""
        body: dict[str, Any] = {"ok": False, "error_code": status,
                                "description": description or (
                                    f"Too Many Requests: retry after {retry_after}"
                                    if status == 429 else "Error")}
        if status == 429 and retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        with self._cond:
            self._failures.setdefault(method, []).append((status, body))

    def pending(self) -> int:
        """Updates not yet confirmed by a later ``offset`` (Telegram would send them again)."""
        with self._cond:
            return len(self._queue)

    def sent(self, method: str | None = None, chat_id: int | None = None,
             ok_only: bool = True) -> list[Call]:
        """The calls so far, filtered."""
        with self._cond:
            return [c for c in self.calls
                    if (method is None or c.method == method)
                    and (chat_id is None or c.chat_id == chat_id)
                    and (not ok_only or c.status == 200)]

    def texts(self, chat_id: int) -> list[str]:
        """The texts the bot sent to ``chat_id``."""
        return [c.params.get("text", "") for c in self.sent("sendMessage", chat_id)]

    def wait_for(self, method: str, chat_id: int | None = None, count: int = 1,
                 timeout: float = 30, where: Any = None) -> list[Call]:
        """Wait until ``count`` successful calls of ``method`` (matching ``where``) arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                calls = [c for c in self.calls
                         if c.method == method and c.status == 200
                         and (chat_id is None or c.chat_id == chat_id)
                         and (where is None or where(c))]
                if len(calls) >= count:
                    return calls
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(c.method, c.chat_id, c.status) for c in self.calls][-20:]
                    raise TimeoutError(f"{count} x {method} to {chat_id} not seen in "
                                       f"{timeout} s; last calls: {seen}")
                self._cond.wait(min(left, 0.2))

    # -- HTTP ----------------------------------------------------------------

    def _message_of(self, message: Call | dict[str, Any]) -> dict[str, Any]:
        if isinstance(message, Call):
            return message.result
        return message

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        path = urlsplit(req.path).path
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        if path.startswith("/files/"):
            data = self.files.get(path[len("/files/"):])
            if data is None:
                return self._reply(req, 404, b"not found", "text/plain")
            return self._reply(req, 200, data, "image/png")
        prefix = f"/bot{self.token}/"
        if not path.startswith("/bot"):
            return self._reply_json(req, 404, {"ok": False, "error_code": 404,
                                               "description": "Not Found"})
        if not path.startswith(prefix):
            return self._reply_json(req, 401, {"ok": False, "error_code": 401,
                                               "description": "Unauthorized"})
        method = path[len(prefix):]
        params, files = _parse(req.headers.get("Content-Type", ""), body,
                               urlsplit(req.path).query)
        call = Call(method, params, files)
        with self._cond:
            failures = self._failures.get(method)
            failure = failures.pop(0) if failures else None
            outage = self._outage
        if outage is not None and method not in outage[2]:
            call.status = outage[0]
            self._record(call)
            if outage[1]:  # a proxy's error page, not Telegram's JSON
                return self._reply(req, outage[0], b"<html><body><h1>502 Bad Gateway</h1>"
                                   b"</body></html>", "text/html")
            return self._reply_json(req, outage[0], {"ok": False, "error_code": outage[0],
                                                     "description": "Bad Gateway"})
        if failure is not None:
            call.status = failure[0]
            self._record(call)
            return self._reply_json(req, failure[0], failure[1])
        try:
            status, result = self._answer(method, params, files)
        except (KeyError, ValueError, TypeError) as exc:
            status, result = 400, f"Bad Request: {exc}"
        call.status, call.result = status, result
        if method != "getUpdates" or result:
            self._record(call)
        if status != 200:
            return self._reply_json(req, status, {"ok": False, "error_code": status,
                                                  "description": str(result)})
        return self._reply_json(req, 200, {"ok": True, "result": result})

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _answer(self, method: str, params: dict[str, Any],
                files: dict[str, tuple[str, bytes]]) -> tuple[int, Any]:
        if method == "getMe":
            return 200, BOT_USER
        if method == "getUpdates":
            updates = self._get_updates(params)
            if updates is None:
                return 409, ("Conflict: terminated by other getUpdates request; make sure "
                             "that only one bot instance is running")
            return 200, updates
        if method in {"setWebhook", "deleteWebhook"}:
            if method == "setWebhook" and not str(params.get("url", "")).startswith("https://"):
                return 400, "Bad Request: bad webhook: HTTPS url must be provided for webhook"
            self.webhook_url = params.get("url", "") if method == "setWebhook" else ""
            return 200, True
        if method == "getWebhookInfo":
            return 200, {"url": self.webhook_url, "has_custom_certificate": False,
                         "pending_update_count": len(self._queue)}
        if method in {"answerCallbackQuery", "sendChatAction"}:
            return 200, True
        if method == "sendMessage":
            text = params.get("text", "")
            if not text:
                return 400, "Bad Request: message text is empty"
            if len(text.encode("utf-16-le")) // 2 > 4096:
                return 400, "Bad Request: message is too long"
            return 200, self._message(params, text=text)
        if method in {"sendPhoto", "sendDocument"}:
            field_name = "photo" if method == "sendPhoto" else "document"
            if field_name not in files and not params.get(field_name):
                return 400, f"Bad Request: there is no {field_name} in the request"
            source = params.get(field_name, "")
            if isinstance(source, str) and source.startswith("attach://"):
                source = ""
            if source and not files:
                host = urlsplit(source).hostname or ""
                if host in {"127.0.0.1", "localhost"} or not source.startswith("http"):
                    return 400, "Bad Request: wrong file identifier/HTTP URL specified"
            extra = ({"photo": [{"file_id": "ph-1", "file_unique_id": "u-1", "width": 1,
                                 "height": 1}]} if field_name == "photo"
                     else {"document": {"file_id": "doc-1", "file_unique_id": "u-2"}})
            return 200, self._message(params, **extra)
        if method == "sendLocation":
            return 200, self._message(params, location={
                "latitude": float(params["latitude"]), "longitude": float(params["longitude"])})
        if method == "editMessageReplyMarkup":
            sent = self._messages.get(int(params["message_id"]))
            if sent is None:
                return 400, "Bad Request: message to edit not found"
            sent = {**sent}
            sent.pop("reply_markup", None)
            if params.get("reply_markup"):
                sent["reply_markup"] = params["reply_markup"]
            return 200, sent
        return 404, "Not Found"

    def _message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat_id = params["chat_id"]
        if not isinstance(chat_id, int):
            raise ValueError("chat_id must be an integer")
        message = {"message_id": next(self._ids), "date": int(time.time()),
                   "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
                   "from": {k: BOT_USER[k] for k in ("id", "is_bot", "first_name", "username")},
                   **content}
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        with self._cond:
            self._messages[message["message_id"]] = message
        return message

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The updates not yet confirmed, or None when a later call ended this one."""
        offset = params.get("offset")
        timeout = min(float(params.get("timeout") or 0), 50.0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self._cond:
            self._poll_gen += 1
            generation = self._poll_gen
            self._cond.notify_all()
            if offset is not None:  # confirm what was handed out below the offset
                self._queue = [(seq, u) for seq, u in self._queue
                               if not (u["update_id"] < offset and seq in self._delivered)]
            while True:
                if self._server is None:  # going down: hand out nothing
                    return []
                if generation != self._poll_gen:  # another poller came
                    self.conflicts += 1
                    return None
                ready = self._queue[:limit]
                if ready:
                    self._delivered |= {seq for seq, _ in ready}
                    return [json.loads(json.dumps(u)) for _, u in ready]
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(min(left, 0.5))

    @staticmethod
    def _reply_json(req: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        FakeTelegram._reply(req, status, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _reply(req: BaseHTTPRequestHandler, status: int, data: bytes, ctype: str) -> None:
        try:
            req.send_response(status)
            req.send_header("Content-Type", ctype)
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            req.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (long poll)
            pass


def _decode(name: str, value: str) -> Any:
    if name in JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse(ctype: str, body: bytes, query: str
           ) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """Parameters and uploaded files of a Bot API request (form, multipart or JSON)."""
    params: dict[str, Any] = {k: _decode(k, v) for k, v in parse_qsl(query)}
    files: dict[str, tuple[str, bytes]] = {}
    if ctype.startswith("application/json") and body:
        params.update(json.loads(body))
    elif ctype.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                files[name] = (filename, payload)
            else:
                params[name] = _decode(name, payload.decode("utf-8"))
    elif body:
        params.update({k: _decode(k, v) for k, v in parse_qsl(body.decode("utf-8"),
                                                              keep_blank_values=True)})
    return params, files
