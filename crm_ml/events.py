"""Conversation events through RabbitMQ: a durable queue between Rasa and the CRM.

With ``CRM_EVENT_BROKER_URL`` set (``amqp://guest:guest@127.0.0.1:5672/%2F``; a
``#name`` at the end names another queue than :data:`QUEUE`), Rasa's
event broker (:mod:`bot.broker`) turns every user and bot message into an interaction
row and publishes it here instead of writing the CRM itself:

- :class:`Publisher` declares the durable queue :data:`QUEUE`, publishes each row as a
  persistent JSON message and waits for RabbitMQ's confirm (publisher confirms): a row
  RabbitMQ did not confirm raises, and the broker keeps it to publish again.
- :func:`consume` (``crm-ml events consume``, app env) reads the queue in batches,
  writes each batch in one transaction with :func:`crm_ml.db.interactions.store_rows`
  (idempotent by ``event_id``: a message delivered twice is stored once) and
  acknowledges the batch only after the commit. While the CRM is down nothing is
  acknowledged: the messages wait in RabbitMQ, and a consumer killed mid-batch leaves
  them there for the next one. Order per conversation is kept: one queue, one
  consumer at a time (``x-single-active-consumer``), batches in delivery order.

pika (pure Python, both environments) speaks AMQP 0-9-1. This module runs under
Python 3.10 (bot env) as well as 3.11+.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["QUEUE", "Publisher", "consume", "decode", "encode", "queue_depth", "split_url"]

logger = logging.getLogger(__name__)

#: The durable queue of interaction rows.
QUEUE = "crm.interactions"
#: Queue arguments: one active consumer at a time keeps each conversation in order.
QUEUE_ARGUMENTS = {"x-single-active-consumer": True}
_TIMES = ("created_at",)


def encode(row: dict[str, Any]) -> bytes:
    """A row as JSON bytes (times as ISO text)."""
    out = {k: (v.isoformat() if isinstance(v, (dt.datetime, dt.date)) else v)
           for k, v in row.items()}
    return json.dumps(out, separators=(",", ":")).encode("utf-8")


def decode(body: bytes) -> dict[str, Any]:
    """A row back from :func:`encode` (times as naive datetimes).

    Raises:
        ValueError: the body is not such a row.
    """
    row = json.loads(body.decode("utf-8"))
    if not isinstance(row, dict) or not row.get("event_id") or "sender_id" not in row:
        raise ValueError("not an interaction row")
    for key in _TIMES:
        if isinstance(row.get(key), str):
            row[key] = dt.datetime.fromisoformat(row[key])
    return row


def split_url(url: str) -> tuple[str, str]:
    """The AMQP URL and the queue it names after ``#`` (default :data:`QUEUE`)."""
    amqp, _, queue = url.partition("#")
    return amqp, queue or QUEUE


def _connect(url: str) -> Any:
    """A blocking connection and a channel with the queue declared: ``(connection,
    channel, queue)``."""
    import pika

    amqp, queue = split_url(url)
    params = pika.URLParameters(amqp)
    params.heartbeat = 30
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    params.socket_timeout = 5
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.queue_declare(queue=queue, durable=True, arguments=QUEUE_ARGUMENTS)
    return connection, channel, queue


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


