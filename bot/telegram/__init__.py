"""Telegram channel of the Rasa server (bot env), on python-telegram-bot 21.

Why not Rasa's own ``telegram`` connector: it is built on aiogram 2, has no
usable ``get_output_channel()`` (so an agent's reply cannot be pushed to a
Telegram chat), sends text as Markdown (so ``_`` or ``*`` in a reply breaks the
message), and puts whole button payloads into ``callback_data``, which Telegram
limits to 64 bytes.

Configuration: the token and the Bot API URL come from the settings
(``TELEGRAM_TOKEN``, ``TELEGRAM_BASE_URL``; see ``crm_ml/config.py``). In
``credentials.yml`` the channel needs no keys; any key given there overrides
the settings::

    bot.telegram.TelegramInput:
      # webhook_url: "https://bot.example.com/webhooks/telegram/webhook"
      # secret_token: "..."     # default: derived from the token
      # poll_timeout: 25
      # outbox_max_delay: 30  # longest wait between two tries while Telegram is down
      # lease_seconds: 15     # replicas: how soon another takes over polling

Modes:

* ``off``: no token. The channel is inert: no polling, no Telegram calls,
  ``POST /webhooks/telegram/webhook`` answers 404, ``get_output_channel()``
  returns ``None``.
* ``polling`` (a token, no webhook URL; a laptop needs nothing else): after the
  server starts, a ``getUpdates`` long-poll loop runs in the server's event
  loop; it stops, and confirms the last update, when the server stops.
* ``webhook`` (a token and a public ``webhook_url``): on start the channel calls
  ``setWebhook`` with a secret; ``POST /webhooks/telegram/webhook`` checks the
  ``X-Telegram-Bot-Api-Secret-Token`` header, answers at once and handles the
  update in the background.

Delivery: every call to Telegram is retried on flood waits and network errors
(a few seconds). If Telegram still cannot be reached, the message goes into a
durable outbox (a ``telegram_outbox`` table next to the conversations, see
:class:`TelegramOutbox`) and later messages to that chat queue behind it; a
background task sends them, in order, once Telegram answers again. Bot replies
and agents' messages alike: none is dropped for an outage.

Several Rasa replicas (a shared SQL tracker store): all get the token; the one
holding a lease in the tracker store's database (:mod:`bot.telegram._leader`,
``lease_seconds``, 15 by default) polls and sends the outbox, the others answer
what reaches them (webhook calls, agents' replies) and queue what they cannot
send in the shared outbox. When the holder dies, another takes over once its
lease has expired. An update is confirmed to Telegram only once it has been
handled, and one sent before this process began fetching is first looked up in
its conversation; the replies of each turn are recorded as sent (``_sent``), so a
turn run again after a crash skips what went out before: a takeover or a restart
loses nothing and repeats at most a reply in flight at the crash.

Sender ids are ``tg:<chat id>``; the metadata carries the Telegram user id and
username under ``telegram``. Logs carry neither text nor names, and chat ids
only as a short hash.

Layout (one private module per part, as python-telegram-bot does): ``_settings``
(limits, fixed replies, :class:`TelegramConfig`), ``_utils`` (text splitting,
sender ids, button data), ``_client`` (the Bot API client and retries),
``_outbox`` (the durable outbox), ``_leader`` (which replica polls), ``_sent``
(replies sent per message), ``_sender`` (the output channel), ``_updater``
(fetching updates: polling and webhook) and ``_channel`` (the Rasa input channel:
updates and button presses to user messages). Import from ``bot.telegram``, not
from the private modules.
"""

from bot.telegram._channel import TelegramInput
from bot.telegram._client import is_transient, make_bot, with_retries
from bot.telegram._outbox import TelegramOutbox, decode_params, encode_params, tracker_store_engine
from bot.telegram._sender import TelegramOutput
from bot.telegram._settings import (
    CHANNEL,
    EXPIRED_BUTTON,
    FAILED_REPLY,
    NON_TEXT_REPLY,
    SENDER_PREFIX,
    TelegramConfig,
    TelegramDeliveryError,
)
from bot.telegram._updater import RecentIds, Updater
from bot.telegram._utils import (
    CallbackRegistry,
    chat_id_of,
    command_to_text,
    is_public_url,
    sender_id_of,
    split_text,
    utf16_len,
)

__all__ = [
    "CHANNEL",
    "EXPIRED_BUTTON",
    "FAILED_REPLY",
    "NON_TEXT_REPLY",
    "SENDER_PREFIX",
    "CallbackRegistry",
    "RecentIds",
    "TelegramConfig",
    "TelegramDeliveryError",
    "TelegramInput",
    "TelegramOutbox",
    "TelegramOutput",
    "Updater",
    "chat_id_of",
    "command_to_text",
    "decode_params",
    "encode_params",
    "is_public_url",
    "is_transient",
    "make_bot",
    "sender_id_of",
    "split_text",
    "tracker_store_engine",
    "utf16_len",
    "with_retries",
]
