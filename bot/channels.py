"""Input channels of the Rasa server (bot env).

* ``CRMRestInput`` (name ``rest``, ``POST /webhooks/rest/webhook``): Rasa's REST
  channel with checked input (a clear 400 for a malformed payload instead of a
  500), rate limits per sender and per client address (a 429 with
  ``Retry-After``; see :mod:`crm_ml.ratelimit`), and an outbox: REST cannot
  push, so messages a human agent sent while the conversation was handed over
  are returned with the customer's next request, before the bot's own replies.
* ``HandoffInput`` (name ``handoff``): the agent side of a handoff, called by
  the console: ``POST /webhooks/handoff/reply`` delivers an agent's message on
  the customer's own channel, ``POST /webhooks/handoff/resume`` hands the
  conversation back to the bot: "I'm back" only where the bot was paused, then
  the rating prompt (1-5 buttons; the voice variant asks for a digit). An
  agent's reply is marked as a person's: the web chat gets ``agent`` (their
  name) in the message for its own bubble; Telegram, REST and voice get the
  name before the text. Requests are signed:
  header ``X-CRM-Signature`` = hex HMAC-SHA256 of the raw body under
  ``CRM_IDENTITY_SECRET``.
"""

import asyncio
import hashlib
import hmac
import json
import logging
from asyncio import CancelledError
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from rasa.core.channels.rest import RestInput
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationResumed,
    SlotSet,
    UserUttered,
)
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import speedups
from bot.replies import FAILED_REPLY
from crm_ml.config import get_settings
from crm_ml.contract import PLATFORM_PREFIXES
from crm_ml.ratelimit import POLITE_MESSAGE, check_client, limiter_for

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_MESSAGE_ID_CHARS",
    "MAX_SENDER_CHARS",
    "NO_PUSH_CHANNELS",
    "OUTBOX_SLOT",
    "CRMRestInput",
    "HandoffInput",
    "bad_request",
    "agent_label",
    "deliver",
    "deliver_prompt",
    "forwarded_for",
    "parse_rest_payload",
]

OUTBOX_SLOT = "handoff_outbox"
MAX_MESSAGE_CHARS = 5000
MAX_SENDER_CHARS = 128
MAX_MESSAGE_ID_CHARS = 64
NO_PUSH_CHANNELS = {None, "rest", "cmdline", "callback"}
MARKED_CHANNELS = {"socketio"}  # show the agent's name themselves (chat.js)
THREAD_SLOT = "thread_ticket"
RATING_SLOT = "rating_pending"
RATING_RESPONSE = "utter_rating_ask"


def bad_request(reason: Text) -> HTTPResponse:
    return response.json({"error": "bad_request", "reason": reason}, status=400)


def parse_rest_payload(raw: bytes) -> Dict[Text, Any]:
    """Check a REST message payload; raise ValueError with a reason a client can act on."""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        # RecursionError: JSON nested thousands deep (a 500 before).
        raise ValueError("the body must be UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object")
    sender, text = payload.get("sender", "default"), payload.get("message")
    if not isinstance(sender, str) or not sender.strip() or len(sender) > MAX_SENDER_CHARS:
        raise ValueError(f"'sender' must be a non-empty string of at most "
                         f"{MAX_SENDER_CHARS} characters")
    # Control characters and lone surrogates ("\ud800" in the JSON) cannot be stored:
    # the SQL tracker store's UnicodeEncodeError is a ValueError, on which Rasa 3.6's
    # SQLTrackerStore.session_scope calls sys.exit(1) -- one request stopped the server.
    if not sender.strip().isprintable():
        raise ValueError("'sender' must be printable text")
    # A conversation whose sender the platform authenticates (Telegram, Twilio): a REST
    # client naming it would continue it, verified customer included.
    if sender.strip().startswith(PLATFORM_PREFIXES):
        raise ValueError("'sender' may not name a Telegram or phone conversation")
    if not isinstance(text, str):
        raise ValueError("'message' must be a string")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValueError(f"'message' is longer than {MAX_MESSAGE_CHARS} characters")
    metadata = payload.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError("'metadata' must be a JSON object")
    message_id = payload.get("message_id")
    if message_id is not None and (not isinstance(message_id, str) or not message_id.strip()
                                   or len(message_id) > MAX_MESSAGE_ID_CHARS
                                   or not message_id.isprintable()):
        raise ValueError(f"'message_id' must be printable text of at most "
                         f"{MAX_MESSAGE_ID_CHARS} characters")
    clean = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    return {"sender": sender.strip(), "message": clean, "metadata": metadata,
            "message_id": message_id.strip() if message_id else None}


