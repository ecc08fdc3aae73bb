"""Phone calls through Twilio Voice (bot env): Rasa's ``twilio_voice`` channel, made
fit for the CRM.

``CRMTwilioVoiceInput`` subclasses Rasa 3.6's ``TwilioVoiceInput`` and keeps its
name, so Twilio's Voice webhook stays ``POST /webhooks/twilio_voice/webhook``
and Rasa picks the ``twilio_voice`` variants of responses, if the domain has
any. What it changes:

* **Sender ids** are ``voice:<CallSid>``: one conversation per call, never the
  caller's phone number. ``From``/``Caller`` are not put into the tracker, the
  message metadata or the logs (Twilio keeps them in its call log, by CallSid).
* **Checked input**: a request without a well-formed ``CallSid`` gets a 400.
  With an auth token configured (``TWILIO_AUTH_TOKEN`` via the settings, or
  ``auth_token`` in credentials.yml), the ``X-Twilio-Signature`` header is
  checked (HMAC-SHA1 over the URL and the form, Twilio's scheme) and a bad or
  missing one gets a 403. Behind a proxy, set ``public_url`` to the address
  Twilio calls, so the signed URL can be rebuilt.
* **Speech-friendly wording**: markdown, emoji and URLs (reduced to their host)
  are stripped, "e.g."/"i.e."/"etc." are expanded, lists become sentences,
  buttons become "Say one of: ...", an image (the forecast chart) becomes "You
  can see the chart in the console." All messages of a turn are spoken inside
  one ``<Gather input="speech">``, so the caller may interrupt.
* **Silence**: the first silence repeats the last answer after "Sorry, I
  didn't catch that."; after ``max_silences`` silent turns in a row (default 2)
  the call ends politely. The count travels in the Gather's action URL
  (``?silence=<n>``), so the channel keeps no state.
* **The end of a call**: after ``utter_goodbye`` or an escalation (the
  responses in ``end_call_after``), or whenever the conversation is paused,
  the assistant says goodbye and hangs up (``<Hangup/>``).
* Status callbacks (``CallStatus`` completed, busy, failed, no-answer,
  canceled) get an empty ``<Response/>`` and no bot turn.

The speech cleanup, TwiML, form and signature helpers live in
:mod:`bot.voice_twiml`; they are importable from here as before.

Escalation on the phone, and how an agent's reply reaches the caller
--------------------------------------------------------------------

A human agent cannot join a Twilio call through this application, and a call
cannot receive a message pushed later: :meth:`get_output_channel` returns
``None``. So a phone escalation is *voice-to-ticket*:

1. The escalation action records the escalation (channel ``voice``, sender
   ``voice:<CallSid>``, transcript, sentiment) and, with nobody online, opens a
   ticket; the caller hears the ticket number and when to expect an answer,
   then the call ends. (If an agent was online, the action pauses the
   conversation instead; the caller then hears that a colleague will call back
   -- ``live_handoff_phrase`` -- and the call ends too. Making every phone
   escalation a ticket is a small change in ``actions/handoff.py``.)
2. The agent answers from the console as usual. ``deliver()`` in
   ``bot/channels.py`` finds no output channel for ``twilio_voice`` and keeps
   the reply in the conversation (a ``BotUttered`` event with the agent's
   name, stored by the event broker as an interaction of kind ``agent``,
   shown with the escalation and its ticket) and in the outbox slot.
3. The customer is called back by a human: the number is in Twilio's call log
   under the CallSid (or in the CRM record of a verified customer). Should the
   same call still be live when a reply is queued, it is read out at the start
   of the caller's next turn ("A message from our team: ...").

Configuration in credentials.yml (every key optional; Rasa's keys work as
in ``TwilioVoiceInput``)::

    bot.voice.CRMTwilioVoiceInput:
      initial_prompt: "hello"               # what the call "says" to start
      assistant_voice: "Polly.Amy-Neural"
      language: "en-GB"                     # Gather and Say language
      speech_model: "phone_call"            # Rasa allows speech_timeout "auto" only
      speech_timeout: "2"                   #   with numbers_and_commands
      max_silences: 2
      public_url: "https://bot.example.com" # where Twilio calls us (signatures)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from rasa.core.channels.twilio_voice import TwilioVoiceInput
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from bot.channels import OUTBOX_SLOT, CRMRestInput, bad_request
from bot.voice_twiml import (
    CALL_SID_RE,
    MAX_SAY_CHARS,
    MAX_SILENCES_LIMIT,
    MAX_SPEECH_CHARS,
    SENDER_PREFIX,
    VoiceCall,
    build_twiml,
    parse_call,
    speakable,
    split_for_say,
    spoken_options,
    twilio_signature,
)
from crm_ml.config import get_settings
from crm_ml.ratelimit import limiter_for

logger = logging.getLogger(__name__)

__all__ = [
    "AGENT_PREFIX",
    "CALL_SID_RE",
    "CHANNEL",
    "CLOSING_PHRASE",
    "END_CALL_AFTER",
    "ENDED_STATUSES",
    "ERROR_PHRASE",
    "IMAGE_PHRASE",
    "LIVE_HANDOFF_PHRASE",
    "MAX_SAY_CHARS",
    "MAX_SILENCES_LIMIT",
    "MAX_SPEECH_CHARS",
    "RATE_LIMITED_PHRASE",
    "SENDER_PREFIX",
    "SILENCE_GOODBYE",
    "SILENCE_PHRASE",
    "SPOKEN_OVERRIDES",
    "CRMTwilioVoiceInput",
    "VoiceCall",
    "VoiceOutput",
    "build_twiml",
    "last_bot_text",
    "parse_call",
    "speakable",
    "split_for_say",
    "spoken_options",
    "turn_names",
    "twilio_signature",
    "xml",
]

CHANNEL = "twilio_voice"
ENDED_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}

SILENCE_PHRASE = "Sorry, I didn't catch that."
SILENCE_GOODBYE = ("I haven't heard anything, so I'll end the call now. "
                   "Thank you for calling. Goodbye.")
CLOSING_PHRASE = "Thank you for calling. Goodbye."
LIVE_HANDOFF_PHRASE = ("A colleague can't join this call, but they have our conversation so far "
                       "and will call you back shortly.")
IMAGE_PHRASE = "You can see the chart in the console."
ERROR_PHRASE = "Sorry, something went wrong on our side. Could you say that again?"
RATE_LIMITED_PHRASE = "Sorry, that was a bit fast for me. Could you say it again, slowly?"
AGENT_PREFIX = "A message from our team:"
END_CALL_AFTER = ("utter_goodbye", "utter_handoff_ticket", "utter_handoff_live")
SPOKEN_OVERRIDES = {"utter_handoff_live": LIVE_HANDOFF_PHRASE}


# ---------------------------------------------------------------------------
# Output: collect what the bot says, in words a phone can carry
# ---------------------------------------------------------------------------


class VoiceOutput(CollectingOutputChannel):
    """Collects one turn's bot messages as speakable text.

    ``messages`` holds ``{"recipient_id", "text", "utter_action"}`` per spoken
    message. Responses named in ``overrides`` are replaced by their phone wording.
    """

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    def __init__(self, overrides: dict[str, str] | None = None,
                 image_phrase: str = IMAGE_PHRASE) -> None:
        super().__init__()
        self.overrides = dict(SPOKEN_OVERRIDES if overrides is None else overrides)
        self.image_phrase = image_phrase
        self.utter_actions: list[str] = []

    @property
    def spoken(self) -> list[str]:
        return [m["text"] for m in self.messages if m.get("text")]

    def _say(self, recipient_id: str, text: str, utter_action: str | None) -> None:
        if text:
            self.messages.append({"recipient_id": recipient_id, "text": text,
                                  "utter_action": utter_action})

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        utter = message.get("utter_action")
        if utter:
            self.utter_actions.append(utter)
        if utter in self.overrides:
            self._say(recipient_id, self.overrides[utter], utter)
            return
        parts = [speakable(message.get("text"))]
        options = message.get("buttons") or message.get("quick_replies")
        if options:
            parts.append(spoken_options(options))
        custom = message.get("custom")
        if isinstance(custom, dict) and isinstance(custom.get("text"), str):
            parts.append(speakable(custom["text"]))
        self._say(recipient_id, " ".join(p for p in parts if p), utter)
        if (message.get("image") or message.get("attachment")) and self.image_phrase \
                and self.image_phrase not in self.spoken:
            self._say(recipient_id, self.image_phrase, utter)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        self._say(recipient_id, speakable(text), kwargs.get("utter_action"))

    async def send_text_with_buttons(self, recipient_id: str, text: str,
                                     buttons: list[dict[str, Any]], **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text, "buttons": buttons, **kwargs})

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"image": image})

    async def send_attachment(self, recipient_id: str, attachment: str,
                              **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"attachment": attachment})

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any],
                               **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"custom": json_message})


def last_bot_text(tracker: Any) -> str | None:
    """The bot's last spoken text in ``tracker`` (None for a new call)."""
    if tracker is None:
        return None
    for event in reversed(tracker.events):
        if isinstance(event, BotUttered) and event.text:
            return event.text
    return None


