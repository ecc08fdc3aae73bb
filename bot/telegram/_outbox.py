"""The durable outbox: Bot API calls that could not be made yet, kept in a table, sent later."""

import asyncio
import base64
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from telegram import (
    ForceReply,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    TelegramObject,
)
from telegram.error import InvalidToken, RetryAfter, TelegramError

from bot.telegram._client import is_transient, retry_after_seconds
from bot.telegram._settings import TelegramDeliveryError
from bot.telegram._utils import redact, sender_id_of
from crm_ml.contract import TELEGRAM_OUTBOX_TABLE
from crm_ml.db.outbox import outbox_table

logger = logging.getLogger(__name__)

__all__ = [
    "KEPT_TYPES",
    "SendQueued",
    "TelegramOutbox",
    "decode_params",
    "encode_params",
    "tracker_store_engine",
]


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

    TABLE = TELEGRAM_OUTBOX_TABLE

    def __init__(self, bot_id: str, base_delay: float = 1.0, max_delay: float = 30.0,
                 scan_seconds: float = 15.0) -> None:
        self.bot_id = bot_id[:32]
        self.scan_seconds = scan_seconds
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
        table = outbox_table()
        table.metadata.create_all(engine, checkfirst=True)
        counts = self._counts(engine, table)
        self._engine, self._table = engine, table
        self._waiting = counts
        if self._waiting:
            logger.info("Telegram outbox: %d messages for %d chats wait from before",
                        sum(self._waiting.values()), len(self._waiting))
            self.wake()

    def scan(self) -> int:
        """Count the calls other processes put in the table (``crm-ml reminders`` queues a
        rep's due follow-ups there) and flush them soon; returns how many were new."""
        new = 0
        for chat, n in self._counts(*self._bound()).items():
            known = self._waiting.get(chat, 0)
            if n > known:
                new += n - known
                self._waiting[chat] = n
        if new:
            logger.info("Telegram outbox: %d new calls queued by another process", new)
            self.notify()
        return new

    def refresh(self) -> None:
        """Count what waits afresh (another replica may have sent it): a replica that
        does not flush the outbox itself queues a chat's messages only while some wait."""
        self._waiting = self._counts(*self._bound())

    def _counts(self, engine: sa.engine.Engine, table: sa.Table) -> dict[int, int]:
        """This bot's waiting calls in the table, per chat."""
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.chat_id, sa.func.count())
                .where(table.c.bot_id == self.bot_id).group_by(table.c.chat_id)).all()
        return {int(chat): int(n) for chat, n in rows}

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
                # Idle, the table is looked at every scan_seconds for calls queued elsewhere.
                timeout = self.scan_seconds if self._next_try is None \
                    else min(self._next_try - now, self.scan_seconds)
                try:
                    await asyncio.wait_for(self._event.wait(), timeout)
                except asyncio.TimeoutError:
                    if self._next_try is None:
                        try:
                            self.scan()
                        except Exception:  # noqa: BLE001 - e.g. the database is down
                            logger.exception("Telegram outbox scan failed")
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