def forwarded_for(request: Request) -> Optional[Text]:
    """Every ``X-Forwarded-For`` header of the request, in order, as one list (or None)."""
    values = request.headers.getall("x-forwarded-for", None)
    return ",".join(values) if values else None


async def _with_tracker(app: Any, sender_id: Text,
                        change: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``change(tracker)`` under the conversation lock and save the tracker."""
    agent = app.ctx.agent
    async with agent.lock_store.lock(sender_id):
        tracker = await agent.processor.get_tracker(sender_id)
        before = len(tracker.events)
        result = await change(tracker)
        if len(tracker.events) != before:  # nothing to write otherwise
            await agent.processor.save_tracker(tracker)
    return result


def _output_channel(app: Any, name: Optional[Text]) -> Optional[OutputChannel]:
    if name in NO_PUSH_CHANNELS:
        return None
    for channel in getattr(app.ctx, "input_channels", None) or []:
        if channel.name() == name:
            return channel.get_output_channel()
    return None


def agent_label(name: Optional[Text]) -> Text:
    """How an agent signs a reply on channels that show only text."""
    clean = " ".join(str(name or "").split())[:64]
    return f"{clean} (support team)" if clean else "Support team"


async def deliver(app: Any, tracker: Any, text: Text, metadata: Dict[Text, Any]) -> Text:
    """Send ``text`` to the customer on their channel, or queue it in the REST outbox.

    With ``agent_name`` in ``metadata`` the text is an agent's: the web chat gets
    the name in the message (its own bubble), other channels the name before
    the text.

    Returns:
        ``pushed`` or ``queued``.
    """
    tracker.update(BotUttered(text, metadata=metadata))
    channel = tracker.get_latest_input_channel()
    agent_name = metadata.get("agent_name")
    shown = text if agent_name is None else f"{agent_label(agent_name)}: {text}"
    output = _output_channel(app, channel)
    if output is not None:
        try:
            if agent_name is not None and channel in MARKED_CHANNELS:
                await output.send_custom_json(tracker.sender_id, {
                    "text": text, "agent": str(agent_name)[:64] or "Support team"})
            else:
                await output.send_text_message(tracker.sender_id, shown)
            return "pushed"
        except Exception:  # noqa: BLE001 - fall back to the outbox, never lose it
            logger.exception("push to %s failed; queued instead", channel)
    outbox = list(tracker.get_slot(OUTBOX_SLOT) or [])
    outbox.append({"text": shown, **metadata})
    tracker.update(SlotSet(OUTBOX_SLOT, outbox))
    return "queued"


def _response_for(domain: Any, name: Text, channel: Optional[Text]) -> Dict[Text, Any]:
    """A response's variant for ``channel`` (else its first channel-free variant)."""
    variants = domain.responses.get(name) or [{}]
    return next((v for v in variants if v.get("channel") == channel),
                next((v for v in variants if not v.get("channel")), variants[0]))


async def deliver_prompt(app: Any, tracker: Any, name: Text, metadata: Dict[Text, Any]) -> Text:
    """Send a domain response with its buttons (the rating prompt) to the customer.

    Returns:
        ``pushed`` or ``queued``.
    """
    channel = tracker.get_latest_input_channel()
    variant = _response_for(app.ctx.agent.domain, name, channel)
    text, buttons = variant.get("text") or "", list(variant.get("buttons") or [])
    tracker.update(BotUttered(text, data={"buttons": buttons} if buttons else {},
                              metadata=metadata))
    output = _output_channel(app, channel)
    if output is not None:
        try:
            if buttons:
                await output.send_text_with_buttons(tracker.sender_id, text, buttons)
            else:
                await output.send_text_message(tracker.sender_id, text)
            return "pushed"
        except Exception:  # noqa: BLE001 - fall back to the outbox, never lose it
            logger.exception("push to %s failed; queued instead", channel)
    outbox = list(tracker.get_slot(OUTBOX_SLOT) or [])
    outbox.append({"text": text, **({"buttons": buttons} if buttons else {}), **metadata})
    tracker.update(SlotSet(OUTBOX_SLOT, outbox))
    return "queued"


class CRMRestInput(RestInput):
    """Rasa's REST channel with input checks and the handoff outbox."""

    @classmethod
    def name(cls) -> Text:
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]
                  ) -> Blueprint:
        speedups.install()
        hook = Blueprint("crm_rest_webhook", __name__)

        @hook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            try:
                payload = parse_rest_payload(request.body or b"")
            except ValueError as exc:
                return bad_request(str(exc))
            decision = limiter_for(self.name()).check(payload["sender"])
            limited = "sender"
            if decision.allowed:  # a client that names a new sender each time: its address
                decision = check_client(self.name(), request.ip, forwarded_for(request))
                limited = "client address"
            if not decision.allowed:
                logger.info("REST %s rate-limited for %.1f s", limited, decision.retry_after)
                return response.json(
                    {"error": "too_many_requests", "reason": POLITE_MESSAGE,
                     "retry_after": int(decision.retry_after_header)},
                    status=429, headers={"Retry-After": decision.retry_after_header})
            if payload["message_id"]:
                done = await answered(request.app, payload["sender"], payload["message_id"])
                if done is not None:  # a client's retry of a message already handled
                    return response.json(done)
            collector = CollectingOutputChannel()
            try:
                await on_new_message(UserMessage(
                    payload["message"], collector, payload["sender"],
                    input_channel=self.name(), metadata=payload["metadata"],
                    message_id=payload["message_id"]))
            except CancelledError:
                logger.error("REST message timed out")
            except Exception:  # noqa: BLE001 - answer politely, keep the conversation
                logger.exception("REST message failed")
                collector.messages.append({"recipient_id": payload["sender"],
                                           "text": FAILED_REPLY})
            await published(request.app)
            queued = await self.drain_outbox(request.app, payload["sender"])
            return response.json(queued + collector.messages)

        return hook

    @staticmethod
    async def drain_outbox(app: Any, sender_id: Text) -> List[Dict[Text, Any]]:
        # The tracker this process saved a moment ago for this sender, when the
        # tracker store keeps it (bot.tracker_store): no outbox, nothing to do.
        # (A message queued by another process is seen on the next turn, whose
        # read checks the database.)
        store = app.ctx.agent.tracker_store
        store = getattr(store, "_tracker_store", store)  # FailSafeTrackerStore
        peek = getattr(store, "peek", None)
        if peek is not None:
            kept = peek(sender_id)
            if kept is not None and not kept.get_slot(OUTBOX_SLOT):
                return []

        async def take(tracker: Any) -> List[Dict[Text, Any]]:
            items = list(tracker.get_slot(OUTBOX_SLOT) or [])
            if items:
                tracker.update(SlotSet(OUTBOX_SLOT, None))
            return items

        try:
            items = await _with_tracker(app, sender_id, take)
        except Exception:  # noqa: BLE001 - the outbox stays for the next request
            logger.exception("could not read the outbox")
            return []
        return [{"recipient_id": sender_id, **item} for item in items]