def turn_names(tracker: Any) -> list[str]:
    """Actions run and responses uttered since the caller's latest message."""
    names: list[str] = []
    if tracker is None:
        return names
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            break
        if isinstance(event, ActionExecuted) and event.action_name:
            names.append(event.action_name)
        elif isinstance(event, BotUttered) and (event.metadata or {}).get("utter_action"):
            names.append(event.metadata["utter_action"])
    return names


# ---------------------------------------------------------------------------
# The input channel
# ---------------------------------------------------------------------------


class CRMTwilioVoiceInput(TwilioVoiceInput):
    """Rasa's Twilio Voice channel with CRM sender ids, checked input and phone wording."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> CRMTwilioVoiceInput:
        credentials = credentials or {}
        extra = {key: credentials[key] for key in (
            "language", "max_silences", "timeout", "auth_token", "public_url",
            "end_call_after", "spoken_overrides", "image_phrase", "live_handoff_phrase",
            "closing_phrase") if credentials.get(key) is not None}
        return cls(
            str(credentials.get("initial_prompt", "hello")),
            str(credentials.get("reprompt_fallback_phrase",
                                "Sorry, I didn't get that. Could you say it another way?")),
            str(credentials.get("assistant_voice", "woman")),
            str(credentials.get("speech_timeout", "5")),
            str(credentials.get("speech_model", "default")),
            str(credentials.get("enhanced", "false")).lower(),
            **extra,
        )

    def __init__(self, initial_prompt: str | None = "hello",
                 reprompt_fallback_phrase: str | None = None,
                 assistant_voice: str | None = "woman", speech_timeout: str = "5",
                 speech_model: str = "default", enhanced: str = "false", *,
                 language: str | None = None, max_silences: int = 2,
                 timeout: int | None = None, auth_token: str | None = None,
                 public_url: str | None = None,
                 end_call_after: Iterable[str] = END_CALL_AFTER,
                 spoken_overrides: dict[str, str] | None = None,
                 image_phrase: str = IMAGE_PHRASE,
                 live_handoff_phrase: str = LIVE_HANDOFF_PHRASE,
                 closing_phrase: str = CLOSING_PHRASE) -> None:
        super().__init__(initial_prompt,
                         reprompt_fallback_phrase or "Sorry, I didn't get that. Could you "
                                                     "say it another way?",
                         assistant_voice, speech_timeout, speech_model, enhanced)
        self.language = language or None
        self.max_silences = min(max(int(max_silences), 1), MAX_SILENCES_LIMIT)
        self.timeout = int(timeout) if timeout is not None else None
        # credentials.yml may carry the token (``${TWILIO_AUTH_TOKEN}``); else the settings.
        self._auth_token = auth_token
        self.public_url = (public_url or "").rstrip("/") or None
        self.end_call_after = set(end_call_after or ())
        self.live_handoff_phrase = live_handoff_phrase
        self.overrides = {**SPOKEN_OVERRIDES, "utter_handoff_live": live_handoff_phrase,
                          **(spoken_overrides or {})}
        self.image_phrase = image_phrase
        self.closing_phrase = closing_phrase

    @property
    def auth_token(self) -> str:
        if self._auth_token is not None:
            return str(self._auth_token)
        return getattr(get_settings(), "twilio_auth_token", "") or ""

    def get_output_channel(self) -> OutputChannel | None:
        """None: a phone call cannot be sent a message later (see the module docstring).

        An agent's reply during a handoff is therefore kept in the conversation
        and the outbox (``bot.channels.deliver``), and the caller is called back.
        """
        return None

    # -- request checks -------------------------------------------------------

    def signed_url(self, request: Request) -> str:
        """The URL Twilio signed: ``public_url`` + path + query, or the request's URL."""
        if self.public_url:
            query = f"?{request.query_string}" if request.query_string else ""
            return f"{self.public_url}{request.path}{query}"
        return request.url

    def signature_ok(self, request: Request) -> bool:
        token = self.auth_token
        if not token:
            return True
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            return False
        return RequestValidator(token).validate(self.signed_url(request), request.form,
                                                signature)

    # -- TwiML ----------------------------------------------------------------

    def action_url(self, silences: int = 0) -> str:
        base = f"/webhooks/{self.name()}/webhook"
        return f"{base}?silence={silences}" if silences else base

    def twiml(self, spoken: list[str], *, hangup: bool = False, silences: int = 0) -> str:
        return build_twiml(spoken, hangup=hangup, voice=str(self.assistant_voice),
                           language=self.language, action=self.action_url(silences),
                           speech_timeout=self.speech_timeout, speech_model=self.speech_model,
                           enhanced=self.enhanced, timeout=self.timeout)

    def closing(self, spoken: list[str]) -> list[str]:
        """``spoken`` with the goodbye added, unless it already says goodbye."""
        if spoken and "goodbye" in spoken[-1].lower():
            return spoken
        return [*spoken, self.closing_phrase]

    # -- the webhook ----------------------------------------------------------

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]
                  ) -> Blueprint:
        hook = Blueprint("crm_twilio_voice_webhook", __name__)
        if not self.auth_token:
            logger.warning("Twilio voice: no TWILIO_AUTH_TOKEN, so webhook signatures are "
                           "not checked; set it before giving Twilio a public URL")

        @hook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self.signature_ok(request):
                logger.warning("Twilio voice webhook call with a bad signature refused")
                return response.json({"error": "forbidden"}, status=403)
            try:
                call = parse_call(request.form, request.args)
            except ValueError as exc:
                return bad_request(str(exc))
            if call.status in ENDED_STATUSES:
                return xml(str(VoiceResponse()))
            if not limiter_for(self.name()).allow(call.sender_id):
                # Twilio needs TwiML (a 429 would be read out as an application error).
                return xml(self.twiml([RATE_LIMITED_PHRASE], silences=call.silences))
            return xml(await self.handle_call(request.app, call, on_new_message))

        return hook

    async def handle_call(self, app: Any, call: VoiceCall,
                          on_new_message: Callable[[UserMessage], Awaitable[None]]) -> str:
        """One webhook request of a call: the TwiML to answer with."""
        agent = app.ctx.agent
        sender = call.sender_id
        tracker = await agent.tracker_store.retrieve(sender)
        queued = await self.queued_agent_messages(app, sender, tracker)
        text = call.speech
        if text is None:
            previous = last_bot_text(tracker)
            if previous is not None or call.silences or not self.initial_prompt:
                return self.on_silence(call, previous, queued)
            text = self.initial_prompt  # the call was just answered: let the bot greet

        output = VoiceOutput(self.overrides, self.image_phrase)
        metadata = {CHANNEL: {"call_sid": call.call_sid, "confidence": call.confidence,
                              "prompt": call.speech is None}}
        try:
            await on_new_message(UserMessage(text, output, sender, input_channel=self.name(),
                                             metadata=metadata))
        except Exception:  # noqa: BLE001 - answer politely, keep the call
            logger.exception("voice turn of call %s failed", call.call_sid)
            return self.twiml([*queued, ERROR_PHRASE])

        tracker = await agent.tracker_store.retrieve(sender)
        spoken = [*queued, *output.spoken]
        names = set(turn_names(tracker)) | set(output.utter_actions)
        paused = tracker is not None and tracker.is_paused()
        if paused and self.live_handoff_phrase not in spoken:
            spoken.append(self.live_handoff_phrase)
        if paused or names & self.end_call_after:
            logger.info("voice call %s ends (%s)", call.call_sid,
                        "handed over" if paused else ", ".join(sorted(names & self.end_call_after)))
            return self.twiml(self.closing(spoken), hangup=True)
        return self.twiml(spoken or [str(self.reprompt_fallback_phrase)])

    def on_silence(self, call: VoiceCall, previous: str | None, queued: list[str]) -> str:
        """The caller said nothing: repeat the last answer once, then hang up politely."""
        count = call.silences + 1
        if count >= self.max_silences:
            logger.info("voice call %s ends after %d silent turns", call.call_sid, count)
            return self.twiml([*queued, SILENCE_GOODBYE], hangup=True)
        again = speakable(previous) if previous else str(self.reprompt_fallback_phrase)
        return self.twiml([*queued, SILENCE_PHRASE, again], silences=count)

    @staticmethod
    async def queued_agent_messages(app: Any, sender: str, tracker: Any) -> list[str]:
        """Agent replies queued for this call (read out before the bot's answer)."""
        if tracker is None or not tracker.get_slot(OUTBOX_SLOT):
            return []
        items = await CRMRestInput.drain_outbox(app, sender)
        texts = [speakable(item.get("text")) for item in items]
        return [f"{AGENT_PREFIX} {t}" for t in texts if t]


def xml(body: str) -> HTTPResponse:
    return response.text(body, content_type="text/xml")
