"""Receiving: Telegram updates by long polling or by webhook, handed on in order per chat.

Like python-telegram-bot's ``telegram.ext.Updater``, this part only fetches
updates; what an update means for the conversation is the channel's business
(:mod:`bot.telegram._channel`), given here as a handler.
"""

import asyncio
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot, Update
from telegram.error import InvalidToken, RetryAfter, TelegramError

from bot.telegram._client import with_retries
from bot.telegram._settings import ALLOWED_UPDATES, TelegramConfig

logger = logging.getLogger(__name__)

__all__ = ["RecentIds", "Updater"]

UpdateHandler = Callable[[Update], Awaitable[None]]


class RecentIds:
    """A bounded set of recently seen update ids: a re-delivered update is answered once."""

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[int, None] = OrderedDict()

    def __contains__(self, update_id: object) -> bool:
        return update_id in self._ids

    def first_time(self, update_id: int) -> bool:
        """Remember ``update_id``; False if it was seen before."""
        if update_id in self._ids:
            self._ids.move_to_end(update_id)
            return False
        self._ids[update_id] = None
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


class Updater:
    """Fetches updates (``getUpdates`` or the webhook) and runs a handler on each.

    Updates of one chat are handled one after the other, in the order they
    came; different chats at the same time (up to ``max_concurrency``). An
    update delivered twice is handled once.

    Args:
        config: Mode, timeouts and concurrency.
        bot: Returns the Bot API client (made on first use by the channel).
        handle: Turns one update into a message for Rasa; never raises.
        reachable: Called when Telegram answers again after failed polls.
    """

    def __init__(self, config: TelegramConfig, bot: Callable[[], Bot],
                 handle: UpdateHandler, reachable: Callable[[], None]) -> None:
        self.config = config
        self._get_bot = bot
        self._handle = handle
        self._reachable = reachable
        self.recent = RecentIds()
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._chat_tails: dict[int, asyncio.Task[None]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._offset: int | None = None
        self._confirmed: int | None = None
        self._stopping = False
        #: When this process began fetching (Unix time): an update sent before it may
        #: have been answered by a process that stopped without confirming it (killed,
        #: or another replica that held the poll).
        self.started_at = 0.0
        self._in_flight: dict[int, asyncio.Task[None]] = {}  # update id -> its handling

    @property
    def bot(self) -> Bot:
        """The Bot API client."""
        return self._get_bot()

    @property
    def running(self) -> bool:
        """Whether :meth:`start` started fetching (and :meth:`stop_fetching` did not stop it)."""
        return self._runner is not None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Connect, then poll or set the webhook, in the running event loop (does not block)."""
        self._stopping = False
        self._offset = self._confirmed = None
        self.started_at = time.time()
        self._slots = asyncio.Semaphore(self.config.max_concurrency)
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def stop_fetching(self) -> None:
        """Stop polling (updates already fetched are still handled)."""
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None

    async def finish(self, grace: float) -> None:
        """Let updates in progress finish (cancelled after ``grace`` s); confirm the last one."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        await self.confirm()

    async def confirm(self) -> None:
        """Tell Telegram that the updates fetched so far are taken (polling only)."""
        if self.config.mode == "polling" and self._offset is not None \
                and self._offset != self._confirmed:
            try:  # otherwise Telegram sends the last batch again after a restart
                await self.bot.get_updates(offset=self._offset, timeout=0, limit=1)
                self._confirmed = self._offset
            except TelegramError as exc:
                logger.warning("could not confirm the last Telegram update: %s",
                               type(exc).__name__)

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

    # -- fetching ------------------------------------------------------------

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
            # Confirm only what was handled: an update still in progress is fetched
            # again (and skipped) rather than lost if this process dies now.
            offset = min(self._in_flight) if self._in_flight else self._offset
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=self.config.poll_timeout,
                    allowed_updates=ALLOWED_UPDATES)
                self._confirmed = offset
                if delay > 1.0:  # Telegram is back: send what waits now
                    self._reachable()
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
            fresh = [u for u in updates
                     if u.update_id not in self._in_flight and u.update_id not in self.recent]
            for update in fresh:
                self._offset = max(self._offset or 0, update.update_id + 1)
                task = self._dispatch(update)
                if task is not None:
                    self._in_flight[update.update_id] = task
                    task.add_done_callback(
                        lambda _t, uid=update.update_id: self._in_flight.pop(uid, None))
            if updates and not fresh and self._in_flight:  # only what is in progress
                await asyncio.wait(set(self._in_flight.values()), timeout=1.0,
                                   return_when=asyncio.FIRST_COMPLETED)

    async def receive_webhook(self, headers: Any, body: bytes) -> int:
        """Check and queue one webhook update.

        Args:
            headers: The request's headers (the secret token is checked).
            body: The raw request body (Telegram's JSON update).

        Returns:
            The HTTP status to answer with.
        """
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

    # -- handing on ----------------------------------------------------------

    def dispatch(self, update: Update) -> bool:
        """Handle ``update`` in the background, in order within its chat.

        Returns:
            False when the update was seen before (and is ignored).
        """
        return self._dispatch(update) is not None

    def _dispatch(self, update: Update) -> "asyncio.Task[None] | None":
        """:meth:`dispatch`, returning the task that handles the update (None if seen)."""
        if not self.recent.first_time(update.update_id):
            logger.info("Telegram update %d delivered again; ignored", update.update_id)
            return None
        chat = update.effective_chat
        key = chat.id if chat is not None else 0
        previous = self._chat_tails.get(key)

        async def run() -> None:
            if previous is not None:
                await asyncio.wait({previous})
            assert self._slots is not None
            async with self._slots:
                await self._handle(update)

        task = asyncio.get_running_loop().create_task(run())
        self._chat_tails[key] = task
        self._tasks.add(task)

        def done(t: "asyncio.Task[None]") -> None:
            self._tasks.discard(t)
            if self._chat_tails.get(key) is t:
                del self._chat_tails[key]

        task.add_done_callback(done)
        return task