class Publisher:
    """Publishes interaction rows to :data:`QUEUE`, each confirmed by RabbitMQ.

    Not thread-safe: one publisher per thread (the event broker's writer thread).

    Args:
        url: The AMQP URL.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: Any = None
        self._channel: Any = None
        self._queue = QUEUE

    def _ready(self) -> Any:
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._connection, self._channel, self._queue = _connect(self._url)
            self._channel.confirm_delivery()
            logger.info("event broker: publishing to %s on %s", self._queue,
                        _safe_url(self._url))
        return self._channel

    def publish(self, rows: list[dict[str, Any]]) -> None:
        """Publish the rows in order; returns once RabbitMQ has confirmed every one.

        Raises:
            pika.exceptions.AMQPError: RabbitMQ is unreachable or refused a row (the
                caller keeps the rows and tries again; a row published twice is
                stored once).
        """
        import pika

        props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                     content_type="application/json")
        try:
            channel = self._ready()
            for row in rows:
                channel.basic_publish(exchange="", routing_key=self._queue, body=encode(row),
                                      properties=props, mandatory=True)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection (quietly: it may be gone already)."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                logger.debug("event broker: connection already closed")


def queue_depth(url: str) -> int:
    """Messages waiting in the queue (ready, not delivered to a consumer)."""
    connection, channel, queue = _connect(url)
    try:
        return int(channel.queue_declare(queue=queue, durable=True, passive=True,
                                         arguments=QUEUE_ARGUMENTS).method.message_count)
    finally:
        connection.close()


def consume(url: str, database_url: str, *, batch: int = 500, wait: float = 0.2,
            stop: Callable[[], bool] | None = None,
            progress: Callable[[int], None] | None = None) -> int:
    """Write the queue's rows into the CRM until ``stop()`` says so (forever by default).

    Each batch (up to ``batch`` messages, or what arrived within ``wait`` seconds) is
    stored in one transaction and acknowledged after the commit. A database or broker
    failure is retried with back-off without acknowledging anything; a message that is
    not an interaction row is logged and dropped.

    Args:
        url: The AMQP URL.
        database_url: The CRM database URL.
        batch: Most messages per transaction (and unacknowledged at once).
        wait: Seconds to wait for more messages before writing a partial batch.
        stop: Called between batches; True ends the loop.
        progress: Called with the number of rows stored after each batch.

    Returns:
        Rows stored (including duplicates skipped by event id).
    """
    from crm_ml.db.interactions import store_rows
    from crm_ml.db.session import get_engine

    engine = get_engine(database_url)
    state: dict[str, Any] = {"connection": None}
    try:
        return _consume_loop(url, engine, store_rows, state, batch, wait, stop, progress)
    finally:
        _close(state["connection"])  # unacknowledged messages go back to the queue


def _close(connection: Any) -> None:
    if connection is None:
        return
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - closing a dead connection
        logger.debug("events: connection already closed")


def _consume_loop(url: str, engine: Any, store_rows: Callable[..., None],
                  state: dict[str, Any], batch: int, wait: float,
                  stop: Callable[[], bool] | None,
                  progress: Callable[[int], None] | None) -> int:
    stored, failures = 0, 0
    channel: Any = None
    while not (stop and stop()):
        try:
            if channel is None or not channel.is_open:
                state["connection"], channel, queue = _connect(url)
                channel.basic_qos(prefetch_count=batch)
                logger.info("events: consuming %s on %s", queue, _safe_url(url))
            deliveries = _take(channel, queue, batch, wait)
            if not deliveries:
                continue
            rows, last_tag = [], deliveries[-1][0]
            for _tag, body in deliveries:
                try:
                    rows.append(decode(body))
                except ValueError:
                    logger.error("events: dropped a message that is not an interaction row")
            while True:
                try:
                    store_rows(engine, rows)
                    break
                except Exception:  # noqa: BLE001 - the CRM is down: keep the batch, retry
                    failures += 1
                    logger.exception("events: could not store %d rows (attempt %d)",
                                     len(rows), failures)
                    if stop and stop():
                        return stored
                    time.sleep(min(10.0, 0.2 * 2 ** min(failures, 6)))
                    state["connection"].process_data_events(time_limit=0)  # heartbeats
            channel.basic_ack(delivery_tag=last_tag, multiple=True)
            stored += len(rows)
            failures = 0
            if progress:
                progress(len(rows))
        except Exception:  # noqa: BLE001 - RabbitMQ gone: unacknowledged rows come back
            failures += 1
            logger.exception("events: broker connection lost (attempt %d)", failures)
            _close(state["connection"])
            state["connection"] = channel = None
            time.sleep(min(10.0, 0.2 * 2 ** min(failures, 6)))
    return stored


def _take(channel: Any, queue: str, most: int, wait: float) -> list[Any]:
    """Up to ``most`` deliveries ``(tag, body)``, waiting at most ``wait`` seconds."""
    out: list[Any] = []
    deadline = time.monotonic() + wait
    for method, _props, body in channel.consume(queue, inactivity_timeout=wait):
        if method is None:  # nothing more within ``wait``
            break
        out.append((method.delivery_tag, body))
        if len(out) >= most or time.monotonic() >= deadline:
            break
    return out
