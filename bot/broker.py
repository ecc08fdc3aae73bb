"""CRMEventBroker: every message of every conversation lands in the CRM's interactions.

Rasa publishes each new tracker event to the event broker when it saves the
tracker, paused conversations included, so the customer's messages during a
handoff are stored too. User messages are written with their intent,
sentiment, channel and (when known) the customer or rep; bot messages as
outgoing. Each row carries a unique ``event_id`` (the user message id), so a
re-published event is stored once.

The bot env runs SQLAlchemy 1.4, so this module writes with Core and bound
parameters instead of crm_ml's SQLAlchemy 2 models. Configure in endpoints.yml::

    event_broker:
      type: bot.broker.CRMEventBroker
"""

import asyncio
import hashlib
import logging
from datetime import datetime, timezone
from typing import Any, Dict, Optional, Text, Tuple

import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig

from crm_ml.config import get_settings
from crm_ml.identity import from_metadata
from crm_ml.pii import install_log_masking

logger = logging.getLogger(__name__)

MAX_TEXT = 4000


def channel_of(sender_id: Text, input_channel: Optional[Text]) -> Text:
    """The channel name: the sender id's namespace (``tg:``, ``web:``...) or Rasa's."""
    prefix = sender_id.split(":", 1)[0] if ":" in sender_id else ""
    return {"tg": "telegram", "web": "web", "voice": "voice"}.get(prefix) \
        or (input_channel or "rest")


def bot_env_url(url: Text) -> Text:
    """The CRM URL with a driver the bot env has (psycopg2 instead of psycopg 3)."""
    return url.replace("postgresql+psycopg://", "postgresql+psycopg2://")


class CRMEventBroker(EventBroker):
    """Stores user and bot messages as CRM interactions."""

    def __init__(self, url: Optional[Text] = None) -> None:
        install_log_masking()  # the Rasa server's logs carry no personal data either
        self._url = bot_env_url(url or get_settings().database_url)
        self._secret = get_settings().identity_secret
        self._engine: Optional[sa.engine.Engine] = None
        self._table: Optional[sa.Table] = None

    @classmethod
    async def from_endpoint_config(cls, broker_config: EndpointConfig,
                                   event_loop: Optional[asyncio.AbstractEventLoop] = None
                                   ) -> "CRMEventBroker":
        return cls((broker_config.kwargs or {}).get("url") if broker_config else None)

    def _connect(self) -> Tuple[sa.engine.Engine, sa.Table]:
        if self._engine is None or self._table is None:
            self._engine = sa.create_engine(self._url, pool_pre_ping=True, future=True)
            self._table = sa.Table("interactions", sa.MetaData(), autoload_with=self._engine)
            self._links = sa.Table("channel_identities", sa.MetaData(),
                                   autoload_with=self._engine)
        return self._engine, self._table

    def publish(self, event: Dict[Text, Any]) -> None:
        """Store a user or bot message; other events are ignored."""
        kind = event.get("event")
        if kind not in {"user", "bot"}:
            return
        try:
            self._store(event)
        except Exception:  # noqa: BLE001 - a broken CRM must not stop the conversation
            logger.exception("could not store an interaction of %s",
                             event.get("sender_id", "?")[:4] + "...")

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
            identity = from_metadata(event.get("metadata"), self._secret)
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

    def _store(self, event: Dict[Text, Any]) -> None:
        engine, table = self._connect()
        row = self._row(event)
        with engine.begin() as conn:
            if row["customer_id"] is None and row["rep_id"] is None:
                link = conn.execute(
                    sa.select(self._links.c.customer_id, self._links.c.rep_id)
                    .where(self._links.c.sender_id == row["sender_id"])
                ).first()
                if link is not None:
                    row["customer_id"], row["rep_id"] = link.customer_id, link.rep_id
            if row["customer_id"] is not None and conn.execute(
                sa.text("SELECT 1 FROM customers WHERE id = :id"), {"id": row["customer_id"]}
            ).first() is None:
                row["customer_id"] = None  # signed, but unknown to the CRM
            if engine.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                stmt = pg_insert(table).values(**row).on_conflict_do_nothing(
                    index_elements=["event_id"])
            else:
                stmt = sa.insert(table).values(**row).prefix_with("OR IGNORE")
            conn.execute(stmt)

    def is_ready(self) -> bool:
        return True

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
