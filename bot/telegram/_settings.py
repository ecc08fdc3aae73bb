"""Settings and fixed texts of the Telegram channel: limits, replies, :class:`TelegramConfig`."""

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from bot.replies import FAILED_REPLY
from crm_ml.config import get_settings
from crm_ml.contract import TELEGRAM_PREFIX

logger = logging.getLogger(__name__)

__all__ = [
    "ALLOWED_UPDATES",
    "CHANNEL",
    "CUSTOM_METHODS",
    "DEFAULT_BASE_URL",
    "EXPIRED_BUTTON",
    "FAILED_REPLY",
    "MAX_CALLBACK_BYTES",
    "MAX_IMAGE_BYTES",
    "MAX_TEXT_UNITS",
    "NON_TEXT_REPLY",
    "SENDER_PREFIX",
    "TelegramConfig",
    "TelegramDeliveryError",
]

CHANNEL = "telegram"
SENDER_PREFIX = TELEGRAM_PREFIX
DEFAULT_BASE_URL = "https://api.telegram.org/bot"
MAX_TEXT_UNITS = 4096  # Telegram's limit, in UTF-16 code units
MAX_CALLBACK_BYTES = 64  # Telegram's limit for callback_data
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # sendPhoto's upload limit
ALLOWED_UPDATES = ["message", "callback_query"]
NON_TEXT_REPLY = "Sorry, I can only read text messages here. Could you type your question?"
EXPIRED_BUTTON = "This button has expired. Please type your answer instead."
# Methods a ``custom`` response may call, with the chat filled in by the channel.
CUSTOM_METHODS = {
    "send_message", "send_photo", "send_document", "send_location", "send_venue",
    "send_contact", "send_sticker", "send_animation", "send_audio", "send_video",
    "send_dice", "send_poll",
}


class TelegramDeliveryError(RuntimeError):
    """A message could not be delivered to Telegram, after retries where they make sense."""


@dataclass(frozen=True)
class TelegramConfig:
    """Where and how the channel talks to the Bot API.

    Attributes:
        token: Bot token; empty turns the channel off.
        base_url: Bot API URL in python-telegram-bot's form (the token is appended).
        webhook_url: Public URL of ``/webhooks/telegram/webhook``; empty means polling.
        secret_token: Webhook secret; derived from the token when empty.
        poll_timeout: Long-poll timeout of ``getUpdates`` in seconds.
        max_attempts: Attempts per outgoing call (network errors and flood waits).
        max_retry_after: Longest flood wait (s) a message waits for before it fails.
        max_concurrency: Updates handled at the same time (one at a time per chat).
        outbox_max_delay: Longest wait (s) between two tries of the outbox while
            Telegram cannot be reached.
        lease_seconds: With replicas sharing an SQL tracker store, how long one
            replica's hold on polling and the outbox lasts without renewal (a dead
            holder's successor takes over within about this long).
    """

    token: str = ""
    base_url: str = DEFAULT_BASE_URL
    webhook_url: str = ""
    secret_token: str = ""
    poll_timeout: int = 25
    max_attempts: int = 4
    max_retry_after: float = 60.0
    max_concurrency: int = 16
    outbox_max_delay: float = 30.0
    lease_seconds: float = 15.0

    @property
    def mode(self) -> str:
        """``off``, ``polling`` or ``webhook``."""
        if not self.token:
            return "off"
        return "webhook" if self.webhook_url else "polling"

    @property
    def webhook_secret(self) -> str:
        """The secret Telegram sends in ``X-Telegram-Bot-Api-Secret-Token``."""
        if self.secret_token:
            return self.secret_token
        return hmac.new(self.token.encode(), b"crm-telegram-webhook",
                        hashlib.sha256).hexdigest()[:48]

    @property
    def base_file_url(self) -> str:
        """The file URL that goes with ``base_url`` (``.../bot`` -> ``.../file/bot``)."""
        if self.base_url.endswith("/bot"):
            return self.base_url[: -len("/bot")] + "/file/bot"
        return self.base_url.rstrip("/") + "/file/bot"

    @classmethod
    def resolve(cls, credentials: dict[str, Any] | None = None) -> "TelegramConfig":
        """Settings first, then any non-empty key of ``credentials.yml``.

        Args:
            credentials: The channel's keys in ``credentials.yml`` (may be None).

        Returns:
            The configuration.
        """
        settings = get_settings()
        given = {k: v for k, v in (credentials or {}).items() if v not in (None, "")}
        return cls(
            token=str(given.get("token") or settings.telegram_token or "").strip(),
            base_url=str(given.get("base_url") or settings.telegram_base_url
                         or DEFAULT_BASE_URL).strip(),
            webhook_url=str(given.get("webhook_url")
                            or getattr(settings, "telegram_webhook_url", "") or "").strip(),
            secret_token=str(given.get("secret_token")
                             or getattr(settings, "telegram_webhook_secret", "") or "").strip(),
            poll_timeout=int(given.get("poll_timeout", cls.poll_timeout)),
            max_attempts=max(1, int(given.get("max_attempts", cls.max_attempts))),
            max_retry_after=float(given.get("max_retry_after", cls.max_retry_after)),
            max_concurrency=max(1, int(given.get("max_concurrency", cls.max_concurrency))),
            outbox_max_delay=max(0.1, float(given.get("outbox_max_delay",
                                                      cls.outbox_max_delay))),
            lease_seconds=max(1.0, float(given.get("lease_seconds", cls.lease_seconds))),
        )
