"""Pure helpers of the Telegram channel: text splitting, sender ids, commands, button data."""

import base64
import hashlib
import ipaddress
import logging
import re
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from bot.telegram._settings import MAX_CALLBACK_BYTES, MAX_TEXT_UNITS, SENDER_PREFIX

logger = logging.getLogger(__name__)

__all__ = [
    "CallbackRegistry",
    "chat_id_of",
    "clean_text",
    "command_to_text",
    "is_public_url",
    "redact",
    "sender_id_of",
    "split_text",
    "utf16_len",
]


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP is 2)."""
    return len(text.encode("utf-16-le")) // 2


def _prefix_within(text: str, limit: int) -> int:
    """The number of characters of ``text`` that fit into ``limit`` UTF-16 code units."""
    if len(text) <= limit and utf16_len(text) <= limit:
        return len(text)
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


_SENTENCE_END = re.compile(r"[.!?\u2026][)\"'\u201d\u2019]*\s+")


def split_text(text: str, limit: int = MAX_TEXT_UNITS) -> list[str]:
    """Split a long reply into messages Telegram accepts, at the most natural boundary.

    Prefers a paragraph break, then a line break, then the end of a sentence, then
    a space; cuts inside a word only when nothing else fits. Chunks are stripped;
    empty chunks are dropped, so blank text gives an empty list.

    Args:
        text: The reply.
        limit: Maximum length of one message in UTF-16 code units.

    Returns:
        The messages, in order.
    """
    chunks: list[str] = []
    rest = (text or "").strip()
    while rest:
        fit = _prefix_within(rest, limit)
        if fit >= len(rest):
            chunks.append(rest)
            break
        window = rest[:fit]
        floor = max(1, fit // 4)  # never leave a sliver of a message
        cut = -1
        for sep in ("\n\n", "\n"):
            at = window.rfind(sep)
            if at >= floor:
                cut = at + len(sep)
                break
        if cut < 0:
            ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() >= floor]
            if ends:
                cut = ends[-1]
        if cut < 0:
            at = max(window.rfind(" "), window.rfind("\t"))
            if at >= floor:
                cut = at + 1
        if cut < 0:
            cut = fit
        chunk = rest[:cut].strip()
        if chunk:
            chunks.append(chunk)
        rest = rest[cut:].strip()
    return chunks


def chat_id_of(sender_id: str) -> int:
    """The Telegram chat id in a ``tg:<chat id>`` sender id.

    Raises:
        ValueError: The sender id is not a Telegram one.
    """
    if not isinstance(sender_id, str) or not sender_id.startswith(SENDER_PREFIX):
        raise ValueError("not a Telegram sender id")
    return int(sender_id[len(SENDER_PREFIX):])


def sender_id_of(chat_id: int) -> str:
    """The sender id of a Telegram chat."""
    return f"{SENDER_PREFIX}{chat_id}"


def redact(value: Any) -> str:
    """A short, stable, non-reversible tag for logs (chat ids are personal data)."""
    return hashlib.sha256(str(value).encode()).hexdigest()[:8]


def clean_text(text: str) -> str:
    """Drop control characters a user message should not carry."""
    return "".join(ch for ch in text if ch in "\n\t" or ch.isprintable()).strip()


def command_to_text(text: str) -> str:
    """Turn a typed ``/command`` into something safe for Rasa.

    Rasa reads a message starting with ``/`` as an intent with entities, which
    would let anyone set intents and entities by typing. ``/start`` (Telegram's
    first message) becomes the ``greet`` intent; any other command loses its
    slash and its ``@botname`` and is read as plain words.
    """
    if not text.startswith("/"):
        return text
    head, _, tail = text[1:].partition(" ")
    command = head.split("@", 1)[0].lower()
    if command == "start":
        return "/greet"
    words = f"{command.replace('_', ' ')} {tail}".strip()
    return words.lstrip("/") or "help"


def is_public_url(url: str) -> bool:
    """Whether Telegram's servers could fetch ``url`` themselves.

    False for non-HTTP URLs and for loopback, private, link-local or single-label
    hosts (``localhost``, ``console``, ``*.local``...): those images are
    downloaded here and uploaded.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme not in {"http", "https"} or not host:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." in host and not host.endswith((".local", ".localhost", ".internal",
                                                  ".lan", ".home.arpa"))
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
                or ip.is_multicast or ip.is_unspecified)


class CallbackRegistry:
    """Short ``callback_data`` for button payloads, within Telegram's 64 bytes.

    A payload that fits (and does not start with ``~``) is sent as it is, so it
    still works after a restart. A longer one is replaced by ``~`` and a hash,
    kept in a bounded, least-recently-used map in memory.
    """

    PREFIX = "~"

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._payloads: OrderedDict[str, str] = OrderedDict()

    def encode(self, payload: str) -> str:
        """The ``callback_data`` for ``payload``."""
        raw = payload.encode("utf-8")
        if 0 < len(raw) <= MAX_CALLBACK_BYTES and not payload.startswith(self.PREFIX):
            return payload
        digest = hashlib.sha256(raw).digest()[:12]
        key = self.PREFIX + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
        self._payloads[key] = payload
        self._payloads.move_to_end(key)
        while len(self._payloads) > self.capacity:
            self._payloads.popitem(last=False)
        return key

    def decode(self, data: str) -> str | None:
        """The payload behind ``callback_data``; ``None`` when it has been forgotten."""
        if not data.startswith(self.PREFIX):
            return data
        payload = self._payloads.get(data)
        if payload is not None:
            self._payloads.move_to_end(data)
        return payload

    def __len__(self) -> int:
        return len(self._payloads)
