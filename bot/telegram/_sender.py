"""Sending: the output channel that puts the bot's and agents' messages into Telegram chats."""

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from rasa.core.channels.channel import OutputChannel
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, ChatMigrated, InvalidToken, TelegramError

from bot.telegram._client import is_transient, with_retries
from bot.telegram._outbox import TelegramOutbox
from bot.telegram._settings import (
    CHANNEL,
    CUSTOM_METHODS,
    MAX_IMAGE_BYTES,
    TelegramConfig,
    TelegramDeliveryError,
)
from bot.telegram._utils import (
    CallbackRegistry,
    chat_id_of,
    is_public_url,
    redact,
    sender_id_of,
    split_text,
)

logger = logging.getLogger(__name__)

__all__ = ["TelegramOutput", "download", "keyboard"]


def keyboard(buttons: list[dict[str, Any]], callbacks: CallbackRegistry
             ) -> InlineKeyboardMarkup | None:
    """An inline keyboard of Rasa buttons, one button per row."""
    rows = []
    for button in buttons:
        title = str(button.get("title") or button.get("payload") or "").strip()
        if not title:
            continue
        if button.get("url"):
            rows.append([InlineKeyboardButton(title[:128], url=str(button["url"]))])
            continue
        payload = str(button.get("payload") or title)
        rows.append([InlineKeyboardButton(title[:128], callback_data=callbacks.encode(payload))])
    return InlineKeyboardMarkup(rows) if rows else None


