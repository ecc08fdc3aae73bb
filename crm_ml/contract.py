"""What both Python environments share: standard library only.

The bot env (Rasa 3.6, Python 3.10) and the app env (crm_ml, actions, console)
agree on a few names: how a sender id says its channel, and the tables that
``bot/`` writes next to Rasa's conversations. They live here, once. This module
imports nothing outside the standard library, so ``bot/`` can import it without
pulling pandas, scikit-learn or SQLAlchemy 2 (a bot-env test checks that).
"""

from __future__ import annotations

__all__ = [
    "CHANNEL_BY_PREFIX",
    "PLATFORM_PREFIXES",
    "TELEGRAM_OUTBOX_TABLE",
    "TELEGRAM_SENT_TABLE",
    "TELEGRAM_PREFIX",
    "VOICE_PREFIX",
    "WEB_PREFIX",
    "channel_of",
]

#: A Telegram conversation's sender id is ``tg:<chat id>``.
TELEGRAM_PREFIX = "tg:"
#: A web chat (socket.io) conversation's sender id is ``web:<session>``.
WEB_PREFIX = "web:"
#: A phone call's sender id is ``voice:<call sid>``.
VOICE_PREFIX = "voice:"

#: Sender-id namespace -> channel name.
CHANNEL_BY_PREFIX: dict[str, str] = {
    TELEGRAM_PREFIX[:-1]: "telegram",
    WEB_PREFIX[:-1]: "web",
    VOICE_PREFIX[:-1]: "voice",
}

#: Conversations whose sender the platform authenticates (Telegram, Twilio): a
#: REST client may not name them, or it would continue them.
PLATFORM_PREFIXES: tuple[str, ...] = (TELEGRAM_PREFIX, VOICE_PREFIX)

#: The Telegram channel's durable outbox, kept in the tracker store's database
#: by ``bot/telegram``; read and erased by :mod:`crm_ml.gdpr`.
TELEGRAM_OUTBOX_TABLE = "telegram_outbox"
#: Replies sent per customer message, kept a day (bot/telegram/_sent.py).
TELEGRAM_SENT_TABLE = "telegram_sent"


def channel_of(sender_id: str | None, input_channel: str | None = None) -> str:
    """The channel of a conversation: its sender id's namespace, else Rasa's input channel.

    Args:
        sender_id: Rasa's sender id (``tg:42``, ``web:abc``, ``voice:CA1``, or any).
        input_channel: The input channel Rasa recorded, used when the id has no namespace.

    Returns:
        ``telegram``, ``web``, ``voice``, the input channel's name, or ``rest``.
    """
    sender = sender_id or ""
    prefix = sender.split(":", 1)[0] if ":" in sender else ""
    return CHANNEL_BY_PREFIX.get(prefix) or input_channel or "rest"