def _broker(app: Any) -> Any:
    store = getattr(app.ctx.agent, "tracker_store", None)
    return getattr(store, "event_broker", None) or getattr(
        getattr(store, "_tracker_store", None), "event_broker", None)


async def published(app: Any, timeout: float = 5.0) -> None:
    """With events going to RabbitMQ, wait until this turn's are confirmed there.

    The reply then leaves only once the turn's messages are durable: a replica that
    dies after answering has lost nothing. (Without RabbitMQ the CRM writer batches
    in the background, and the tracker store holds every event regardless.)
    """
    broker = _broker(app)
    if broker is None or not getattr(broker, "durable_queue", False):
        return
    done = await asyncio.get_running_loop().run_in_executor(None, broker.flush, timeout)
    if not done:
        logger.error("events not confirmed by RabbitMQ within %.0f s", timeout)


async def answered(app: Any, sender_id: Text, message_id: Text
                   ) -> Optional[List[Dict[Text, Any]]]:
    """The replies already given to the user message ``message_id``, or None if the
    conversation holds no such message.

    A client that retries a message whose answer it did not get (a replica that
    died after storing the turn, a load balancer's retry) gets the same replies
    again, and the message is not handled twice.
    """
    tracker = await app.ctx.agent.processor.get_tracker(sender_id)
    replies: Optional[List[Dict[Text, Any]]] = None
    turn: List[Any] = []
    for event in tracker.events:
        if isinstance(event, UserUttered):
            if replies is not None:
                break  # the next user message: the answer ended before it
            if event.message_id == message_id:
                replies = []
                turn.append(event)
        elif replies is not None and isinstance(event, BotUttered):
            turn.append(event)
            item: Dict[Text, Any] = {"recipient_id": sender_id}
            if event.text:
                item["text"] = event.text
            item.update({k: v for k, v in (event.data or {}).items() if v})
            replies.append(item)
    if replies is not None:
        logger.info("a message handled before (a retry, a redelivery) answered from the tracker")
        # The replica that handled it may have died before its events left: publish
        # them again (stored once per event id).
        broker = _broker(app)
        if broker is not None:
            for event in turn:
                broker.publish({"sender_id": sender_id, **event.as_dict()})
            await published(app)
    return replies