class TelegramOutput(OutputChannel):
    """Sends the bot's (or an agent's) messages to a Telegram chat.

    Text goes out as plain text (no parse mode), so nothing in a reply needs
    escaping and nothing a customer or agent types can break a message; long
    text is split at paragraph or sentence boundaries.

    Args:
        bot: The Bot API client.
        callbacks: Where long button payloads are kept.
        config: Retry limits.
        raise_errors: Raise ``TelegramDeliveryError`` when a message cannot be
            delivered (for pushes from outside a turn, so that the caller can
            keep the message); otherwise log the failure and go on, so that one
            lost message does not abort the turn.
        outbox: Where a message goes when Telegram cannot be reached (it is sent
            later, in order); without one, such a message fails like any other.
    """

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    def __init__(self, bot: Bot, callbacks: CallbackRegistry | None = None,
                 config: TelegramConfig | None = None, raise_errors: bool = False,
                 outbox: TelegramOutbox | None = None) -> None:
        self.bot = bot
        self.callbacks = callbacks if callbacks is not None else CallbackRegistry()
        self.config = config or TelegramConfig()
        self.raise_errors = raise_errors
        self.outbox = outbox

    def _failed(self, what: str, exc: BaseException) -> None:
        """Log a message that could not be delivered; raise if this channel pushes."""
        logger.error("%s failed: %s", what, type(exc).__name__)
        if self.raise_errors:
            raise TelegramDeliveryError(f"{what} failed") from exc

    async def call(self, chat_id: int, method: str, params: dict[str, Any],
                   attempts: int | None = None) -> Any:
        """``bot.<method>(chat_id=..., **params)`` with retries, following a chat migration.

        Raises:
            TelegramError: The call failed (after retries where they make sense).
            TelegramDeliveryError: The chat migrated twice.
        """
        what = f"{method} to chat {redact(sender_id_of(chat_id))}"
        for _ in range(2):  # a group that became a supergroup has a new chat id
            try:
                return await with_retries(
                    lambda chat=chat_id: getattr(self.bot, method)(chat_id=chat, **params),
                    what, attempts or self.config.max_attempts, self.config.max_retry_after)
            except ChatMigrated as exc:
                chat_id = exc.new_chat_id
        raise TelegramDeliveryError(f"{what}: chat migrated twice")

    async def send_queued(self, chat_id: int, method: str, params: dict[str, Any]) -> Any:
        """One try of a call from the outbox (the outbox waits between tries)."""
        return await self.call(chat_id, method, params, attempts=1)

    async def _send(self, method: str, recipient_id: str, raise_bad_request: bool = False,
                    **params: Any) -> Any:
        """Call ``bot.<method>(chat_id=..., **params)``, or queue it in the outbox.

        The call goes out at once unless earlier messages to the chat wait in the
        outbox; when Telegram cannot be reached it is queued (see
        :class:`TelegramOutbox`). Other failures are logged, or raised
        (``raise_errors``); with ``raise_bad_request``, ``BadRequest`` is raised.

        Returns:
            Telegram's answer, or ``None`` when the call failed or was queued.
        """
        what = f"{method} to chat {redact(recipient_id)}"
        try:
            chat_id = chat_id_of(recipient_id)
        except ValueError as exc:
            self._failed(what, exc)
            return None
        if self.outbox is None:
            try:
                return await self.call(chat_id, method, params)
            except BadRequest as exc:
                if raise_bad_request:
                    raise
                self._failed(what, exc)
            except (TelegramError, TelegramDeliveryError, TypeError) as exc:
                self._failed(what, exc)
            return None
        async with self.outbox.lock(chat_id):
            if not self.outbox.waiting(chat_id):
                try:
                    result = await self.call(chat_id, method, params)
                    self.outbox.wake()  # Telegram answers: what waits for others can go
                    return result
                except BadRequest as exc:
                    if raise_bad_request:
                        raise
                    self._failed(what, exc)
                    return None
                except (TelegramError, TelegramDeliveryError, TypeError) as exc:
                    if not (is_transient(exc) or isinstance(exc, InvalidToken)):
                        self._failed(what, exc)
                        return None
                    logger.warning("%s failed (%s); kept in the outbox", what,
                                   type(exc).__name__)
            try:
                self.outbox.put(chat_id, method, params)
            except Exception as exc:  # noqa: BLE001 - no outbox: the message fails
                logger.exception("%s could not be kept in the outbox", what)
                self._failed(what, exc)
        return None

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        """Send ``text``, split into as many messages as it needs."""
        for chunk in split_text(text):
            await self._send("send_message", recipient_id, text=chunk)

    async def send_text_with_buttons(self, recipient_id: str, text: str,
                                     buttons: list[dict[str, Any]], **kwargs: Any) -> None:
        """Send ``text`` with an inline keyboard under its last part."""
        markup = keyboard(buttons, self.callbacks)
        chunks = split_text(text) or ["\u2193"]  # Telegram needs some text for a keyboard
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            await self._send("send_message", recipient_id, text=chunk,
                             reply_markup=markup if last else None)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        """Send an image as a photo: by URL when Telegram can fetch it, else uploaded."""
        await self._send_media("send_photo", "photo", recipient_id, image)

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        """Send an attachment URL as a document (anything else as text)."""
        if isinstance(attachment, str) and urlsplit(attachment).scheme in {"http", "https"}:
            await self._send_media("send_document", "document", recipient_id, attachment)
        else:
            await self.send_text_message(recipient_id, str(attachment))

    async def _send_media(self, method: str, field: str, recipient_id: str,
                          url: str) -> None:
        what = f"{method} to chat {redact(recipient_id)}"
        if is_public_url(url):
            try:  # queued when Telegram is unreachable, like any message
                await self._send(method, recipient_id, raise_bad_request=True, **{field: url})
                return
            except BadRequest:  # Telegram could not fetch it: upload it ourselves
                logger.info("%s: Telegram could not fetch the URL; uploading", what)
        try:
            data = await download(url)
        except (httpx.HTTPError, ValueError) as exc:
            self._failed(f"{what} (download)", exc)
            return
        filename = (urlsplit(url).path.rsplit("/", 1)[-1] or field)[:64]
        await self._send(method, recipient_id, **{field: data, "filename": filename})

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any],
                               **kwargs: Any) -> None:
        """Send a ``custom`` response naming a Bot API method, e.g.
        ``{"method": "sendLocation", "latitude": 51.5, "longitude": -0.1}``
        (optionally under a ``telegram`` key). The chat is always the recipient's.
        """
        if not isinstance(json_message, dict):
            logger.warning("custom message for chat %s not sent: not a JSON object",
                           redact(recipient_id))
            return
        message = dict(json_message.get("telegram") or json_message)
        method = str(message.pop("method", "") or "")
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", method).lower()
        message.pop("chat_id", None)
        if not method and isinstance(message.get("text"), str):
            method = "send_message"
        if method not in CUSTOM_METHODS:
            logger.warning("custom message for chat %s not sent: no known Telegram method",
                           redact(recipient_id))
            return
        if method == "send_message":
            chunks = split_text(str(message.pop("text", "")))
            markup = message.pop("reply_markup", None)
            for i, chunk in enumerate(chunks):
                await self._send(method, recipient_id, text=chunk,
                                 reply_markup=markup if i == len(chunks) - 1 else None,
                                 **message)
            return
        await self._send(method, recipient_id, **message)


async def download(url: str, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """Fetch ``url`` (at most ``limit`` bytes).

    Raises:
        httpx.HTTPError: The request failed.
        ValueError: The file is larger than ``limit``.
    """
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=True) as client:
        async with client.stream("GET", url) as resp:
            resp.raise_for_status()
            data = bytearray()
            async for part in resp.aiter_bytes():
                data.extend(part)
                if len(data) > limit:
                    raise ValueError("file too large")
            return bytes(data)
