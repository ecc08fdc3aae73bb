"""The web chat's socket.io channel (bot env): Rasa's ``socketio`` with namespaced senders.

Registered in credentials.yml as::

    bot.webchat.WebChatInput:
      user_message_evt: user_uttered
      bot_message_evt: bot_uttered

Differences from Rasa's ``SocketIOInput`` (whose name, ``socketio``, it keeps):

* Sender ids are ``web:<session>`` (DESIGN.md); the output channel strips the
  prefix again to emit to the session's room, so the handoff channel's
  ``deliver()`` can push an agent's reply into a web conversation through
  :meth:`WebChatInput.get_output_channel`.
* Sessions always persist: every socket of a session joins the session's room,
  and a client that reconnects with ``session_request {session_id}`` resumes the
  same conversation. Session ids are checked (8-64 of ``[A-Za-z0-9_-]``); a
  socket may only speak for the session it asked for.
* Message metadata is read from ``customData`` (what web chat widgets send) or
  ``metadata``; a signed identity there is checked later by the actions.
* Input is checked (a string of at most 5000 characters, control characters
  dropped) and a failure answers politely instead of going silent.
"""

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import engineio
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from bot.replies import FAILED_REPLY
from crm_ml.contract import WEB_PREFIX
from crm_ml.ratelimit import POLITE_MESSAGE, limiter_for

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "WebChatInput",
    "WebChatOutput",
    "clean_text",
    "metadata_of",
    "room_of",
    "sender_of",
    "valid_session",
]

MAX_MESSAGE_CHARS = 5000
_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def sender_of(session_id: str) -> str:
    """The Rasa sender id of a web chat session."""
    return f"{WEB_PREFIX}{session_id}"


def room_of(recipient_id: str) -> str:
    """The socket.io room of a sender id (``web:abc`` -> ``abc``)."""
    return (recipient_id[len(WEB_PREFIX):] if recipient_id.startswith(WEB_PREFIX)
            else recipient_id)


def valid_session(session_id: Any) -> bool:
    """Whether a client-supplied session id is acceptable."""
    return isinstance(session_id, str) and bool(_SESSION_RE.match(session_id))


def clean_text(text: Any) -> str | None:
    """The message text without control characters, or None when it is not acceptable."""
    if not isinstance(text, str) or len(text) > MAX_MESSAGE_CHARS:
        return None
    return "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())


def metadata_of(data: dict[str, Any], key: str) -> dict[str, Any]:
    """The message metadata from ``key``, ``customData`` or ``metadata`` (JSON text allowed)."""
    for name in (key, "customData", "metadata"):
        value = data.get(name)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
        if isinstance(value, dict):
            return value
    return {}


class _EngineIOServer(engineio.AsyncServer):
    """python-engineio's server, without waiting on a client that does not read.

    On a packet a client must not send (``0``, ``2``, ``6`` in a polling POST)
    python-engineio 4.15 disconnects the session and closes it with ``wait=True``: it waits
    until the client has read every queued packet. A client that never polls kept
    the POST open until Rasa's one-hour response timeout, then got a 503 (a
    request could tie up the server for an hour). Here the session is closed
    at once; the client still gets the CLOSE packet if it polls.
    """

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().handle_request(*args, **kwargs)
        except KeyError:
            # A POST to a session the client closed itself (packet "1"): engine.io checks
            # ``sid in self.sockets``, then _get_socket raises KeyError("Session is
            # disconnected") -- a 500. It is a bad request.
            return response.text("Session is disconnected", status=400)

    async def disconnect(self, sid: str | None = None) -> None:
        if sid is None:
            await super().disconnect()
            return
        socket = self.sockets.get(sid)
        if socket is not None:
            await socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)
            self.sockets.pop(sid, None)


class _SocketIOServer(AsyncServer):
    def _engineio_server_class(self) -> type:
        return _EngineIOServer


