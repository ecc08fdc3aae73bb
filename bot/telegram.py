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

Sender ids are ``tg:<chat id>``; the metadata carries the Telegram user id and
username under ``telegram``. Logs carry neither text nor names, and chat ids
only as a short hash.
"""

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import re
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    TelegramObject,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from crm_ml.config import get_settings
from crm_ml.ratelimit import POLITE_MESSAGE, limiter_for

logger = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL = "telegram"
SENDER_PREFIX = "tg:"
DEFAULT_BASE_URL = "https://api.telegram.org/bot"
MAX_TEXT_UNITS = 4096  # Telegram's limit, in UTF-16 code units
MAX_CALLBACK_BYTES = 64  # Telegram's limit for callback_data
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # sendPhoto's upload limit
ALLOWED_UPDATES = ["message", "callback_query"]
NON_TEXT_REPLY = "Sorry, I can only read text messages here. Could you type your question?"
EXPIRED_BUTTON = "This button has expired. Please type your answer instead."
FAILED_REPLY = ("Sorry, something went wrong on our side. Please try again in a moment; "
                "nothing you said is lost.")
# Methods a ``custom`` response may call, with the chat filled in by the channel.
CUSTOM_METHODS = {
    "send_message", "send_photo", "send_document", "send_location", "send_venue",
    "send_contact", "send_sticker", "send_animation", "send_audio", "send_video",
    "send_dice", "send_poll",
}


class TelegramDeliveryError(RuntimeError):
    """A message could not be delivered to Telegram, after retries where they make sense."""


# ---------------------------------------------------------------------------
# Pure helpers (unit-tested in tests/bot_env/test_telegram_unit.py)
# ---------------------------------------------------------------------------


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


class RecentIds:
    """A bounded set of recently seen update ids: a re-delivered update is answered once."""

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[int, None] = OrderedDict()

    def first_time(self, update_id: int) -> bool:
        """Remember ``update_id``; False if it was seen before."""
        if update_id in self._ids:
            self._ids.move_to_end(update_id)
            return False
        self._ids[update_id] = None
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


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


class _RedactToken(logging.Filter):
    """httpx logs request URLs, and Bot API URLs contain the token: hide it."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token:
            message = record.getMessage()
            if self.token in message:
                record.msg, record.args = message.replace(self.token, "<token>"), ()
        return True


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


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
        """Settings first, then any non-empty key of ``credentials.yml``."""
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
        )


def make_bot(config: TelegramConfig) -> Bot:
    """A Bot for ``config``, with a connection pool for concurrent sends.

    python-telegram-bot's default request object has a pool of one connection,
    which makes concurrent chats fail with pool timeouts.
    """
    telegram_logger = logging.getLogger("telegram")
    if telegram_logger.level == logging.NOTSET:  # its DEBUG lines carry message text
        telegram_logger.setLevel(logging.INFO)
    if config.token:
        httpx_logger = logging.getLogger("httpx")
        if not any(isinstance(f, _RedactToken) and f.token == config.token
                   for f in httpx_logger.filters):
            httpx_logger.addFilter(_RedactToken(config.token))
    return Bot(
        config.token,
        base_url=config.base_url,
        base_file_url=config.base_file_url,
        request=HTTPXRequest(connection_pool_size=max(8, config.max_concurrency),
                             read_timeout=10.0, write_timeout=10.0, connect_timeout=5.0,
                             pool_timeout=5.0, media_write_timeout=30.0),
        get_updates_request=HTTPXRequest(connection_pool_size=1, read_timeout=10.0,
                                         connect_timeout=5.0),
    )


def is_transient(exc: BaseException) -> bool:
    """Whether a failed Bot API call may work later, unchanged.

    Flood waits, timeouts and network errors (5xx answers included) may; so may
    an answer that is not Telegram's JSON (python-telegram-bot's plain
    ``TelegramError``, e.g. a proxy's HTML error page). A bad request, a chat
    that blocked the bot, a bad token or a migrated chat may not.
    """
    if isinstance(exc, (RetryAfter, TimedOut)):
        return True
    if isinstance(exc, BadRequest):
        return False
    return isinstance(exc, NetworkError) or type(exc) is TelegramError