def _verify(request: Request) -> Optional[Dict[Text, Any]]:
    secret = get_settings().identity_secret
    signature = request.headers.get("X-CRM-Signature", "")
    if not secret or not signature:
        return None
    expected = hmac.new(secret.encode(), request.body or b"", hashlib.sha256).hexdigest()
    # Bytes: compare_digest raises TypeError on a non-ASCII str (a 500 before).
    if not hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8", "replace")):
        return None
    try:
        payload = json.loads(request.body)
    except (ValueError, TypeError):
        return None
    return payload if isinstance(payload, dict) else None


class HandoffInput(InputChannel):
    """The agent's side of a handoff (called by the console, signed)."""

    @classmethod
    def name(cls) -> Text:
        return "handoff"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]
                  ) -> Blueprint:
        hook = Blueprint("crm_handoff_webhook", __name__)

        @hook.route("/reply", methods=["POST"])
        async def reply(request: Request) -> HTTPResponse:
            payload = _verify(request)
            if payload is None:
                return response.json({"error": "forbidden"}, status=403)
            sender, text = payload.get("sender_id"), payload.get("text")
            agent_name = payload.get("agent_name") or "Support team"
            if not isinstance(sender, str) or not isinstance(text, str) or not text.strip():
                return bad_request("'sender_id' and a non-empty 'text' are required")

            async def send(tracker: Any) -> Text:
                return await deliver(request.app, tracker, text[:MAX_MESSAGE_CHARS],
                                     {"agent": str(payload.get("agent") or "agent")[:64],
                                      "agent_name": str(agent_name)[:64]})

            status = await _with_tracker(request.app, sender, send)
            return response.json({"status": status})

        @hook.route("/resume", methods=["POST"])
        async def resume(request: Request) -> HTTPResponse:
            payload = _verify(request)
            if payload is None:
                return response.json({"error": "forbidden"}, status=403)
            sender = payload.get("sender_id")
            if not isinstance(sender, str):
                return bad_request("'sender_id' is required")
            domain = request.app.ctx.agent.domain
            back = (domain.responses.get("utter_back_from_agent") or [{}])[0].get(
                "text", "I'm back. How else can I help?")

            async def hand_back(tracker: Any) -> Text:
                was_paused = tracker.is_paused()
                tracker.update(ConversationResumed())
                tracker.update(ActionExecuted(ACTION_LISTEN_NAME))
                tracker.update(SlotSet(THREAD_SLOT, None))
                tracker.update(SlotSet(RATING_SLOT, True))
                status = "resumed"
                if was_paused:  # "I'm back" only where the bot had stopped
                    status = await deliver(request.app, tracker, back, {"bot": "resumed"})
                prompt = await deliver_prompt(request.app, tracker, RATING_RESPONSE,
                                              {"bot": "rating"})
                return status if was_paused else prompt

            status = await _with_tracker(request.app, sender, hand_back)
            return response.json({"status": status})

        return hook
