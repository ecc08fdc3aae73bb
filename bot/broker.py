"""CRMEventBroker: every message of every conversation lands in the CRM's interactions.

Rasa publishes each new tracker event to the event broker when it saves the
tracker, paused conversations included, so the customer's messages during a
handoff are stored too. User messages are written with their intent,
sentiment, channel and (when known) the customer or rep; bot messages as
outgoing. Each row carries a unique ``event_id`` (the user message id), so a
re-published event is stored once.

Writes happen on a writer thread, in batches (one transaction, one lookup of
links and customers per batch), never in Rasa's event loop: the synchronous
write per event was 15% of a loaded Rasa process. A row waits there at most
``flush_interval`` seconds. When the CRM is down, rows are kept (up to
``max_pending``) and written when it is back; ``close()`` (Rasa shutting down)
writes what is left. The tracker store holds every event regardless.

The rows are written by :func:`crm_ml.db.interactions.store_rows` (SQLAlchemy Core:
the bot env runs SQLAlchemy 1.4). With ``CRM_EVENT_BROKER_URL`` set (RabbitMQ), the
writer thread publishes the rows to a durable queue with publisher confirms
(:class:`crm_ml.events.Publisher`) instead, and ``crm-ml events consume`` writes them:
while the CRM is down they wait in RabbitMQ, not in this process. Only while RabbitMQ
itself is unreachable are rows kept here, as above. Configure in endpoints.yml::

    event_broker:
      type: bot.broker.CRMEventBroker
"""

import asyncio
import hashlib
import logging
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any, Deque, Dict, List, Optional, Text

import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig

from bot import sql
from bot.identity import verified_identity
from crm_ml import events
from crm_ml.config import get_settings
from crm_ml.contract import channel_of
from crm_ml.db.interactions import store_rows
from crm_ml.pii import install_log_masking

logger = logging.getLogger(__name__)

__all__ = ["MAX_TEXT", "CRMEventBroker", "bot_env_url"]

MAX_TEXT = 4000


def bot_env_url(url: Text) -> Text:
    """The CRM URL with a driver the bot env has (psycopg2 instead of psycopg 3)."""
    return url.replace("postgresql+psycopg://", "postgresql+psycopg2://")


def _unreachable(exc: Exception) -> bool:
    """Whether ``exc`` means the database is down (worth a retry), not a bad row."""
    return isinstance(exc, sa.exc.OperationalError) or bool(
        getattr(exc, "connection_invalidated", False))