def retry_after_seconds(exc: RetryAfter) -> float:
    """The flood wait of ``exc`` in seconds (an int or a timedelta, by version)."""
    wait = exc.retry_after
    return float(wait.total_seconds() if hasattr(wait, "total_seconds") else wait)


async def with_retries(call: Callable[[], Awaitable[T]], what: str, attempts: int = 4,
                       max_retry_after: float = 60.0, base_delay: float = 0.5) -> T:
    """Run a Bot API call, retrying flood waits and network errors with back-off.

    ``RetryAfter`` waits as long as Telegram asks (up to ``max_retry_after``);
    network errors, timeouts and garbled answers wait 0.5 s, 1 s, 2 s... with
    jitter. Permanent errors (bad request, blocked by the user, bad token) are
    raised at once.

    Raises:
        TelegramError: The last error, once the attempts are used up.
    """
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except RetryAfter as exc:
            seconds = retry_after_seconds(exc)
            if attempt == attempts or seconds > max_retry_after:
                raise
            logger.warning("%s: Telegram asks to wait %.0f s (attempt %d of %d)",
                           what, seconds, attempt, attempts)
            await asyncio.sleep(seconds)
        except TelegramError as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            logger.warning("%s: %s (attempt %d of %d), retrying", what,
                           type(exc).__name__, attempt, attempts)
            await asyncio.sleep(delay * (1 + random.random() / 2))
            delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------
# Outbox: what could not be sent yet
# ---------------------------------------------------------------------------


# Telegram objects a queued call may carry (reply markups), by name.
KEPT_TYPES: dict[str, type[TelegramObject]] = {
    cls.__name__: cls for cls in (InlineKeyboardMarkup, ReplyKeyboardMarkup,
                                  ReplyKeyboardRemove, ForceReply)}


def encode_params(params: dict[str, Any]) -> str:
    """A Bot API call's parameters as JSON (uploads as base64, keyboards as dicts)."""

    def default(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, tuple(KEPT_TYPES.values())):
            return {"__tg__": type(value).__name__, "data": value.to_dict()}
        raise TypeError(f"cannot keep a {type(value).__name__} in the outbox")

    return json.dumps(params, default=default, ensure_ascii=False)


def decode_params(raw: str) -> dict[str, Any]:
    """The parameters :func:`encode_params` stored.

    Raises:
        ValueError: The stored text is not what ``encode_params`` writes.
    """

    def hook(obj: dict[str, Any]) -> Any:
        if set(obj) == {"__bytes__"}:
            return base64.b64decode(obj["__bytes__"])
        if set(obj) == {"__tg__", "data"}:
            cls = KEPT_TYPES.get(str(obj["__tg__"]))
            if cls is None:
                raise ValueError(f"unexpected Telegram type {obj['__tg__']!r}")
            return cls.de_json(obj["data"], None)
        return obj

    params = json.loads(raw, object_hook=hook)
    if not isinstance(params, dict):
        raise ValueError("outbox parameters are not an object")
    return params


def tracker_store_engine(app: Any) -> sa.engine.Engine | None:
    """The SQLAlchemy engine of the Rasa server's tracker store, if it is an SQL one."""
    store = getattr(getattr(getattr(app, "ctx", None), "agent", None), "tracker_store", None)
    for _ in range(4):  # FailSafeTrackerStore / AwaitableTrackerStore wrap the real one
        if store is None:
            return None
        engine = getattr(store, "engine", None)
        if isinstance(engine, sa.engine.Engine):
            return engine
        store = getattr(store, "_tracker_store", None)
    return None


SendQueued = Callable[[int, str, dict[str, Any]], Awaitable[Any]]


