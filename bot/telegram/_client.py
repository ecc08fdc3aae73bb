"""The Bot API client: made with a connection pool, its token kept out of logs, calls retried."""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.request import HTTPXRequest

from bot.telegram._settings import TelegramConfig

logger = logging.getLogger(__name__)

__all__ = ["is_transient", "make_bot", "retry_after_seconds", "with_retries"]

T = TypeVar("T")


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