class CRMEventBroker(EventBroker):
    """Stores user and bot messages as CRM interactions (see the module docstring).

    Args:
        url: The CRM database (default: the configured one).
        flush_interval: Longest time in seconds a message waits to be written.
        max_pending: Messages kept while the CRM is down; the oldest go beyond it
            (logged), so a long outage cannot exhaust memory.
    """

    def __init__(self, url: Optional[Text] = None, flush_interval: float = 0.05,
                 max_pending: int = 100_000) -> None:
        install_log_masking()  # the Rasa server's logs carry no personal data either
        self._url = bot_env_url(url or get_settings().database_url)
        self._secret = get_settings().identity_secret
        self._amqp_url = get_settings().event_broker_url
        self._publisher: Optional[events.Publisher] = None
        self._engine: Optional[sa.engine.Engine] = None
        self._flush_interval = flush_interval
        self._pending: Deque[Dict[Text, Any]] = deque(maxlen=max_pending)
        self._wake = threading.Condition()
        self._writer: Optional[threading.Thread] = None
        self._stopping = False
        self._busy = False
        self._flushing = 0
        self._failures = 0

    @classmethod
    async def from_endpoint_config(cls, broker_config: EndpointConfig,
                                   event_loop: Optional[asyncio.AbstractEventLoop] = None
                                   ) -> "CRMEventBroker":
        kwargs = dict((broker_config.kwargs or {}) if broker_config else {})
        return cls(kwargs.get("url"), **{k: kwargs[k] for k in ("flush_interval",
                                                                 "max_pending") if k in kwargs})

    def _connect(self) -> sa.engine.Engine:
        if self._engine is None:
            self._engine = sql.create_engine(self._url, future=True)
        return self._engine

    def publish(self, event: Dict[Text, Any]) -> None:
        """Queue a user or bot message for the writer; other events are ignored."""
        if event.get("event") not in {"user", "bot"}:
            return
        try:
            row = self._row(event)
        except Exception:  # noqa: BLE001 - a malformed event must not stop the conversation
            logger.exception("could not read an event of %s",
                             str(event.get("sender_id", "?"))[:4] + "...")
            return
        with self._wake:
            if len(self._pending) == self._pending.maxlen:
                logger.error("CRM unreachable for long: dropping the oldest queued message")
            self._pending.append(row)
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._run, name="crm-broker",
                                                daemon=True)
                self._writer.start()
            self._wake.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued message is written; False if not within ``timeout``.

        The writer skips its wait for a fuller batch while someone flushes.
        """
        deadline = time.monotonic() + timeout
        with self._wake:
            self._flushing += 1
            try:
                self._wake.notify_all()
                while self._pending or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._wake.wait(min(left, 0.05))
            finally:
                self._flushing -= 1
        return True

    @property
    def durable_queue(self) -> bool:
        """Whether messages go to RabbitMQ (``CRM_EVENT_BROKER_URL``), not to the CRM."""
        return bool(self._amqp_url)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if not self._pending and self._stopping:
                    return
            if not self._flushing:
                time.sleep(self._flush_interval)  # let a burst gather into one batch
            with self._wake:
                batch = list(self._pending)
                self._pending.clear()
                self._busy = True
            try:
                self._store_batch(batch)
                self._failures = 0
            except sa.exc.StatementError as exc:
                if _unreachable(exc):
                    self._keep_for_later(batch)
                else:  # a row the database refuses: store the others, log that one
                    self._store_one_by_one(batch)
            except Exception:  # noqa: BLE001 - keep them, try again with back-off
                self._keep_for_later(batch)
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()
            if self._failures:
                if self._stopping:
                    return
                time.sleep(min(30.0, 0.5 * 2 ** min(self._failures, 6)))

    def _keep_for_later(self, batch: List[Dict[Text, Any]]) -> None:
        self._failures += 1
        logger.exception("could not store %d interactions (attempt %d); kept for later",
                         len(batch), self._failures)
        with self._wake:
            for row in reversed(batch):
                if len(self._pending) < (self._pending.maxlen or 0):
                    self._pending.appendleft(row)

    def _store_one_by_one(self, batch: List[Dict[Text, Any]]) -> None:
        for row in batch:
            try:
                self._store_batch([row])
            except sa.exc.StatementError as exc:
                if _unreachable(exc):
                    self._keep_for_later([row])
                    return
                logger.exception("an interaction was refused by the CRM; skipped")
        self._failures = 0

    def _row(self, event: Dict[Text, Any]) -> Dict[Text, Any]:
        sender = event.get("sender_id") or ""
        text = (event.get("text") or "")[:MAX_TEXT]
        ts = datetime.fromtimestamp(float(event.get("timestamp") or 0), tz=timezone.utc)
        row: Dict[Text, Any] = {
            "sender_id": sender[:128], "text": text, "kind": "message",
            "created_at": ts.replace(tzinfo=None), "intent": None, "sentiment": None,
            "sentiment_confidence": None, "customer_id": None, "rep_id": None,
            "lead_id": None,
        }
        if event["event"] == "user":
            parse = event.get("parse_data") or {}
            row["direction"] = "in"
            row["channel"] = channel_of(sender, event.get("input_channel"))
            row["intent"] = ((parse.get("intent") or {}).get("name") or None)
            for entity in parse.get("entities") or []:
                if entity.get("entity") == "sentiment":
                    row["sentiment"] = entity.get("value")
                    row["sentiment_confidence"] = entity.get("confidence")
            identity = verified_identity(event.get("metadata"), self._secret)
            if identity.role == "customer":
                row["customer_id"] = identity.number
            elif identity.role in {"rep", "manager"}:
                row["rep_id"] = identity.number if identity.role == "rep" else None
            row["event_id"] = (event.get("message_id") or self._digest(event))[:64]
        else:
            row["direction"] = "out"
            row["channel"] = channel_of(sender, None)
            if (event.get("metadata") or {}).get("agent"):
                row["kind"] = "agent"  # a human agent's reply during a handoff
            row["event_id"] = self._digest(event)
        return row

    @staticmethod
    def _digest(event: Dict[Text, Any]) -> Text:
        key = f"{event.get('sender_id')}|{event.get('event')}|{event.get('timestamp')}|" \
              f"{event.get('text')}"
        return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:64]

    def _store_batch(self, rows: List[Dict[Text, Any]]) -> None:
        if self._amqp_url:
            if self._publisher is None:
                self._publisher = events.Publisher(self._amqp_url)
            self._publisher.publish(rows)  # the consumer writes them (crm-ml events consume)
            return
        store_rows(self._connect(), rows)

    def is_ready(self) -> bool:
        return True

    async def close(self) -> None:
        """Write what is queued (a few seconds at most), then stop the writer."""
        await asyncio.get_running_loop().run_in_executor(None, self.flush, 5.0)
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._engine is not None:
            self._engine.dispose()
        if self._publisher is not None:
            self._publisher.close()