class TelegramOutbox:
    """Bot API calls that could not be made yet: kept in a table, sent later, in order.

    A message goes out at once when its chat has nothing waiting. When Telegram
    cannot be reached after the usual retries (network errors, 5xx, flood waits,
    timeouts), the call is stored in the ``telegram_outbox`` table, and every
    later message to that chat queues behind it, so a chat sees its messages in
    the order they were sent. A background task (:meth:`run`) sends what waits,
    oldest first per chat, deleting each row once Telegram has accepted it; it
    tries again after 1 s, 2 s, 4 s... (up to ``max_delay``), at once when any
    other call to Telegram succeeds again, and after a restart.

    The table lives in the tracker store's database when that is SQL (so it is
    as durable as the conversations, and the same for SQLite and PostgreSQL),
    else in memory. Rows are per bot (the token's numeric id). A call that
    Telegram refuses for good (a bad request, a chat that blocked the bot) is
    dropped with an error in the log. A call that timed out after Telegram got
    it may be sent twice (the Bot API has no idempotency key); a refused
    connection or an error status never duplicates a message.

    Args:
        bot_id: The bot's id (rows of other bots in the same table are left alone).
        base_delay: First wait after a failed try, in seconds.
        max_delay: Longest wait between two tries, in seconds.
    """

    TABLE = "telegram_outbox"

    def __init__(self, bot_id: str, base_delay: float = 1.0, max_delay: float = 30.0) -> None:
        self.bot_id = bot_id[:32]
        self.base_delay = base_delay
        self.max_delay = max(max_delay, base_delay)
        self._engine: sa.engine.Engine | None = None
        self._table: sa.Table | None = None
        self._waiting: dict[int, int] = {}  # chat id -> calls waiting
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = \
            weakref.WeakValueDictionary()
        self._event: asyncio.Event | None = None
        self._next_try: float | None = None  # monotonic time of the next flush; None: idle
        self._delay = base_delay

    # -- storage ---------------------------------------------------------------

    def bind(self, engine: sa.engine.Engine | None = None) -> None:
        """Use ``engine``'s database (in memory without one); once, the first call wins."""
        if self._engine is not None:
            return
        if engine is None:
            engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool,
                                      connect_args={"check_same_thread": False})
        table = sa.Table(
            self.TABLE, sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("bot_id", sa.String(32), nullable=False),
            sa.Column("chat_id", sa.BigInteger, nullable=False),
            sa.Column("method", sa.String(32), nullable=False),
            sa.Column("params", sa.Text, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Index("ix_telegram_outbox_chat", "bot_id", "chat_id", "id"),
        )
        table.metadata.create_all(engine, checkfirst=True)
        with engine.connect() as conn:
            counts = conn.execute(
                sa.select(table.c.chat_id, sa.func.count())
                .where(table.c.bot_id == self.bot_id).group_by(table.c.chat_id)).all()
        self._engine, self._table = engine, table
        self._waiting = {int(chat): int(n) for chat, n in counts}
        if self._waiting:
            logger.info("Telegram outbox: %d messages for %d chats wait from before",
                        sum(self._waiting.values()), len(self._waiting))
            self.wake()

    def _bound(self) -> tuple[sa.engine.Engine, sa.Table]:
        if self._engine is None or self._table is None:
            self.bind()
        assert self._engine is not None and self._table is not None
        return self._engine, self._table

    def waiting(self, chat_id: int | None = None) -> int:
        """Calls waiting for ``chat_id`` (for every chat without one)."""
        if chat_id is None:
            return sum(self._waiting.values())
        return self._waiting.get(chat_id, 0)

    def put(self, chat_id: int, method: str, params: dict[str, Any]) -> None:
        """Keep a call for later, behind what waits for the same chat.

        Raises:
            TypeError: A parameter cannot be stored.
            sqlalchemy.exc.SQLAlchemyError: The database refused it.
        """
        engine, table = self._bound()
        raw = encode_params(params)
        with engine.begin() as conn:
            conn.execute(table.insert().values(bot_id=self.bot_id, chat_id=chat_id,
                                               method=method, params=raw,
                                               created_at=time.time()))
        self._waiting[chat_id] = self._waiting.get(chat_id, 0) + 1
        self.notify()

    def _rows(self, chat_id: int) -> list[Any]:
        engine, table = self._bound()
        with engine.connect() as conn:
            return conn.execute(
                sa.select(table.c.id, table.c.method, table.c.params)
                .where(table.c.bot_id == self.bot_id, table.c.chat_id == chat_id)
                .order_by(table.c.id)).all()

    def _remove(self, chat_id: int, row_id: int) -> None:
        engine, table = self._bound()
        with engine.begin() as conn:
            conn.execute(table.delete().where(table.c.id == row_id))
        left = self._waiting.get(chat_id, 1) - 1
        if left > 0:
            self._waiting[chat_id] = left
        else:
            self._waiting.pop(chat_id, None)

    # -- order and timing ------------------------------------------------------

    def lock(self, chat_id: int) -> asyncio.Lock:
        """The lock that keeps one chat's sends in order (held while sending to it)."""
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[chat_id] = lock
        return lock

    def notify(self) -> None:
        """Something waits: flush soon, but not before the current back-off is over."""
        if self._next_try is None:
            self._next_try = time.monotonic()
        if self._event is not None:
            self._event.set()

    def wake(self) -> None:
        """Telegram answers again: flush now, back-off reset."""
        if not self._waiting:
            return
        self._delay = self.base_delay
        self._next_try = time.monotonic()
        if self._event is not None:
            self._event.set()

    async def run(self, send: SendQueued) -> None:
        """Flush whenever something waits and is due (the background task; never returns)."""
        self._event = asyncio.Event()
        while True:
            now = time.monotonic()
            if self._next_try is None or self._next_try > now:
                timeout = None if self._next_try is None else self._next_try - now
                try:
                    await asyncio.wait_for(self._event.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
                self._event.clear()
                continue
            self._next_try = None
            try:
                retry_in = await self.flush(send)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - e.g. the database is down: try again later
                logger.exception("Telegram outbox flush failed")
                retry_in = self._backoff()
            if retry_in is not None:
                self._next_try = time.monotonic() + retry_in

    def _backoff(self) -> float:
        delay, self._delay = self._delay, min(self._delay * 2, self.max_delay)
        return delay

    async def flush(self, send: SendQueued) -> float | None:
        """Send what waits, chat by chat, in order.

        Returns:
            ``None`` when nothing is left, else seconds to wait before trying again.
        """
        for chat_id in list(self._waiting):
            async with self.lock(chat_id):
                while True:
                    rows = self._rows(chat_id)
                    if not rows:
                        self._waiting.pop(chat_id, None)
                        break
                    retry_in = await self._flush_chat(chat_id, rows, send)
                    if retry_in is not None:
                        return retry_in
        self._delay = self.base_delay
        return None

    async def _flush_chat(self, chat_id: int, rows: list[Any], send: SendQueued
                          ) -> float | None:
        """Send one chat's waiting calls, in order; seconds to wait if Telegram fails."""
        for row_id, method, raw in rows:
            what = f"queued {method} to chat {redact(sender_id_of(chat_id))}"
            try:
                await send(chat_id, method, decode_params(raw))
            except RetryAfter as exc:
                logger.warning("%s: Telegram asks to wait %.0f s", what,
                               retry_after_seconds(exc))
                return max(retry_after_seconds(exc), self.base_delay)
            except (TelegramError, TelegramDeliveryError) as exc:
                if is_transient(exc) or isinstance(exc, InvalidToken):
                    delay = self._backoff()
                    logger.warning("%s failed (%s); next try in %.0f s", what,
                                   type(exc).__name__, delay)
                    return delay
                logger.error("%s refused by Telegram (%s); dropped", what,
                             type(exc).__name__)
            except (ValueError, TypeError) as exc:
                logger.error("%s cannot be sent (%s); dropped", what, type(exc).__name__)
            except Exception:  # noqa: BLE001 - never let one message block its chat
                logger.exception("%s failed unexpectedly; dropped", what)
            else:
                logger.info("%s delivered", what)
            self._remove(chat_id, row_id)
        return None


# ---------------------------------------------------------------------------
# Output channel
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Input channel
# ---------------------------------------------------------------------------


OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class TelegramInput(InputChannel):
    """Telegram chats in and out, by long polling or by webhook (see the module doc)."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> "TelegramInput":
        return cls(TelegramConfig.resolve(credentials))

    def __init__(self, config: TelegramConfig | None = None) -> None:
        self.config = config or TelegramConfig.resolve(None)
        self.callbacks = CallbackRegistry()
        self.recent = RecentIds()
        self._bot: Bot | None = None
        self._output: TelegramOutput | None = None
        self._push: TelegramOutput | None = None
        self._on_new_message: OnNewMessage | None = None
        self._app: Any = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._chat_tails: dict[int, asyncio.Task[None]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._offset: int | None = None
        self._confirmed: int | None = None
        self._stopping = False
        self.outbox = TelegramOutbox(self.config.token.split(":", 1)[0],
                                     max_delay=self.config.outbox_max_delay)
        self._flusher: asyncio.Task[None] | None = None
        if self.config.mode == "off":
            logger.info("Telegram channel off: no TELEGRAM_TOKEN")
        else:
            logger.info("Telegram channel in %s mode", self.config.mode)

    # -- clients --------------------------------------------------------------

    @property
    def bot(self) -> Bot:
        """The Bot API client, made on first use."""
        if self._bot is None:
            self._bot = make_bot(self.config)
        return self._bot

    def output(self) -> TelegramOutput:
        """The output channel for the bot's replies inside a turn (logs failures)."""
        if self._output is None:
            self._output = TelegramOutput(self.bot, self.callbacks, self.config,
                                          outbox=self.outbox)
        return self._output

    def get_output_channel(self) -> OutputChannel | None:
        """An output channel for pushes (an agent's reply), or ``None`` when off.

        While Telegram cannot be reached, a message is kept in the channel's
        outbox and sent when Telegram is back. When Telegram refuses it (the
        customer blocked the bot) or the outbox cannot keep it, it raises
        ``TelegramDeliveryError``, so that the caller (``bot.channels.deliver``)
        keeps it in the conversation's own outbox.
        """
        if self.config.mode == "off":
            return None
        if self._push is None:
            self._push = TelegramOutput(self.bot, self.callbacks, self.config,
                                        raise_errors=True, outbox=self.outbox)
        return self._push

    # -- Sanic ---------------------------------------------------------------

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        self._on_new_message = on_new_message
        hook = Blueprint("crm_telegram_webhook", __name__)

        @hook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok", "mode": self.config.mode})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            self._app = request.app
            status = await self.receive_webhook(request.headers, request.body or b"")
            return response.json({"ok": status == 200}, status=status)

        if self.config.mode != "off":
            hook.listener("after_server_start")(self._on_server_start)
            hook.listener("before_server_stop")(self._on_server_stop)
        return hook

    async def _on_server_start(self, app: Any, loop: Any) -> None:
        self.start(app)

    async def _on_server_stop(self, app: Any, loop: Any) -> None:
        await self.stop()

    # -- lifecycle -----------------------------------------------------------

    def start(self, app: Any = None, on_new_message: OnNewMessage | None = None) -> None:
        """Start talking to Telegram in the running event loop (does not block)."""
        if self.config.mode == "off" or self._runner is not None:
            return
        self._app = app
        if on_new_message is not None:
            self._on_new_message = on_new_message
        self._stopping = False
        self._slots = asyncio.Semaphore(self.config.max_concurrency)
        try:  # the tracker store's database when it is SQL, else memory
            self.outbox.bind(tracker_store_engine(app))
        except Exception:  # noqa: BLE001 - still answer, with an outbox in memory
            logger.exception("Telegram outbox table unavailable; keeping it in memory")
            self.outbox.bind(None)
        loop = asyncio.get_running_loop()
        self._runner = loop.create_task(self._run())
        self._flusher = loop.create_task(self.outbox.run(self.output().send_queued))

    async def stop(self, grace: float = 10.0) -> None:
        """Stop polling, let messages in progress finish, confirm the last update."""
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        if self._flusher is not None:  # what waits stays in the table for the next start
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        if self.config.mode == "polling" and self._offset is not None \
                and self._offset != self._confirmed:
            try:  # otherwise Telegram sends the last batch again after a restart
                await self.bot.get_updates(offset=self._offset, timeout=0, limit=1)
                self._confirmed = self._offset
            except TelegramError as exc:
                logger.warning("could not confirm the last Telegram update: %s",
                               type(exc).__name__)
        if self._bot is not None:
            try:
                await self._bot.shutdown()
            except Exception:  # noqa: BLE001 - shutting down anyway
                logger.debug("Telegram client shutdown failed", exc_info=True)
        logger.info("Telegram channel stopped")

    async def _run(self) -> None:
        try:
            if not await self._initialize():
                return
            if self.config.mode == "webhook":
                await self._set_webhook()
            else:
                await self._poll()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - never take the Rasa server down
            logger.exception("Telegram channel stopped")

    async def _initialize(self) -> bool:
        """Check the token (getMe), retrying while Telegram is unreachable."""
        delay = 1.0
        while not self._stopping:
            try:
                await self.bot.initialize()
                logger.info("Telegram bot connected (%s mode)", self.config.mode)
                return True
            except InvalidToken:
                # The exception's text contains the token: do not log it.
                logger.error("Telegram rejected TELEGRAM_TOKEN; the Telegram channel is off")
                return False
            except TelegramError as exc:
                logger.warning("Telegram not reachable (%s); retrying in %.0f s",
                               type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        return False

    async def _set_webhook(self) -> None:
        try:
            await with_retries(lambda: self.bot.set_webhook(
                url=self.config.webhook_url, secret_token=self.config.webhook_secret,
                allowed_updates=ALLOWED_UPDATES), "setWebhook", attempts=5)
            logger.info("Telegram webhook set")
        except TelegramError as exc:
            logger.error("could not set the Telegram webhook: %s", type(exc).__name__)

    async def _poll(self) -> None:
        """The getUpdates loop."""
        try:  # Telegram refuses getUpdates while a webhook is set
            await with_retries(lambda: self.bot.delete_webhook(drop_pending_updates=False),
                               "deleteWebhook")
        except TelegramError as exc:
            logger.warning("deleteWebhook failed: %s", type(exc).__name__)
        delay = 1.0
        while not self._stopping:
            while len(self._tasks) >= 8 * self.config.max_concurrency:  # back-pressure
                await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            try:
                updates = await self.bot.get_updates(
                    offset=self._offset, timeout=self.config.poll_timeout,
                    allowed_updates=ALLOWED_UPDATES)
                self._confirmed = self._offset
                if delay > 1.0:  # Telegram is back: send what waits now
                    self.outbox.wake()
                delay = 1.0
            except RetryAfter as exc:
                await asyncio.sleep(float(exc.retry_after))
                continue
            except InvalidToken:
                logger.error("Telegram rejected TELEGRAM_TOKEN; polling stopped")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep polling, with back-off
                # Conflict: another process polls with this token, or a webhook is set.
                logger.warning("getUpdates failed (%s); retrying in %.0f s",
                               type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            for update in updates:
                self._offset = max(self._offset or 0, update.update_id + 1)
                self.dispatch(update)

    # -- updates -------------------------------------------------------------

    async def receive_webhook(self, headers: Any, body: bytes) -> int:
        """Check and queue one webhook update; returns the HTTP status to answer."""
        if self.config.mode != "webhook":
            return 404
        given = headers.get("X-Telegram-Bot-Api-Secret-Token", "") or ""
        if not hmac.compare_digest(given.encode(), self.config.webhook_secret.encode()):
            logger.warning("Telegram webhook call with a wrong secret refused")
            return 403
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return 400
        if not isinstance(data, dict) or type(data.get("update_id")) is not int:
            return 400
        try:
            update = Update.de_json(data, self.bot)
        except Exception:  # noqa: BLE001 - any malformed update is the caller's error
            logger.info("malformed Telegram update refused")
            return 400
        chat = update.effective_chat if update is not None else None
        if update is None or (chat is not None and type(chat.id) is not int):
            return 400  # Telegram's chat ids are integers; 'tg:<anything>' is not a chat
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.max_concurrency)
        self.dispatch(update)
        return 200  # at once: Telegram re-sends updates that take too long

    def dispatch(self, update: Update) -> bool:
        """Handle ``update`` in the background, in order within its chat.

        Returns:
            False when the update was seen before (and is ignored).
        """
        if not self.recent.first_time(update.update_id):
            logger.info("Telegram update %d delivered again; ignored", update.update_id)
            return False
        chat = update.effective_chat
        key = chat.id if chat is not None else 0
        previous = self._chat_tails.get(key)

        async def run() -> None:
            if previous is not None:
                await asyncio.wait({previous})
            assert self._slots is not None
            async with self._slots:
                await self.handle_update(update)

        task = asyncio.get_running_loop().create_task(run())
        self._chat_tails[key] = task
        self._tasks.add(task)

        def done(t: "asyncio.Task[None]") -> None:
            self._tasks.discard(t)
            if self._chat_tails.get(key) is t:
                del self._chat_tails[key]

        task.add_done_callback(done)
        return True

    async def handle_update(self, update: Update) -> None:
        """Turn one update into a user message for Rasa (errors are logged, not raised)."""
        try:
            if update.callback_query is not None:
                await self._handle_callback(update)
            elif update.message is not None:
                await self._handle_message(update, update.message)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one bad update must not stop the others
            logger.exception("Telegram update %d failed", update.update_id)

    @staticmethod
    def metadata(update: Update, message: Message | None, **extra: Any) -> dict[str, Any]:
        """What Rasa keeps about the Telegram side of a message."""
        user = update.effective_user
        chat = update.effective_chat
        info: dict[str, Any] = {
            "update_id": update.update_id,
            "chat_id": chat.id if chat else None,
            "chat_type": str(chat.type) if chat else None,
            "user_id": user.id if user else None,
            "username": user.username if user else None,
            "language_code": user.language_code if user else None,
            "message_id": message.message_id if message else None,
        }
        info.update(extra)
        return {"telegram": info}

    async def _handle_message(self, update: Update, message: Message) -> None:
        chat_id = message.chat.id
        text = clean_text(message.text or message.caption or "")
        output = self.output()
        if not text:
            await output.send_text_message(sender_id_of(chat_id), NON_TEXT_REPLY)
            return
        await self._to_rasa(command_to_text(text[:MAX_TEXT_UNITS]), chat_id,
                            f"tg:{chat_id}:{message.message_id}",
                            self.metadata(update, message))

    async def _handle_callback(self, update: Update) -> None:
        query = update.callback_query
        assert query is not None
        message = query.message if isinstance(query.message, Message) else None
        data = query.data or ""
        offered = set()
        if message is not None and message.reply_markup is not None:
            offered = {b.callback_data for row in message.reply_markup.inline_keyboard
                       for b in row if b.callback_data}
        payload = self.callbacks.decode(data) if data in offered else None
        try:
            await with_retries(lambda: self.bot.answer_callback_query(
                query.id, text=None if payload is not None else EXPIRED_BUTTON),
                "answerCallbackQuery", attempts=2)
        except TelegramError as exc:  # too late to answer (older than ~15 s): go on
            logger.info("answerCallbackQuery failed: %s", type(exc).__name__)
        if payload is None or message is None:
            logger.info("Telegram button press refused: unknown or expired button")
            return
        await self._to_rasa(payload, message.chat.id, f"tg:{message.chat.id}:cb:{query.id}",
                            self.metadata(update, message, button=True))

    async def _to_rasa(self, text: str, chat_id: int, message_id: str,
                       metadata: dict[str, Any]) -> None:
        sender = sender_id_of(chat_id)
        output = self.output()
        if not limiter_for(CHANNEL).allow(sender):
            logger.info("Telegram chat %s rate-limited", redact(chat_id))
            if limiter_for(f"{CHANNEL}:notice", "1/30").allow(sender):
                await output.send_text_message(sender, POLITE_MESSAGE)
            return
        await self._drain_outbox(sender, output)
        if self._on_new_message is None:
            logger.error("Telegram message before the channel was registered; dropped")
            return
        try:
            await self._on_new_message(UserMessage(
                text, output, sender, input_channel=self.name(),
                message_id=message_id[:64], metadata=metadata))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - answer politely, keep the conversation
            logger.exception("Telegram message of chat %s failed", redact(chat_id))
            await output.send_text_message(sender, FAILED_REPLY)

    async def _drain_outbox(self, sender: str, output: TelegramOutput) -> None:
        """Send agent messages that could not be pushed earlier (kept in the outbox)."""
        if self._app is None or getattr(getattr(self._app, "ctx", None), "agent", None) is None:
            return
        try:
            from bot.channels import CRMRestInput

            queued = await CRMRestInput.drain_outbox(self._app, sender)
        except Exception:  # noqa: BLE001 - the outbox stays for the next message
            logger.debug("no outbox for chat %s", redact(sender), exc_info=True)
            return
        for item in queued:
            if item.get("text"):
                await output.send_text_message(sender, item["text"])