class WebChatOutput(SocketIOOutput):
    """Rasa's socket.io output, addressed by ``web:<session>`` sender ids."""

    @classmethod
    def name(cls) -> str:
        return "socketio"

    def __init__(self, sio: AsyncServer, bot_message_evt: str,
                 namespace: str | None = None) -> None:
        super().__init__(sio, bot_message_evt)
        self.namespace = namespace

    async def _send_message(self, socket_id: str, response: Any) -> None:
        await self.sio.emit(self.bot_message_evt, response, room=room_of(socket_id),
                            namespace=self.namespace)

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any],
                               **kwargs: Any) -> None:
        await self._send_message(recipient_id, json_message)


class WebChatInput(SocketIOInput):
    """The web chat: socket.io with ``web:<session>`` sender ids (see the module doc)."""

    @classmethod
    def name(cls) -> str:
        return "socketio"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        credentials = credentials or {}
        channel = cls(
            credentials.get("user_message_evt", "user_uttered"),
            credentials.get("bot_message_evt", "bot_uttered"),
            credentials.get("namespace"),
            True,
            credentials.get("socketio_path", "/socket.io"),
            credentials.get("jwt_key"),
            credentials.get("jwt_method", "HS256"),
            credentials.get("metadata_key", "customData"),
        )
        # [] leaves CORS to Rasa's --cors (as Rasa does); the web chat uses WebSocket,
        # which CORS does not restrict.
        channel.cors_allowed_origins = credentials.get("cors_allowed_origins", [])
        return channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session_persistence = True
        self.cors_allowed_origins: Any = []
        self._sessions: dict[str, str] = {}

    def get_output_channel(self) -> OutputChannel | None:
        """The output that pushes to a ``web:<session>`` conversation's room."""
        if self.sio is None:
            logger.warning("the web chat's socket.io server is not running in this process")
            return None
        return WebChatOutput(self.sio, self.bot_message_evt, self.namespace)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
                  ) -> Blueprint:
        sio = _SocketIOServer(async_mode="sanic",
                              cors_allowed_origins=self.cors_allowed_origins)
        hook = SocketBlueprint(sio, self.socketio_path, "webchat_socketio_webhook", __name__)
        self.sio = sio
        sessions = self._sessions

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @sio.on("connect", namespace=self.namespace)
        async def connect(sid: str, environ: dict, auth: dict | None) -> bool:
            if not self.jwt_key:
                return True
            from rasa.core.channels.channel import decode_bearer_token

            token = (auth or {}).get("token")
            return bool(token and decode_bearer_token(token, self.jwt_key, self.jwt_algorithm))

        @sio.on("disconnect", namespace=self.namespace)
        async def disconnect(sid: str, *args: Any) -> None:
            sessions.pop(sid, None)

        async def join(sid: str, session_id: str) -> None:
            previous = sessions.get(sid)
            if previous and previous != session_id:
                await sio.leave_room(sid, previous, namespace=self.namespace)
            await sio.enter_room(sid, session_id, namespace=self.namespace)
            sessions[sid] = session_id

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: dict | None = None) -> None:
            asked = (data or {}).get("session_id") if isinstance(data, dict) else None
            session_id = asked if valid_session(asked) else uuid.uuid4().hex
            await join(sid, session_id)
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Any) -> None:
            if not isinstance(data, dict):
                return
            session_id = sessions.get(sid)
            if session_id is None:
                # A client that skipped session_request: adopt the id it names.
                if not valid_session(data.get("session_id")):
                    logger.warning("web chat message without a session; ignored")
                    return
                session_id = data["session_id"]
                await join(sid, session_id)
            text = clean_text(data.get("message", ""))
            output = WebChatOutput(sio, self.bot_message_evt, self.namespace)
            sender = sender_of(session_id)
            if text is None:
                await output.send_text_message(
                    sender, f"Messages can be at most {MAX_MESSAGE_CHARS} characters long.")
                return
            if not limiter_for(self.name()).allow(sender):
                # Say so once per 10 seconds, not once per refused message.
                if limiter_for(f"{self.name()}:notice", "1/10").allow(sender):
                    await output.send_text_message(sender, POLITE_MESSAGE)
                return
            message = UserMessage(text, output, sender, input_channel=self.name(),
                                  metadata=metadata_of(data, self.metadata_key))
            try:
                await on_new_message(message)
            except Exception:  # noqa: BLE001 - answer politely, keep the conversation
                logger.exception("web chat message failed")
                await output.send_text_message(sender, FAILED_REPLY)

        return hook
