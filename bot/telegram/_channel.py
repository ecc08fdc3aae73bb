"""The Rasa input channel: Telegram updates become user messages, button presses included."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from telegram import Bot, Message, Update
from telegram.error import TelegramError

from bot.telegram._client import make_bot, with_retries
from bot.telegram._leader import Lease
from bot.telegram._outbox import TelegramOutbox, tracker_store_engine
from bot.telegram._sender import TelegramOutput
from bot.telegram._sent import OnceOutput, SentLedger
from bot.telegram._settings import (
    CHANNEL,
    EXPIRED_BUTTON,
    FAILED_REPLY,
    MAX_TEXT_UNITS,
    NON_TEXT_REPLY,
    TelegramConfig,
)
from bot.telegram._updater import Updater
from bot.telegram._utils import (
    CallbackRegistry,
    clean_text,
    command_to_text,
    redact,
    sender_id_of,
)
from crm_ml.ratelimit import POLITE_MESSAGE, limiter_for

logger = logging.getLogger(__name__)

__all__ = ["OnNewMessage", "TelegramInput"]

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class TelegramInput(InputChannel):
    """Telegram chats in and out, by long polling or by webhook (see :mod:`bot.telegram`).

    The channel owns the Bot API client, the outbox and its background sender;
    fetching updates is the :class:`~bot.telegram._updater.Updater`'s job
    (``self.updater``), which hands each update to :meth:`handle_update`.
    """

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> "TelegramInput":
        return cls(TelegramConfig.resolve(credentials))

    def __init__(self, config: TelegramConfig | None = None) -> None:
        self.config = config or TelegramConfig.resolve(None)
        self.callbacks = CallbackRegistry()
        self._bot: Bot | None = None
        self._output: TelegramOutput | None = None
        self._push: TelegramOutput | None = None
        self._on_new_message: OnNewMessage | None = None
        self._app: Any = None
        bot_id = self.config.token.split(":", 1)[0]  # the token's numeric part
        self.outbox = TelegramOutbox(bot_id, max_delay=self.config.outbox_max_delay)
        self._flusher: asyncio.Task[None] | None = None
        self.lease = Lease(bot_id, ttl=self.config.lease_seconds)
        self._leader: asyncio.Task[None] | None = None
        self.sent = SentLedger(bot_id)
        self._next_prune = 0.0
        self.leading = False
        self.updater = Updater(self.config, lambda: self.bot, self.handle_update,
                               self.outbox.wake)
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
        """Start talking to Telegram in the running event loop (does not block): at once
        alone, else once this replica holds the lease (:mod:`bot.telegram._leader`)."""
        if self.config.mode == "off" or self.updater.running or self._leader is not None:
            return
        self._app = app
        if on_new_message is not None:
            self._on_new_message = on_new_message
        try:  # the tracker store's database when it is SQL, else memory
            engine = tracker_store_engine(app)
            self.outbox.bind(engine)
            self.lease.bind(engine)
            self.sent.bind(engine)
        except Exception:  # noqa: BLE001 - still answer, with an outbox in memory
            logger.exception("Telegram outbox table unavailable; keeping it in memory")
            self.outbox.bind(None)
        if self.lease.shared:
            self._leader = asyncio.get_running_loop().create_task(self._lead())
        else:
            self._take_over()

    def _take_over(self) -> None:
        """This replica polls (or sets the webhook) and sends what waits in the outbox."""
        self.leading = True
        if self.lease.shared:
            logger.info("this replica now polls Telegram and sends its outbox")
            try:
                self.outbox.refresh()
            except Exception:  # noqa: BLE001 - the flusher counts again when it can
                logger.warning("Telegram outbox not readable yet", exc_info=True)
        self.updater.start()
        self._flusher = asyncio.get_running_loop().create_task(
            self.outbox.run(self.output().send_queued))
        self.outbox.wake()

    async def _step_down(self) -> None:
        """Stop polling and flushing (updates already fetched are still answered here)."""
        self.leading = False
        await self.updater.stop_fetching()
        await self._stop_flusher()
        await self.updater.confirm()
        logger.warning("this replica no longer holds the Telegram lease; polling stopped")

    async def _stop_flusher(self) -> None:
        if self._flusher is not None:  # what waits stays in the table for the next start
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None

    async def _lead(self) -> None:
        """Hold the lease while this replica runs; take over when its holder is gone."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                held = await loop.run_in_executor(None, self.lease.acquire)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. the database is down
                logger.warning("Telegram lease not renewed (%s)", type(exc).__name__)
                held = self.lease.held()
            if held and not self.leading:
                self._take_over()
            elif not held and self.leading:
                await self._step_down()
            if self.leading and time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + 3600
                try:
                    await loop.run_in_executor(None, self.sent.prune)
                except Exception:  # noqa: BLE001 - pruned on a later round
                    logger.debug("could not prune the sent replies", exc_info=True)
            if not self.leading:
                try:  # what the holder sent no longer waits here either
                    await loop.run_in_executor(None, self.outbox.refresh)
                except Exception:  # noqa: BLE001 - counted again on the next round
                    logger.debug("Telegram outbox not readable", exc_info=True)
            await asyncio.sleep(self.lease.ttl / 4)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop polling, let messages in progress finish, confirm the last update, and
        give the lease up so that another replica takes over at once."""
        if self._leader is not None:
            self._leader.cancel()
            await asyncio.gather(self._leader, return_exceptions=True)
            self._leader = None
        await self.updater.stop_fetching()
        await self._stop_flusher()
        await self.updater.finish(grace)
        if self.leading:
            self.leading = False
            await asyncio.get_running_loop().run_in_executor(None, self.lease.release)
        if self._bot is not None:
            try:
                await self._bot.shutdown()
            except Exception:  # noqa: BLE001 - shutting down anyway
                logger.debug("Telegram client shutdown failed", exc_info=True)
        logger.info("Telegram channel stopped")

    # -- updates -------------------------------------------------------------

    async def receive_webhook(self, headers: Any, body: bytes) -> int:
        """Check and queue one webhook update; returns the HTTP status to answer."""
        return await self.updater.receive_webhook(headers, body)

    def dispatch(self, update: Update) -> bool:
        """Handle ``update`` in the background, in order within its chat (see the Updater)."""
        return self.updater.dispatch(update)

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
                            f"{sender_id_of(chat_id)}:{message.message_id}",
                            self.metadata(update, message), sent_at=_unix(message))

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
        await self._to_rasa(payload, message.chat.id,
                            f"{sender_id_of(message.chat.id)}:cb:{query.id}",
                            self.metadata(update, message, button=True),
                            sent_at=_unix(message))

    async def _to_rasa(self, text: str, chat_id: int, message_id: str,
                       metadata: dict[str, Any], sent_at: float | None = None) -> None:
        """Hand a message to Rasa; ``sent_at`` (Unix time): when the customer sent it (one
        sent before this process began fetching may have been answered already)."""
        sender = sender_id_of(chat_id)
        output = self.output()
        if not limiter_for(CHANNEL).allow(sender):
            logger.info("Telegram chat %s rate-limited", redact(chat_id))
            if limiter_for(f"{CHANNEL}:notice", "1/30").allow(sender):
                await output.send_text_message(sender, POLITE_MESSAGE)
            return
        update_id = (metadata.get("telegram") or {}).get("update_id")
        already: set = set()
        if sent_at is not None and sent_at <= self.updater.started_at + 1:
            # Sent before this process began fetching: another may have handled it.
            if await self._answered(sender, message_id[:64]):
                logger.info("Telegram update %d was answered before a restart or a "
                            "takeover; not answered again", update_id)
                return
            try:
                already = self.sent.sent(message_id)
            except Exception:  # noqa: BLE001 - when in doubt, answer
                logger.warning("could not read the sent replies", exc_info=True)
        turn_output: Any = output
        if self.sent.active:
            turn_output = OnceOutput(output, self.sent, message_id[:64], already)
        await self._drain_outbox(sender, output)
        if self._on_new_message is None:
            logger.error("Telegram message before the channel was registered; dropped")
            return
        try:
            await self._on_new_message(UserMessage(
                text, turn_output, sender, input_channel=self.name(),
                message_id=message_id[:64], metadata=metadata))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - answer politely, keep the conversation
            logger.exception("Telegram message of chat %s failed", redact(chat_id))
            await output.send_text_message(sender, FAILED_REPLY)

    async def _answered(self, sender: str, message_id: str) -> bool:
        """Whether the conversation already holds this message (and so its answer)."""
        if self._app is None or getattr(getattr(self._app, "ctx", None), "agent", None) is None:
            return False
        try:
            from bot.channels import answered

            return await answered(self._app, sender, message_id) is not None
        except Exception:  # noqa: BLE001 - when in doubt, answer
            logger.warning("could not look the Telegram message up", exc_info=True)
            return False

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


def _unix(message: Message | None) -> float | None:
    """When ``message`` was sent (Unix time), if known."""
    date = getattr(message, "date", None)
    return date.timestamp() if date is not None else None
