"""What a phone call hears and what Twilio sends (bot env): speech, TwiML, forms, signatures.

Pure helpers of :mod:`bot.voice` (unit-tested in tests/bot_env/test_voice_unit.py):
:func:`speakable` turns a chat message into words a speech engine reads well,
:func:`build_twiml` writes one turn's TwiML, :func:`parse_call` checks Twilio's
webhook form and :func:`twilio_signature` computes its signature.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Gather, VoiceResponse

from crm_ml.contract import VOICE_PREFIX

logger = logging.getLogger(__name__)

__all__ = [
    "CALL_SID_RE",
    "MAX_SAY_CHARS",
    "MAX_SILENCES_LIMIT",
    "MAX_SPEECH_CHARS",
    "SENDER_PREFIX",
    "VoiceCall",
    "build_twiml",
    "parse_call",
    "speakable",
    "split_for_say",
    "spoken_options",
    "twilio_signature",
]

SENDER_PREFIX = VOICE_PREFIX
CALL_SID_RE = re.compile(r"^[A-Za-z0-9]{2,64}$")
MAX_SPEECH_CHARS = 1000
MAX_SAY_CHARS = 3000  # Twilio allows 4096 characters per <Say>; keep a margin
MAX_SILENCES_LIMIT = 10

_EMOJI_RE = re.compile(
    "["
    "\U0001F000-\U0001FAFF"  # pictographs, emoticons, transport, flags, symbols
    "\U0001FC00-\U0001FFFF"
    "\u2600-\u27BF"  # misc symbols, dingbats
    "\u2B00-\u2BFF"  # arrows and stars used as emoji
    "\u2300-\u23FF"  # technical (watch, hourglass...)
    "\uFE00-\uFE0F"  # variation selectors
    "\u200B-\u200D\u2060"  # zero-width characters
    "\u20E3"  # keycap
    "\U000E0020-\U000E007F"  # tag characters (subdivision flags)
    "]+"
)
_MD_LINK_RE = re.compile(r"!?\[([^\]]*)\]\((?:[^()\s]+)(?:\s+\"[^\"]*\")?\)")
_URL_RE = re.compile(r"\b(?:https?://|www\.)[^\s<>()\"']+", re.IGNORECASE)
_CODE_FENCE_RE = re.compile(r"```[^\n]*\n?|```")
_INLINE_CODE_RE = re.compile(r"`([^`]*)`")
_BOLD_RE = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_RE = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_STRIKE_RE = re.compile(r"~~(.+?)~~")
_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_QUOTE_RE = re.compile(r"^\s*>\s?", re.MULTILINE)
_BULLET_RE = re.compile(r"^\s*(?:[-*+\u2022\u25CF\u25AA]|\d{1,3}[.)])\s+", re.MULTILINE)
_RULE_RE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.MULTILINE)
_ABBREVIATIONS = [
    (re.compile(r"\be\.\s?g\.(?=\s|,|$)", re.IGNORECASE), "for example"),
    (re.compile(r"\bi\.\s?e\.(?=\s|,|$)", re.IGNORECASE), "that is"),
    (re.compile(r"\betc\.(?=\s*$)", re.IGNORECASE), "and so on."),
    (re.compile(r"\betc\.", re.IGNORECASE), "and so on"),
    (re.compile(r"\bvs\.?(?=\s)", re.IGNORECASE), "versus"),
    (re.compile(r"\s&\s"), " and "),
    (re.compile(r"\s*(?:->|\u2192|=>)\s*"), " to "),
]
_SENTENCE_END = (".", "!", "?", ":", ";", ",", "\u2026")


def _url_host(match: re.Match[str]) -> str:
    url = match.group(0).rstrip(".,;:!?")
    tail = match.group(0)[len(url):]
    if url.lower().startswith("www."):
        url = "http://" + url
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    return host + tail


def speakable(text: str | None) -> str:
    """``text`` as a speech engine should read it: no markdown, emoji or long URLs.

    Lines (list items, paragraphs) become sentences; a URL is reduced to its
    host ("shop.example.com"); a few abbreviations are expanded.

    Args:
        text: A bot message, possibly markdown.

    Returns:
        One line of plain text; empty when nothing speakable is left.
    """
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CODE_FENCE_RE.sub("", text)
    text = _MD_LINK_RE.sub(lambda m: m.group(1), text)
    text = _URL_RE.sub(_url_host, text)
    text = _INLINE_CODE_RE.sub(lambda m: m.group(1), text)
    text = _BOLD_RE.sub(lambda m: m.group(2), text)
    text = _STRIKE_RE.sub(lambda m: m.group(1), text)
    text = _ITALIC_RE.sub(lambda m: m.group(2), text)
    text = _RULE_RE.sub("", text)
    text = _HEADING_RE.sub("", text)
    text = _QUOTE_RE.sub("", text)
    text = _BULLET_RE.sub("", text)
    text = _EMOJI_RE.sub(" ", text)
    for pattern, spoken in _ABBREVIATIONS:
        text = pattern.sub(spoken, text)
    sentences = []
    for line in text.split("\n"):
        line = " ".join(line.split()).strip(" -*_#|")
        if not line:
            continue
        if not line.endswith(_SENTENCE_END):
            line += "."
        sentences.append(line)
    spoken = " ".join(sentences)
    spoken = re.sub(r"\s+([.,!?;:])", r"\1", spoken)
    spoken = re.sub(r"([!?,;:])\.", r"\1", spoken)  # "Hi!." -> "Hi!"
    spoken = re.sub(r"(?<!\.)\.\.(?!\.)", ".", spoken)
    spoken = re.sub(r"\(\s*\)", "", spoken)
    return " ".join(spoken.split())


def spoken_options(buttons: Iterable[dict[str, Any]]) -> str:
    """Buttons (or quick replies) as a sentence: ``Say one of: yes, no or later.``"""
    titles = []
    for button in buttons or []:
        title = speakable(str(button.get("title") or "")).rstrip(".!?:;, ")
        if title and title.lower() not in {t.lower() for t in titles}:
            titles.append(title)
    if not titles:
        return ""
    if len(titles) == 1:
        return f"You can say: {titles[0]}."
    return f"Say one of: {', '.join(titles[:-1])} or {titles[-1]}."


def split_for_say(text: str, limit: int = MAX_SAY_CHARS) -> list[str]:
    """Split long text into pieces of at most ``limit`` characters, at sentence ends."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = max(rest.rfind(". ", 0, limit), rest.rfind("? ", 0, limit),
                  rest.rfind("! ", 0, limit))
        cut = cut + 1 if cut > 0 else (rest.rfind(" ", 0, limit) if rest.rfind(" ", 0, limit) > 0
                                       else limit)
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


@dataclass(frozen=True)
class VoiceCall:
    """What one Twilio webhook request says about the call."""

    call_sid: str
    speech: str | None
    status: str
    confidence: float | None
    silences: int

    @property
    def sender_id(self) -> str:
        return f"{SENDER_PREFIX}{self.call_sid}"


def parse_call(form: Any, args: Any) -> VoiceCall:
    """Check a Twilio Voice webhook form; raise ValueError with a reason.

    Args:
        form: The request's form (``request.form``), Twilio's parameters.
        args: The query parameters (``silence`` is the channel's own counter).
    """
    call_sid = (form.get("CallSid") or "").strip()
    if not call_sid:
        raise ValueError("'CallSid' is required (a Twilio Voice webhook form)")
    if not CALL_SID_RE.match(call_sid):
        raise ValueError("'CallSid' must be 2 to 64 letters or digits")
    speech = form.get("SpeechResult")
    if speech is not None:
        speech = "".join(ch for ch in speech if ch.isprintable()).strip()
        speech = speech[:MAX_SPEECH_CHARS] or None
    try:
        confidence: float | None = float(form.get("Confidence"))
    except (TypeError, ValueError):
        confidence = None
    try:
        silences = min(max(int(args.get("silence") or 0), 0), MAX_SILENCES_LIMIT)
    except (TypeError, ValueError):
        silences = 0
    status = (form.get("CallStatus") or "").strip().lower()
    return VoiceCall(call_sid, speech, status, confidence, silences)


def build_twiml(spoken: list[str], *, hangup: bool = False, voice: str = "woman",
                language: str | None = None, action: str = "/webhooks/twilio_voice/webhook",
                speech_timeout: str = "5", speech_model: str = "default",
                enhanced: str = "false", timeout: int | None = None) -> str:
    """TwiML for one turn: the messages inside a speech ``<Gather>``, or said before ``<Hangup/>``.

    Args:
        spoken: Texts to say, already speakable, in order.
        hangup: End the call after speaking instead of listening.
        voice: Twilio voice (``woman``, ``Polly.Amy-Neural``...).
        language: Language of speech recognition and synthesis (``en-GB``), or Twilio's default.
        action: Where Twilio posts what the caller said (or an empty result on silence).
        speech_timeout, speech_model, enhanced, timeout: ``<Gather>`` attributes.

    Returns:
        The TwiML document.
    """
    say_kwargs: dict[str, Any] = {"voice": voice}
    if language:
        say_kwargs["language"] = language
    pieces = [piece for text in spoken if text for piece in split_for_say(text)]
    twiml = VoiceResponse()
    if hangup:
        for i, piece in enumerate(pieces):
            if i:
                twiml.pause(length=1)
            twiml.say(piece, **say_kwargs)
        twiml.hangup()
        return str(twiml)
    gather_kwargs: dict[str, Any] = {
        "input": "speech", "action": action, "method": "POST", "actionOnEmptyResult": True,
        "speechTimeout": speech_timeout, "speechModel": speech_model, "enhanced": enhanced,
    }
    if language:
        gather_kwargs["language"] = language
    if timeout is not None:
        gather_kwargs["timeout"] = timeout
    gather = Gather(**gather_kwargs)
    for i, piece in enumerate(pieces):
        if i:
            gather.pause(length=1)
        gather.say(piece, **say_kwargs)
    twiml.append(gather)
    return str(twiml)


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's request signature (what ``X-Twilio-Signature`` should hold)."""
    return RequestValidator(token).compute_signature(url, params)
